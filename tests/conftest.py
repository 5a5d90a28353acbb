"""Fixtures shared by every test: the photo corpus, external services, a fixed clock.

A test that needs something this machine may lack (the corpus, exiftool, PostgreSQL, Redis, S3,
a browser) asks for it through `require`. On a laptop it skips with the reason; with
GATEKEEPER_REQUIRE_SERVICES=1 (set by .ci/run) the same absence is a failure.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REQUIRE_SERVICES = os.environ.get("GATEKEEPER_REQUIRE_SERVICES") == "1"
FIXED_NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_face_engine: the test's runtime and app fixtures use the real dlib engine, not answers "
        "recorded from it (tests of the engine's time limit, face cap or worker processes; tests/engines.py)",
    )


def require(available: bool, reason: str) -> None:
    """Skip (laptop) or fail (CI) when a needed service or file is not available."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required by GATEKEEPER_REQUIRE_SERVICES=1 but missing: {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class FaceEntry:
    """One row of corpus/faces/manifest.csv."""

    path: Path
    file: str
    identities: tuple[str, ...]
    boxes: tuple[tuple[int, int, int, int], ...]


@dataclass(frozen=True)
class Corpus:
    """The shared photo corpus: real faces and real camera files."""

    root: Path

    @property
    def faces_dir(self) -> Path:
        return self.root / "faces"

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    def faces(self) -> list[FaceEntry]:
        with open(self.faces_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        entries = []
        for row in rows:
            boxes = tuple(
                tuple(int(v) for v in box.split()) for box in row["face_boxes_ltrb"].split(";") if box.strip()
            )
            entries.append(
                FaceEntry(
                    path=self.faces_dir / row["file"],
                    file=row["file"],
                    identities=tuple(row["identity"].split(";")),
                    boxes=boxes,  # type: ignore[arg-type]
                )
            )
        return entries

    def metadata(self) -> list[dict[str, str]]:
        with open(self.metadata_dir / "manifest.csv", newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


def _find_corpus() -> Path | None:
    candidates = []
    if os.environ.get("GATEKEEPER_CORPUS"):
        candidates.append(Path(os.environ["GATEKEEPER_CORPUS"]))
    candidates.append(Path(__file__).resolve().parent.parent.parent / "shared" / "corpus")
    for path in candidates:
        if (path / "faces" / "manifest.csv").is_file():
            return path
    return None


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The real photo corpus at ../shared/corpus (or $GATEKEEPER_CORPUS)."""
    root = _find_corpus()
    require(root is not None, "photo corpus not found: set GATEKEEPER_CORPUS or place it at ../shared/corpus")
    assert root is not None
    return Corpus(root)


@pytest.fixture(scope="session")
def exiftool() -> str:
    """Path of exiftool, the independent metadata reader."""
    path = shutil.which("exiftool")
    require(path is not None, "exiftool not installed (Debian package libimage-exiftool-perl)")
    assert path is not None
    return path


@pytest.fixture
def now() -> datetime:
    """A fixed, timezone-aware moment: tests never read the clock."""
    return FIXED_NOW


@pytest.fixture
def tmp_home(tmp_path: Path) -> Iterator[Path]:
    """An empty instance folder."""
    home = tmp_path / "instance"
    home.mkdir()
    yield home


# --- databases -------------------------------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "GATEKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def _postgres_reachable() -> bool:
    from sqlalchemy import text

    from consent_db.session import make_engine

    try:
        engine = make_engine(POSTGRES_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file built once by `alembic upgrade head`, copied for each test."""
    from consent_db.schema import upgrade
    from consent_db.session import make_engine

    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A PostgreSQL database built once by migrations; each test gets a copy (CREATE ... TEMPLATE)."""
    require(_postgres_reachable(), f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}")
    import secrets

    from sqlalchemy import text

    from consent_db.schema import upgrade
    from consent_db.session import make_engine

    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    name = f"gk_template_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test: SQLite file, and PostgreSQL when reachable."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "gatekeeper.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    import secrets

    from sqlalchemy import text

    from consent_db.session import make_engine

    template_url: str = request.getfixturevalue("postgres_template")
    template_name = template_url.rsplit("/", 1)[1]
    name = f"gk_test_{secrets.token_hex(6)}"
    admin = make_engine(POSTGRES_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def settings(tmp_home: Path, database_url: str) -> Any:
    """Default settings on an empty instance folder and a fresh database."""
    from gatekeeper.config import FaceSettings, PolicySettings, Settings

    # Face matching without a recorded DPIA, as a demo would run; tests of the switch turn it on.
    # Gating tests check verdicts, not the search: they search at 90° steps (about a third of the
    # work of the default 45°, which tests/faces/test_face_angles.py and test_face_gate_angles.py
    # use), and the time limit is far off so a loaded machine never turns a verdict into review.
    return Settings(
        home=tmp_home,
        database_url=database_url,
        policy=PolicySettings(dpia_required=False),
        faces=FaceSettings(probe_step=90, time_limit=600.0),
    )


@pytest.fixture
def runtime(request: pytest.FixtureRequest, settings: Any) -> Iterator[Any]:
    """The composed application for one test (with its job queue, as the entry points compose it);
    its database engine is disposed afterwards.

    Its face engine answers as the real one, from answers recorded on disk (tests/engines.py);
    the engine's own tests and those marked real_face_engine get the real engine.
    """
    from engines import engine_for

    from gatekeeper.runtime import Runtime
    from workers import JobQueue

    rt = Runtime(settings, sender=JobQueue, faces=engine_for(request, settings))
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


# --- S3 (moto's server mode on 127.0.0.1) ----------------------------------------------------------


@dataclass(frozen=True)
class S3Endpoint:
    """A real S3 HTTP endpoint and a versioned bucket on it; AWS_* variables point at it."""

    endpoint_url: str
    bucket: str
    client: Any

    def versions(self, prefix: str = "") -> list[tuple[str, str]]:
        """(key, version id) of every object version and delete marker under `prefix`."""
        found = []
        for page in self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                found.append((entry["Key"], entry["VersionId"]))
        return found


def _cap_memory() -> None:
    import resource

    limit = 4 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """moto's S3 server on a free port of 127.0.0.1, with one versioned bucket, for the whole run."""
    import subprocess
    import sys
    import time
    import urllib.request

    binary = Path(sys.executable).parent / "moto_server"
    require(binary.is_file(), "moto_server not installed (dev dependency moto[server])")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_cap_memory,  # moto holds every object version in memory
    )
    try:
        deadline = time.monotonic() + 30
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                up = True
                break
            except OSError:
                time.sleep(0.1)
        require(up, f"moto_server did not start on {endpoint}")
        with pytest.MonkeyPatch.context() as mp:
            for name, value in {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
                "AWS_DEFAULT_REGION": "us-east-1",
            }.items():
                mp.setenv(name, value)
            mp.delenv("AWS_PROFILE", raising=False)
            import boto3

            client = boto3.client("s3")
            bucket = "gatekeeper-test"
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            yield S3Endpoint(endpoint, bucket, client)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
