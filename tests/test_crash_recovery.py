"""Workers killed with SIGKILL mid-job, then recovery: nothing unapproved published, lost or orphaned."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from consent_db import audit
from consent_db.models import AuditEvent, Job, Publication
from consent_db.session import unit_of_work
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
    on_s3 = Runtime(dataclasses.replace(runtime.settings, published_url=f"s3://{s3.bucket}/{prefix}"))
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    ids = add_people(on_s3, now, "ann", "bob")
    photos = [
        seed_gated_photo(on_s3, data + bytes([i]), now=now, person_ids=(ids["ann"] if i % 2 else ids["bob"],))
        for i in range(24)
    ]
    # Ann withdrew before any publish job ran: none of her photos may appear, whatever happens.
    with unit_of_work(on_s3.sessions) as session:
        from gatekeeper.services import consent as consent_service

        consent_service.withdraw_consent(session, "ann", [], settings=on_s3.settings, now=now, actor="t")
    queue = JobQueue(on_s3)
    with unit_of_work(on_s3.sessions) as session:
        for photo_id in photos:
            queue.enqueue_publish(session, photo_id, "website")
    settings = on_s3.settings
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_PUBLISHED_URL": settings.published_url,
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
