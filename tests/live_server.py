"""A real `gatekeeper serve` in a subprocess, and the Chromium helpers the browser tests share.

The browser is Debian's /usr/bin/chromium, never downloaded. Each checked step is photographed into
test-artifacts/web/ (git-ignored) and checked with axe-core: no serious or critical violation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

# A page under a loaded CI machine can take a while to arrive; the assertions wait for it.
expect.set_options(timeout=30_000)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
ARTIFACTS = Path(
    os.environ.get("GATEKEEPER_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)
NEW_PASSWORD = "a long new password 42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveServer:
    """`gatekeeper serve` on a free port with its own instance folder under `home`.

    Every GATEKEEPER_* variable of the test run is dropped (the corpus location excepted) and
    `settings` set instead. `admin_password` is the one-time password of the first start.
    """

    def __init__(self, home: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_") or k == "GATEKEEPER_CORPUS"
        }
        env.update(
            GATEKEEPER_HOME=str(home),
            GATEKEEPER_DATABASE_URL=f"sqlite:///{home / 'gatekeeper.db'}",
            GATEKEEPER_PUBLIC_URL=self.url,
            **settings,
        )
        self.env = env
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gatekeeper.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.admin_password: str | None = None
        self.banner = ""
        # Everything serve printed up to and including its "serving on" line.
        self.output: list[str] = []
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("first start:"):
                self.admin_password = line.split()[-1]
            if line.startswith("serving on"):
                self.banner = line
                break
        else:
            self.process.wait(timeout=60)
            self.process.stdout.close()
            pytest.fail("gatekeeper serve did not start")

    def cli(self, *args: str) -> str:
        """Run a `gatekeeper` command against the server's instance; its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    @contextmanager
    def runtime(self) -> Iterator[Any]:
        """A runtime on the server's instance, as a `gatekeeper` command composes it (with its job
        queue), but its face engine answering from the real engine's recorded answers
        (tests/engines.py)."""
        from engines import recorded_runtime

        from gatekeeper.config import Settings
        from workers import JobQueue

        runtime = recorded_runtime(Settings.from_env(self.env), sender=JobQueue)
        try:
            yield runtime
        finally:
            if "db" in runtime.__dict__:
                runtime.db.dispose()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)
        assert self.process.stdout is not None
        self.process.stdout.close()


@contextmanager
def serving(home: Path, **settings: str) -> Iterator[LiveServer]:
    server = LiveServer(home, **settings)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium_browser(executable: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def check(page: Any, step: str) -> None:
    """Photograph the page; nothing wider than the screen; axe-core finds no serious or critical
    violation."""
    from axe_playwright_python.sync_playwright import Axe

    folder = ARTIFACTS / "web"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{step}.png"), full_page=True)
    # Usable on a phone: wide tables scroll inside their own region, never the page.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        f"{step}: scrolls sideways"
    )
    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{step}: {bad}"


def sign_in(page: Any, server: LiveServer, username: str, password: str) -> None:
    page.goto(server.url + "/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def nav(page: Any, name: str) -> None:
    """Follow a link of the main navigation."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def new_staff(server: LiveServer, page: Any, name: str, role: str) -> None:
    """An account made with the real command, signed in, its one-time password replaced."""
    password = server.cli("users", "add", name, "--role", role).split()[-1]
    sign_in(page, server, name, password)
    page.get_by_label("Current password").fill(password)
    page.get_by_label("New password (at least 12 characters)").fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name=f"Hello, {name}")).to_be_visible()
