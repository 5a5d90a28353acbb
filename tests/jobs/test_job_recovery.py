"""Real processes killed with SIGKILL, a Redis restarted empty: every job still ends, no command typed.

Each test runs on SQLite with the embedded queue and on PostgreSQL with a Redis server of its own
(`redis-server` without persistence on a free port); the Redis outage, on both with such a Redis.
The processes run with a short lease and sweep interval, so that recovery takes seconds; what is
asserted is the documented promise: every photo reaches a verdict, once, and a withdrawn person's
copies are gone within 60 s, although the process running the job was killed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consent_db import audit
from consent_db.models import AuditEvent, Decision, Job, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper.photos.gate import original_key
from gatekeeper.publishing import publish as publish_service
from gatekeeper.runtime import Runtime
from helpers import add_people, run, seed_gated_photo
from workers import JobQueue

pytestmark = pytest.mark.slow

GATEKEEPER = str(Path(sys.executable).parent / "gatekeeper")
# Seconds, for the processes of these tests (defaults: 20 and 5). The lease must outlast the
# longest stretch a job's process cannot renew it (face analysis holds the GIL) on a busy machine.
LEASE, SWEEP = 5.0, 0.5
PROMISE = 60.0  # a withdrawal's copies are gone within this many seconds, whatever was killed
PHOTOS = ("biden/biden2.jpg", "group/two_people.jpg", "obama/obama.jpg")

# Run as a worker that dies: SIGKILL at the first SQL statement that starts with PREFIX and
# mentions NEEDLE (in the statement or its parameters), then the ordinary `gatekeeper worker`.
DYING_WORKER = r"""
import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.engine import Engine

prefix, needle = sys.argv[1:3]


@event.listens_for(Engine, "before_cursor_execute")
def die(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith(prefix) and needle in statement + str(parameters):
        os.kill(os.getpid(), signal.SIGKILL)


from gatekeeper.cli import main

main(["worker"])
"""
MID_GATE = ("INSERT INTO AUDIT_EVENTS", "photo.gated")  # the faces are matched, nothing committed
MID_TAKEDOWN = ("SELECT", "FROM publications")  # the takedown has begun, nothing deleted yet


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of the test's own, without persistence: a restart loses every message."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None


def _compose(runtime: Runtime, with_redis: bool) -> Iterator[Runtime]:
    changes: dict[str, Any] = {"job_lease": LEASE, "job_sweep_interval": SWEEP}
    redis_server = None
    if with_redis:
        from conftest import require

        require(shutil.which("redis-server") is not None, "redis-server not installed")
        redis_server = OwnRedis()
        redis_server.start()
        changes["url"] = redis_server.url
    composed = Runtime(runtime.settings.with_(queue=changes), migrate=False, sender=JobQueue)
    composed.redis = redis_server  # type: ignore[attr-defined]
    yield composed
    if "db" in composed.__dict__:
        composed.db.dispose()
    if redis_server is not None and redis_server.process is not None:
        redis_server.kill()


@pytest.fixture
def system(runtime: Runtime) -> Iterator[Runtime]:
    """The embedded default on SQLite; PostgreSQL with a Redis of the test's own. Short lease."""
    yield from _compose(runtime, not runtime.settings.database_url.startswith("sqlite"))


@pytest.fixture
def redis_system(runtime: Runtime) -> Iterator[Runtime]:
    """Either database with a Redis of the test's own. Short lease."""
    yield from _compose(runtime, True)


def _env(runtime: Runtime) -> dict[str, str]:
    settings = runtime.settings
    return {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_QUEUE_URL": settings.queue.url,
        "GATEKEEPER_DPIA_REQUIRED": "0",
        "GATEKEEPER_PROBE_STEP": str(settings.faces.probe_step),
        "GATEKEEPER_FACE_TIME_LIMIT": str(settings.faces.time_limit),
        "GATEKEEPER_JOB_LEASE": str(LEASE),
        "GATEKEEPER_JOB_SWEEP_INTERVAL": str(SWEEP),
    }


def _start(runtime: Runtime, *args: str, dying: tuple[str, str] | None = None) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", DYING_WORKER, *dying] if dying else [GATEKEEPER, *args]
    return subprocess.Popen(command, env=_env(runtime), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _wait(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Seconds until `done()` holds; fails after `timeout`."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.1)
    return time.monotonic() - started


def _states(runtime: Runtime) -> list[str]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(Job.state).order_by(Job.id)))


def _all_done(runtime: Runtime) -> bool:
    return set(_states(runtime)) == {"done"}


def _queue_gates(runtime: Runtime, corpus: Any, names: tuple[str, ...] = PHOTOS) -> list[str]:
    """Keep the originals and queue a gate job each (as `gate --queue` does); their sha256s."""
    queue = JobQueue.of(runtime)
    digests = []
    for name in names:
        data = (corpus.faces_dir / name).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        runtime.originals.put(original_key(sha), data)
        with unit_of_work(runtime.sessions) as session:
            queue.enqueue_gate(session, sha, "website")
        digests.append(sha)
    return digests


def _published_photo_of(runtime: Runtime, person_id: int, data: bytes) -> int:
    """A live copy in the published store of a photo showing `person_id`; the photo's id."""
    now = datetime.now(UTC)
    photo_id = seed_gated_photo(runtime, data, now=now, person_ids=(person_id,))
    with unit_of_work(runtime.sessions) as session:
        outcome = publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=runtime.published,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )
    assert outcome.published
    return photo_id


def _copies_gone(runtime: Runtime, photo_id: int) -> bool:
    with unit_of_work(runtime.sessions) as session:
        publication = session.scalars(select(Publication).where(Publication.photo_id == photo_id)).one()
    return publication.taken_down_at is not None and not runtime.published.exists(publication.key or "")


def _check_once_each(runtime: Runtime, digests: list[str]) -> None:
    """Every photo decided once, every job done, nothing audited twice, the chain intact."""
    with unit_of_work(runtime.sessions) as session:
        photos = list(session.scalars(select(Photo).where(Photo.sha256.in_(digests))))
        decisions = {
            p.id: session.scalar(select(func.count()).select_from(Decision).where(Decision.photo_id == p.id))
            for p in photos
        }
        gated = list(session.scalars(select(AuditEvent.subject).where(AuditEvent.action == "photo.gated")))
        taken_down = list(
            session.scalars(select(AuditEvent.details).where(AuditEvent.action == "publication.taken_down"))
        )
        assert audit.verify(session).ok
    assert len(photos) == len(digests)
    assert all(p.status not in ("queued", "processing") for p in photos), [p.status for p in photos]
    assert set(decisions.values()) == {1}, decisions
    assert len(gated) == len(set(gated))
    assert len(taken_down) == len({d["publication"] for d in taken_down})
    assert _all_done(runtime), _states(runtime)


def test_serve_killed_mid_job_recovers_on_restart_even_with_its_queue_lost(
    system: Runtime, corpus: Any
) -> None:
    digests = _queue_gates(system, corpus)
    serve_args = ["serve", "--port", str(_free_port())]
    if system.settings.queue.url:
        serve_args.append("--jobs")  # with Redis, `serve --jobs` runs jobs as the embedded default does
    serve = _start(system, *serve_args)
    try:
        _wait("a job starts", lambda: "running" in _states(system), 120)
        time.sleep(0.3)  # into the face analysis
    finally:
        _stop(serve)
    assert "running" in _states(system)
    # The queue's whole storage is lost as well: the file of the embedded queue, or Redis's memory.
    if system.settings.queue.url:
        system.redis.kill()  # type: ignore[attr-defined]
        system.redis.start()  # type: ignore[attr-defined]
    else:
        for path in system.settings.instance_path.glob("queue.db*"):
            path.unlink()
    serve = _start(system, *serve_args)  # as a supervisor restarts it; nobody types a command
    try:
        took = _wait("every job done", lambda: _all_done(system), 180)
    finally:
        _stop(serve)
    _check_once_each(system, digests)
    assert took < 180


def test_workers_killed_mid_gate_and_mid_takedown_still_take_the_copies_down_within_a_minute(
    system: Runtime, corpus: Any
) -> None:
    ids = add_people(system, datetime.now(UTC), "ann")
    shown = _published_photo_of(system, ids["ann"], (corpus.faces_dir / "biden/biden.jpg").read_bytes())
    digests = _queue_gates(system, corpus, PHOTOS[:2])
    dying = _start(system, dying=MID_GATE)
    assert dying.wait(timeout=180) == -signal.SIGKILL  # killed mid-gate
    with unit_of_work(system.sessions) as session:
        started = [j.state for j in session.scalars(select(Job)) if j.attempts]
    assert started and "done" not in started
    assert run(system, "consent", "withdraw", "ann").exit_code == 0
    dying = _start(system, dying=MID_TAKEDOWN)  # takes the takedown first (it has priority), dies
    assert dying.wait(timeout=120) == -signal.SIGKILL
    # Measured from the death of the worker running the takedown (it took the job as soon as it
    # started, as a running worker takes it as soon as the withdrawal commits).
    killed_at = time.monotonic()
    assert not _copies_gone(system, shown)
    worker = _start(system, "worker")  # as a supervisor restarts it; nobody types a command
    try:
        _wait("the copies gone", lambda: _copies_gone(system, shown), PROMISE)
        assert time.monotonic() - killed_at < PROMISE
        _wait("every job done", lambda: _all_done(system), 180)
    finally:
        _stop(worker)
    _check_once_each(system, digests)
    with unit_of_work(system.sessions) as session:
        takedown = session.scalars(select(Job).where(Job.task == "takedown")).one()
    assert takedown.attempts == 2


def test_a_queue_outage_with_an_upload_and_a_withdrawal_and_a_restart_empty_loses_nothing(
    redis_system: Runtime, corpus: Any
) -> None:
    system = redis_system
    from web_helpers import api_token, csrf, make_account

    from gatekeeper import create_app

    ids = add_people(system, datetime.now(UTC), "ann")
    shown = _published_photo_of(system, ids["ann"], (corpus.faces_dir / "biden/biden.jpg").read_bytes())
    worker = _start(system, "worker")  # runs throughout, as in production
    try:
        digests = _queue_gates(system, corpus)
        _wait("a job starts", lambda: "running" in _states(system), 120)
        system.redis.kill()  # type: ignore[attr-defined]  # with the messages nobody took yet
        app = create_app(system.settings)
        client = app.test_client()
        # An upload during the outage: accepted and queued, as on any day.
        headers = {"Authorization": f"Bearer {api_token(system, make_account(system, 'uploader'))}"}
        data = (corpus.faces_dir / "kit_harington/kit_harington_john1.jpeg").read_bytes()
        upload = client.post(
            "/api/v1/photos",
            data={"file": (io.BytesIO(data), "x.jpg"), "channel": "website"},
            headers=headers,
        )
        assert upload.status_code == 202, upload.get_json()
        state = client.get(f"/api/v1/photos/{upload.get_json()['id']}", headers=headers).get_json()
        assert state["status"] == "queued"
        digests.append(hashlib.sha256(data).hexdigest())
        # A parent withdraws with their link during the outage: a receipt, as on any day.
        link = run(system, "people", "link", "ann").output.strip().split()[-1]
        path = "/withdraw/" + link.rsplit("/", 1)[1]
        answer = client.post(path, data={"channels": ["website"], "csrf_token": csrf(client, path)})
        assert answer.status_code == 302
        assert re.search(r"WD-[A-Z0-9]{10}", client.get(answer.headers["Location"]).get_data(as_text=True))
        withdrawn_at = time.monotonic()
        system.redis.start()  # type: ignore[attr-defined]  # back, and empty
        _wait("the copies gone", lambda: _copies_gone(system, shown), PROMISE)
        assert time.monotonic() - withdrawn_at < PROMISE
        _wait("every job done", lambda: _all_done(system), 180)
        app.extensions["gatekeeper"].db.dispose()
    finally:
        _stop(worker)
    _check_once_each(system, digests)
