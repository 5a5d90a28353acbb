"""Set-up: the README's command works on a fresh machine without uv, from wherever it is started.

The first test runs `./scripts/gatekeeper --help` the way a new user on Debian does: an empty home,
`PATH=/usr/bin:/bin` (no uv), the system Python (externally managed, PEP 668). It runs on a copy of
the repository, so the checkout under test keeps its own environment and instance. Only the
network's settings (CA bundle, proxy) and uv's download cache pass into the clean environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import require

from gatekeeper.config import Settings, default_home

ROOT = Path(__file__).resolve().parents[2]
CLEAN_PATH = "/usr/bin:/bin"
PASSED_THROUGH = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
)


@dataclass(frozen=True)
class Fresh:
    """A copy of the repository bootstrapped by its own script from an empty home."""

    checkout: Path
    home: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]


def clean_env(home: Path) -> dict[str, str]:
    """What `env -i HOME=... PATH=/usr/bin:/bin` leaves, plus the network's settings and uv's cache."""
    env = {"HOME": str(home), "PATH": CLEAN_PATH}
    env.update({k: os.environ[k] for k in PASSED_THROUGH if k in os.environ})
    cache = Path(os.environ.get("UV_CACHE_DIR") or Path.home() / ".cache" / "uv")
    if cache.is_dir():
        env["UV_CACHE_DIR"] = str(cache)
    return env


def system_python_is_externally_managed() -> bool:
    python = Path("/usr/bin/python3")
    if not python.is_file():
        return False
    stdlib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (Path(stdlib) / "EXTERNALLY-MANAGED").is_file()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Fresh:
    require(shutil.which("uv", path=CLEAN_PATH) is None, f"uv is in {CLEAN_PATH}: nothing to bootstrap")
    require(
        system_python_is_externally_managed(),
        "/usr/bin/python3 is not an externally managed Python (PEP 668): Debian 12+ or Ubuntu 23.04+ needed",
    )
    base = tmp_path_factory.mktemp("fresh")
    checkout = base / "consent-gatekeeper"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(".*", "__pycache__", "instance", "results"))
    home = base / "home"
    home.mkdir()
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(home)
    first = subprocess.run(
        [str(checkout / "scripts" / "gatekeeper"), "--help"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return Fresh(checkout, home, env, first)


def test_the_first_command_installs_uv_into_a_private_environment_on_an_externally_managed_python(
    fresh: Fresh,
) -> None:
    assert fresh.first.returncode == 0, fresh.first.stderr
    assert "Usage: gatekeeper" in fresh.first.stdout
    uv_venv = fresh.home / ".local" / "share" / "consent-gatekeeper" / "uv-venv"
    assert f"installing it from PyPI into a private virtual environment, {uv_venv}" in fresh.first.stderr
    assert (uv_venv / "bin" / "uv").is_file()
    # The last resort (pip --user --break-system-packages into ~/.local) was not needed.
    assert not (fresh.home / ".local" / "bin" / "uv").exists()
    assert "externally-managed-environment" not in fresh.first.stderr


# The dev group (pyproject.toml): test tools a user who only runs the service never needs.
TEST_TOOLS = {"pytest", "moto", "playwright", "ruff", "mypy", "pytest-xdist", "axe-playwright-python"}


def installed(checkout: Path) -> set[str]:
    """The distributions in the checkout's own environment, by normalised name."""
    found = checkout.glob(".venv/lib/python3*/site-packages/*.dist-info")
    names = (p.name.removesuffix(".dist-info").rsplit("-", 1)[0] for p in found)
    return {re.sub(r"[-_.]+", "-", name).lower() for name in names}


def test_the_service_script_installs_only_what_the_service_needs(fresh: Fresh) -> None:
    assert fresh.first.returncode == 0, fresh.first.stderr
    present = installed(fresh.checkout)
    assert {"flask", "pillow", "sqlalchemy", "huey", "boto3"} <= present
    assert present & TEST_TOOLS == set()


def test_the_second_command_finds_the_uv_it_installed_and_says_nothing_about_it(fresh: Fresh) -> None:
    again = subprocess.run(
        [str(fresh.checkout / "scripts" / "gatekeeper"), "--help"],
        cwd=fresh.home,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "Usage: gatekeeper" in again.stdout
    assert again.stderr == ""


def test_relative_paths_are_relative_to_where_the_user_stands(
    fresh: Fresh, corpus: Any, tmp_path: Path
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copyfile(corpus.metadata_dir / "nikon_coolpix_p6000_gps.jpg", photos / "gps.jpg")
    (photos / "notes.jpg").write_text("not a photo")
    strip = subprocess.run(
        [str(fresh.checkout / "scripts" / "gatekeeper"), "strip", "photos/gps.jpg", "clean.jpg"],
        cwd=tmp_path,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert strip.returncode == 0, strip.stderr
    assert (tmp_path / "clean.jpg").is_file()
    gate = subprocess.run(
        [str(fresh.checkout / "scripts" / "gatekeeper"), "gate", "--channel", "website", "photos/notes.jpg"],
        cwd=tmp_path,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gate.returncode == 0, gate.stderr
    assert gate.stdout.startswith("BLOCKED      photos/notes.jpg (unreadable_image)")
    # The instance is the repository's, not a new one where the user stands.
    assert (fresh.checkout / "instance" / "gatekeeper.db").is_file()
    assert not (tmp_path / "instance").exists()
    assert f"no people are enrolled in {fresh.checkout / 'instance'}" in gate.stderr


def test_uv_run_from_another_folder_uses_the_repository_instance(fresh: Fresh, tmp_path: Path) -> None:
    uv = fresh.home / ".local" / "share" / "consent-gatekeeper" / "uv-venv" / "bin" / "uv"
    result = subprocess.run(
        [str(uv), "run", "--frozen", "--project", str(fresh.checkout), "gatekeeper", "audit", "head"],
        cwd=tmp_path,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (fresh.checkout / "instance" / "gatekeeper.db").is_file()
    assert not (tmp_path / "instance").exists()


def test_without_gatekeeper_home_the_instance_is_the_checkouts_own_folder() -> None:
    assert default_home() == ROOT / "instance"
    assert Settings.from_env({}).home == ROOT / "instance"
    assert Settings.from_env({"GATEKEEPER_HOME": ""}).home == ROOT / "instance"
    assert Settings().storage.originals_url == str(ROOT / "instance" / "originals")


def test_the_test_script_runs_from_a_clean_environment_with_paths_relative_to_the_user(
    fresh: Fresh, tmp_path: Path
) -> None:
    """The README's second command: linters, then pytest on a test file named relative to here."""
    result = subprocess.run(
        [str(fresh.checkout / "scripts" / "test"), "-q", "consent-gatekeeper/tests/project/test_config.py"],
        cwd=fresh.checkout.parent,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "lint: ruff, import contracts, mypy" in result.stderr
    assert re.search(r"^\d+ passed", result.stdout, re.MULTILINE), result.stdout
    # The test script added the dev group; running the service afterwards leaves it in place.
    assert installed(fresh.checkout) >= TEST_TOOLS
    again = subprocess.run(
        [str(fresh.checkout / "scripts" / "gatekeeper"), "--help"],
        cwd=tmp_path,
        env=fresh.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert installed(fresh.checkout) >= TEST_TOOLS
