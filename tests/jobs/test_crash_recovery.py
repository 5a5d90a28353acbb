"""Workers killed with SIGKILL mid-job, then recovery: nothing unapproved published, lost or orphaned."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from consent_db import audit
from consent_db.models import AuditEvent, Job, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper.consent import records as consent_service
from gatekeeper.runtime import Runtime
from helpers import add_people, run, seed_gated_photo
from workers import JobQueue, run_purge


def _done(runtime: Runtime) -> int:
    with unit_of_work(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(Job).where(Job.state == "done")) or 0)


def test_workers_killed_mid_publish_then_recovered_leave_a_consistent_state(
    runtime: Runtime, corpus: Any, now: datetime, s3: Any
) -> None:
    prefix = f"crash-{secrets.token_hex(4)}"
    on_s3 = Runtime(
        runtime.settings.with_(storage={"published_url": f"s3://{s3.bucket}/{prefix}"}), sender=JobQueue
    )
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    ids = add_people(on_s3, now, "ann", "bob")
    photos = [
        seed_gated_photo(on_s3, data + bytes([i]), now=now, person_ids=(ids["ann"] if i % 2 else ids["bob"],))
        for i in range(24)
    ]
    # Ann withdrew before any publish job ran: none of her photos may appear, whatever happens.
    with unit_of_work(on_s3.sessions) as session:
        from gatekeeper.consent import records as consent_service

        consent_service.withdraw_consent(session, "ann", [], settings=on_s3.settings, now=now, actor="t")
    queue = JobQueue.of(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        for photo_id in photos:
            queue.enqueue_publish(session, photo_id, "website")
    settings = on_s3.settings
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_PUBLISHED_URL": settings.storage.published_url,
        # As the test's own settings: faces are matched without a recorded DPIA.
        "GATEKEEPER_DPIA_REQUIRED": "0",
    }
    command = [str(Path(sys.executable).parent / "gatekeeper"), "worker", "--drain"]
    kills = 0
    for _ in range(3):  # kill three workers, each somewhere inside the job it is running
        before = _done(on_s3)
        worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while _done(on_s3) < before + 2 and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(secrets.randbelow(50) / 1000)
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(timeout=30)
    assert kills >= 1
    # Recovery: the queue drained, then jobs a dead worker took with it (left queued or running
    # with nothing waiting) sent again and drained, and orphans swept.
    assert run(on_s3, "worker", "--drain").exit_code == 0
    with unit_of_work(on_s3.sessions) as session:
        stuck = list(session.scalars(select(Job.id).where(Job.state != "done")))
    for job_id in stuck:
        assert run(on_s3, "jobs", "--retry", job_id).exit_code == 0
    assert run(on_s3, "worker", "--drain").exit_code == 0
    report = run_purge(on_s3, now=datetime.now(UTC) + timedelta(hours=2), actor="t")
    assert [f for f in report.failures if f["kind"] != "photo"] == []

    with unit_of_work(on_s3.sessions) as session:
        states = list(session.scalars(select(Job.state)))
        publications = list(session.scalars(select(Publication)))
        published_events = list(
            session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.published"))
        )
        chain = audit.verify(session)
    assert set(states) == {"done"}
    live = [p for p in publications if p.taken_down_at is None]
    bobs = {p for i, p in enumerate(photos) if i % 2 == 0}
    # Exactly Bob's photos are live, each once; no photo of Ann's was ever recorded as published.
    assert sorted(p.photo_id for p in live) == sorted(bobs)
    assert {e.details["publication"] for e in published_events} == {p.id for p in publications}
    # Every live record's object is there, and nothing else is in the bucket.
    keys = sorted(k.removeprefix(f"{prefix}/") for k, _ in s3.versions(f"{prefix}/"))
    assert keys == sorted(p.key for p in live if p.key)
    assert chain.ok
    if "db" in on_s3.__dict__:
        on_s3.db.dispose()


# --- a worker killed at each step boundary, deterministically --------------------------------------

# Run as the worker process: hooks on third-party libraries (botocore's events, SQLAlchemy's engine
# and session events) send SIGKILL to the process at one exact boundary of one step, then the
# ordinary `gatekeeper worker --drain` runs. Arguments: boundary, audit action, S3 operation.
HARNESS = r"""
import os
import signal
import sys

import boto3
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

boundary, action, operation = sys.argv[1:4]
seen = {"audit": False}


def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


if boundary == "after-store-write":
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(f"after-call.s3.{operation}", die)


@event.listens_for(Engine, "before_cursor_execute")
def audit_insert(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("INSERT INTO AUDIT_EVENTS") and action in str(parameters):
        if boundary == "before-audit":
            die()
        seen["audit"] = True


@event.listens_for(Session, "before_commit")
def before_commit(session):
    if boundary == "before-commit" and seen["audit"]:
        die()


@event.listens_for(Session, "after_commit")
def after_commit(session):
    if boundary == "after-commit" and seen["audit"]:
        die()


from gatekeeper.cli import main

main(["worker", "--drain"])
"""

BOUNDARIES = ("after-store-write", "before-audit", "before-commit", "after-commit")
# Step -> (the audit action that marks it, the S3 call that writes or deletes for it).
STEPS = {
    "publish": ("photo.published", "PutObject"),
    "takedown": ("publication.taken_down", "DeleteObjects"),
    "purge": ("photo.purged", "DeleteObjects"),
}


def _on_s3(runtime: Runtime, s3: Any) -> tuple[Runtime, str]:
    prefix = f"kill-{secrets.token_hex(4)}"
    settings = runtime.settings.with_(
        storage={
            "published_url": f"s3://{s3.bucket}/{prefix}/published",
            "originals_url": f"s3://{s3.bucket}/{prefix}/originals",
        }
    )
    return Runtime(settings, sender=JobQueue), prefix


def _kill_worker_at(runtime: Runtime, boundary: str, step: str) -> int:
    settings = runtime.settings
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_PUBLISHED_URL": settings.storage.published_url,
        "GATEKEEPER_ORIGINALS_URL": settings.storage.originals_url,
        "GATEKEEPER_DPIA_REQUIRED": "0",
    }
    action, operation = STEPS[step]
    worker = subprocess.run(
        [sys.executable, "-c", HARNESS, boundary, action, operation],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return worker.returncode


def _recover(runtime: Runtime) -> None:
    """What an operator does after a crash: drain, send again what a dead worker took, sweep."""
    assert run(runtime, "worker", "--drain").exit_code == 0
    with unit_of_work(runtime.sessions) as session:
        stuck = list(session.scalars(select(Job.id).where(Job.state != "done")))
    for job_id in stuck:
        assert run(runtime, "jobs", "--retry", job_id).exit_code == 0
    assert run(runtime, "worker", "--drain").exit_code == 0
    # The orphan sweep touches only objects older than its grace period: look from later on.
    report = run_purge(runtime, now=datetime.now(UTC) + timedelta(hours=2), actor="t")
    assert report.failures == []


def _events(runtime: Runtime, action: str) -> list[AuditEvent]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _check_common(runtime: Runtime) -> None:
    with unit_of_work(runtime.sessions) as session:
        assert set(session.scalars(select(Job.state))) == {"done"}
        assert audit.verify(session).ok


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_worker_killed_at_each_boundary_of_publish_recovers(
    runtime: Runtime, corpus: Any, s3: Any, boundary: str
) -> None:
    on_s3, prefix = _on_s3(runtime, s3)
    now = datetime.now(UTC)
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    ids = add_people(on_s3, now, "ann", "bob")
    refused = seed_gated_photo(on_s3, data, now=now, person_ids=(ids["ann"],))
    approved = seed_gated_photo(on_s3, data + b"b", now=now, person_ids=(ids["bob"],))
    with unit_of_work(on_s3.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=on_s3.settings, now=now, actor="t")
    JobQueue.of(on_s3).drain(max_wait=5)  # Ann's takedown: nothing of hers is published
    queue = JobQueue.of(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        queue.enqueue_publish(session, refused, "website")
        queue.enqueue_publish(session, approved, "website")
    assert _kill_worker_at(on_s3, boundary, "publish") == -signal.SIGKILL
    _recover(on_s3)
    _check_common(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        publications = list(session.scalars(select(Publication)))
    # Only the photo the gate approved at publishing is published, once; its event is recorded once.
    assert [(p.photo_id, p.taken_down_at) for p in publications] == [(approved, None)]
    [event] = _events(on_s3, "photo.published")
    assert event.details["publication"] == publications[0].id
    # Its object is there and nothing else is: no orphan from the killed attempt.
    keys = [k for k, _ in s3.versions(f"{prefix}/published/")]
    assert keys == [f"{prefix}/published/{publications[0].key}"]
    if "db" in on_s3.__dict__:
        on_s3.db.dispose()


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_worker_killed_at_each_boundary_of_takedown_recovers(
    runtime: Runtime, corpus: Any, s3: Any, boundary: str
) -> None:
    on_s3, prefix = _on_s3(runtime, s3)
    now = datetime.now(UTC)
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    ids = add_people(on_s3, now, "bob")
    photo_id = seed_gated_photo(on_s3, data, now=now, person_ids=(ids["bob"],))
    assert run(on_s3, "publish", photo_id, "--channel", "website").exit_code == 0
    assert len(s3.versions(f"{prefix}/published/")) == 1
    # Bob withdraws: his takedown job is queued by the withdrawal and taken by the doomed worker.
    assert run(on_s3, "consent", "withdraw", "bob").exit_code == 0
    assert _kill_worker_at(on_s3, boundary, "takedown") == -signal.SIGKILL
    _recover(on_s3)
    _check_common(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        [publication] = session.scalars(select(Publication)).all()
    assert publication.taken_down_at is not None
    [event] = _events(on_s3, "publication.taken_down")  # recorded once, whichever run did it
    assert event.details["publication"] == publication.id
    assert s3.versions(f"{prefix}/published/") == []
    if "db" in on_s3.__dict__:
        on_s3.db.dispose()


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_a_worker_killed_at_each_boundary_of_purge_recovers(
    runtime: Runtime, corpus: Any, s3: Any, boundary: str
) -> None:
    on_s3, prefix = _on_s3(runtime, s3)
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    # Blocked and never reviewed, decided 60 days ago: past its 30 days. A recent one is kept.
    due = seed_gated_photo(on_s3, data, now=datetime.now(UTC) - timedelta(days=60), status="blocked")
    kept = seed_gated_photo(on_s3, data + b"k", now=datetime.now(UTC), status="blocked")
    assert len(s3.versions(f"{prefix}/originals/")) == 2
    queue = JobQueue.of(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        queue.enqueue_purge(session)
    assert _kill_worker_at(on_s3, boundary, "purge") == -signal.SIGKILL
    _recover(on_s3)
    _check_common(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        photos = list(session.scalars(select(Photo.id)))
        kept_key = session.scalar(select(Photo.original_key).where(Photo.id == kept))
    assert photos == [kept]  # the due photo is gone, the other photo's record is not lost
    [event] = _events(on_s3, "photo.purged")
    assert event.subject == f"photo:{due}"
    keys = [k for k, _ in s3.versions(f"{prefix}/originals/")]
    assert keys == [f"{prefix}/originals/{kept_key}"]  # no version of the purged original remains
    if "db" in on_s3.__dict__:
        on_s3.db.dispose()
