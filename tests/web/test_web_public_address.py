"""Links carry the address people reach the app at: configured, or what `serve` listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from web_helpers import add_learners, api_token, make_account

from gatekeeper import create_app
from gatekeeper.cli.staff import serving_address
from gatekeeper.runtime import Runtime
from helpers import run
from workers import JobQueue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve_banner(home: Path, port: int, public_url: str) -> list[str]:
    """The lines `gatekeeper serve` prints before it serves, then stops it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env.update(
        GATEKEEPER_HOME=str(home),
        GATEKEEPER_DATABASE_URL=f"sqlite:///{home / 'gatekeeper.db'}",
        GATEKEEPER_PUBLIC_URL=public_url,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gatekeeper.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("serving on"):
                break
        else:
            pytest.fail("gatekeeper serve did not start: " + " | ".join(lines))
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stdout is not None:
            process.stdout.close()
    return lines


def test_serve_says_which_address_links_carry(tmp_path: Path) -> None:
    port = _free_port()
    derived = _serve_banner(tmp_path / "a", port, "")
    assert (
        f"withdrawal links carry http://127.0.0.1:{port} (from --host/--port: set GATEKEEPER_PUBLIC_URL "
        "to the address people reach)"
    ) in derived
    configured = _serve_banner(tmp_path / "b", _free_port(), "https://photos.school.example")
    assert "withdrawal links carry https://photos.school.example" in configured
    # No SMTP server configured: serve says that messages wait.
    assert "email: no SMTP server is configured (GATEKEEPER_SMTP_URL): messages stay queued" in derived


def test_links_carry_the_address_serve_derived_from_its_host_and_port(settings: Any) -> None:
    assert settings.web.public_url == ""
    app = create_app(settings.with_(web={"public_url": serving_address("127.0.0.1", 8101)}))
    try:
        rt = app.extensions["gatekeeper"]
        add_learners(rt)
        headers = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'consent_admin'))}"}
        response = app.test_client().post("/api/v1/people/L001/link", headers=headers)
        assert response.status_code == 201
        assert response.get_json()["url"].startswith("http://127.0.0.1:8101/withdraw/")
    finally:
        rt.db.dispose()


def test_an_address_for_every_interface_or_ipv6_is_one_a_browser_can_open() -> None:
    assert serving_address("::1", 8000) == "http://[::1]:8000"
    assert serving_address("0.0.0.0", 8080) == f"http://{socket.getfqdn()}:8080"
    assert serving_address("photos.local", 80) == "http://photos.local:80"


def test_people_link_warns_when_no_public_address_is_configured(runtime: Any) -> None:
    add_learners(runtime)
    result = run(runtime, "people", "link", "L001")
    assert result.exit_code == 0
    assert result.stdout.startswith("http://127.0.0.1:8000/withdraw/")
    assert "GATEKEEPER_PUBLIC_URL is not set: this link assumes the app is reached at" in result.stderr
    configured = runtime.settings.with_(web={"public_url": "https://photos.school.example"})
    other = Runtime(configured, sender=JobQueue)
    try:
        again = run(other, "people", "link", "L001")
        assert again.stdout.startswith("https://photos.school.example/withdraw/") and again.stderr == ""
    finally:
        other.db.dispose()
