"""`gatekeeper serve` runs the background jobs itself on the embedded queue: one command, no worker.

A real `serve` process on a free port; photos go in through the HTTP API and their verdicts come
back without any other process. With a Redis queue, serve only sends jobs: a worker runs them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from live_server import NEW_PASSWORD, LiveServer

from helpers import add_person

pytestmark = pytest.mark.slow


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[LiveServer] = []

    def start(**extra: str) -> LiveServer:
        server = LiveServer(
            tmp_path / f"instance-{len(started)}",
            GATEKEEPER_DPIA_REQUIRED="0",
            GATEKEEPER_PROBE_STEP="90",
            **extra,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _post_photo(server: LiveServer, token: str, data: bytes, channel: str) -> dict[str, Any]:
    boundary = uuid.uuid4().hex
    body = (
        (f'--{boundary}\r\nContent-Disposition: form-data; name="channel"\r\n\r\n{channel}\r\n').encode()
        + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'.encode()
        + b"Content-Type: image/jpeg\r\n\r\n"
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        server.url + "/api/v1/photos",
        data=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        return dict(json.loads(response.read()))


def _get(server: LiveServer, token: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(server.url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def _token(server: LiveServer) -> str:
    """The API token of a new uploader whose one-time password is replaced (until then it opens nothing)."""
    from consent_db.session import unit_of_work
    from gatekeeper.config import Settings
    from gatekeeper.runtime import Runtime
    from gatekeeper.staff import accounts

    one_time = server.cli("users", "add", "comms", "--role", "uploader").split()[-1]
    runtime = Runtime(Settings.from_env(server.env), migrate=False)
    try:
        with unit_of_work(runtime.sessions) as session:
            user = accounts.find_user(session, "comms")
            accounts.change_password(session, user.id, one_time, NEW_PASSWORD, now=user.created_at)
    finally:
        runtime.db.dispose()
    return server.cli("users", "token", "comms").split()[-1]


def test_serve_gates_uploads_itself_on_the_embedded_queue(serve_factory: Any, corpus: Any) -> None:
    server = serve_factory()
    assert "background jobs here" in server.banner
    with server.runtime() as rt:
        add_person(
            rt,
            "P1",
            name="Barack Obama",
            born=date(1961, 8, 4),
            granted_on=None,
            photos=[corpus.faces_dir / "obama" / "obama.jpg"],
        )
    token = _token(server)
    ids = [
        _post_photo(server, token, (corpus.faces_dir / rel).read_bytes(), "website")["id"]
        for rel in ("obama/obama2.jpg", "group/two_people.jpg")
    ]
    deadline = time.monotonic() + 240
    states: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        states = {i: _get(server, token, f"/api/v1/photos/{i}") for i in ids}
        if all(s["status"] == "done" for s in states.values()):
            break
        time.sleep(0.5)
    assert [states[i]["status"] for i in ids] == ["done", "done"]
    assert states[ids[0]]["verdict"] == "publishable"
    assert [f["person"] for f in states[ids[0]]["faces"]] == ["P1"]
    # Biden is enrolled nowhere: unknown, so the pair is blocked.
    assert states[ids[1]]["verdict"] == "blocked"
    assert "unknown_face" in states[ids[1]]["reasons"]
    jobs = server.cli("jobs", "--state", "done", "--json")
    assert sum(1 for line in jobs.splitlines() if json.loads(line)["task"] == "gate") == 2


def test_serve_leaves_jobs_to_workers_on_a_redis_queue(
    serve_factory: Any, corpus: Any, redis_url: str
) -> None:
    server = serve_factory(GATEKEEPER_QUEUE_URL=redis_url, GATEKEEPER_QUEUE_NAME=f"serve-{uuid.uuid4().hex}")
    assert "run `gatekeeper worker`" in server.banner
    token = _token(server)
    photo_id = _post_photo(
        server, token, (corpus.faces_dir / "obama" / "obama2.jpg").read_bytes(), "website"
    )["id"]
    time.sleep(3)
    assert _get(server, token, f"/api/v1/photos/{photo_id}")["status"] == "queued"
    server.cli("worker", "--drain")
    state = _get(server, token, f"/api/v1/photos/{photo_id}")
    assert state["status"] == "done" and state["verdict"] == "blocked"
