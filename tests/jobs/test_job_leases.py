"""The database is the record of every job: leases, the sweeper, and jobs that run twice but act once."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from engines import recorded_runtime
from sqlalchemy import func, select

from consent_db import audit
from consent_db.models import AuditEvent, Decision, Job, Publication, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper import queueing
from gatekeeper.consent import records as consent_service
from gatekeeper.photos.gate import original_key
from gatekeeper.publishing import placements
from gatekeeper.publishing import publish as publish_service
from gatekeeper.queueing import rows as jobs_service
from gatekeeper.runtime import Runtime
from helpers import add_people, seed_gated_photo
from workers import JobQueue, run_recheck

LEASE = 0.3  # seconds: short, so that a lease lapses within the test


@pytest.fixture
def leased(runtime: Runtime) -> Iterator[Runtime]:
    """The test's runtime with a short lease (and the same database)."""
    other = recorded_runtime(
        runtime.settings.with_(queue={"job_lease": LEASE, "job_max_attempts": 3}), sender=JobQueue
    )
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


@pytest.fixture
def photo_bytes(corpus: Any) -> bytes:
    return (corpus.faces_dir / "biden/biden2.jpg").read_bytes()


def _job(runtime: Runtime, job_id: int) -> Job:
    with unit_of_work(runtime.sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _count(runtime: Runtime, model: Any, *where: Any) -> int:
    with unit_of_work(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _events(runtime: Runtime) -> dict[str, int]:
    with unit_of_work(runtime.sessions) as session:
        rows = session.execute(select(AuditEvent.action, func.count()).group_by(AuditEvent.action)).all()
        assert audit.verify(session).ok
    return {action: n for action, n in rows}


def _take(runtime: Runtime, queue: JobQueue, job_id: int) -> list[Any]:
    """What a worker does when it takes a job's message: mark the job running under its lease."""
    message = queue.huey.dequeue()
    assert message is not None and message.args == (job_id,)
    with unit_of_work(runtime.sessions) as session:
        job = jobs_service.start_job(
            session, job_id, now=datetime.now(UTC), lease=runtime.settings.queue.job_lease
        )
        assert job is not None
        return list(job.args)


def test_a_job_taken_by_a_process_that_died_is_sent_again_once_its_lease_lapses(
    leased: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(leased)
    photo_id = seed_gated_photo(leased, photo_bytes, now=now)
    with unit_of_work(leased.sessions) as session:
        job_id = queue.enqueue_publish(session, photo_id, "website")
    _take(leased, queue, job_id)  # a worker took the message, started the job and was killed
    assert queue.sweep() == 0  # its lease has not lapsed: nobody else may run it yet
    time.sleep(LEASE + 0.1)
    assert queue.sweep() == 1
    job = _job(leased, job_id)
    assert job.state == "queued" and "lease lapsed" in (job.error or "")
    assert queue.drain() == 1
    job = _job(leased, job_id)
    assert (job.state, job.attempts, job.error) == ("done", 2, None)
    assert _count(leased, Publication) == 1


def test_a_queued_job_whose_message_was_lost_is_sent_again_and_one_still_waiting_is_not(
    leased: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(leased)
    first = seed_gated_photo(leased, photo_bytes, now=now)
    second = seed_gated_photo(leased, photo_bytes + b"2", now=now)
    with unit_of_work(leased.sessions) as session:
        lost = queue.enqueue_publish(session, first, "website")
        waiting = queue.enqueue_publish(session, second, "website")
    # The queue's storage loses the first message (a Redis restarted empty loses all of them).
    messages = [queue.huey.dequeue(), queue.huey.dequeue()]
    queue.huey.enqueue(next(m for m in messages if m is not None and m.args == (waiting,)))
    time.sleep(LEASE + 0.1)
    assert queue.sweep() == 1  # only the lost one: the other is still in the queue
    assert sorted(t.args[0] for t in queue.huey.pending()) == [lost, waiting]
    assert queue.drain() == 2
    assert {_job(leased, j).state for j in (lost, waiting)} == {"done"}


def test_a_running_job_under_a_live_lease_is_not_started_again_by_a_duplicate_message(
    leased: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(leased)
    photo_id = seed_gated_photo(leased, photo_bytes, now=now)
    with unit_of_work(leased.sessions) as session:
        job_id = queue.enqueue_publish(session, photo_id, "website")
    _take(leased, queue, job_id)
    queue.execute("publish", job_id, retries_left=0)  # the duplicate message
    assert (_job(leased, job_id).state, _job(leased, job_id).attempts) == ("running", 1)
    assert _count(leased, Publication) == 0


def test_a_job_whose_process_dies_every_time_is_failed_with_the_reason(
    leased: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(leased)
    photo_id = seed_gated_photo(leased, photo_bytes, now=now)
    with unit_of_work(leased.sessions) as session:
        job_id = queue.enqueue_publish(session, photo_id, "website")
    for _ in range(3):  # GATEKEEPER_JOB_MAX_ATTEMPTS=3 in this test
        _take(leased, queue, job_id)
        time.sleep(LEASE + 0.1)
        queue.sweep()
    job = _job(leased, job_id)
    assert job.state == "failed" and job.attempts == 3
    assert "stopped 3 times" in (job.error or "")
    with unit_of_work(leased.sessions) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.failed")).one()
    assert event.subject == f"job:{job_id}" and event.details["error"] == job.error


def test_the_lease_is_renewed_while_a_job_runs_so_no_sweep_sends_it_again(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    # A lease longer than elsewhere here, so that a busy machine never delays a renewal past it.
    leased = recorded_runtime(runtime.settings.with_(queue={"job_lease": 1.0}), sender=JobQueue)
    try:
        queue = JobQueue.of(leased)
        photo_id = seed_gated_photo(leased, photo_bytes, now=now)
        with unit_of_work(leased.sessions) as session:
            job_id = queue.enqueue_publish(session, photo_id, "website")
        _take(leased, queue, job_id)
        lease = queue.holding_lease(job_id)  # as while its work runs
        sent = []
        try:
            started = time.monotonic()
            while time.monotonic() - started < 3.0:  # three leases' time
                time.sleep(0.4)
                sent.append(queue.sweep())
        finally:
            lease.stop()
        assert len(sent) >= 5 and sum(sent) == 0
        assert (_job(leased, job_id).state, _job(leased, job_id).attempts) == ("running", 1)
        time.sleep(1.1)  # nobody renews it now, as when its process died
        assert queue.sweep() == 1
    finally:
        if "db" in leased.__dict__:
            leased.db.dispose()


def _seed_job(runtime: Runtime, queue: JobQueue, task: str, photo_bytes: bytes, now: datetime) -> int:
    """A job of kind `task` with work to do: a photo to gate, publish, or take down."""
    if task == "gate":
        sha = hashlib.sha256(photo_bytes).hexdigest()
        runtime.originals.put(original_key(sha), photo_bytes)
        with unit_of_work(runtime.sessions) as session:
            return queue.enqueue_gate(session, sha, "website")
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    if task == "publish":
        with unit_of_work(runtime.sessions) as session:
            return queue.enqueue_publish(session, photo_id, "website")
    with unit_of_work(runtime.sessions) as session:
        publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=runtime.published,
            originals=runtime.originals,
            settings=runtime.settings,
            now=datetime.now(UTC),
            actor="t",
        )
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(
            session, "ann", [], settings=runtime.settings, now=datetime.now(UTC), actor="t"
        )
        job_id = queueing.takedown_requested(session, ids["ann"])
    assert job_id is not None
    return job_id


@pytest.mark.parametrize("task", ["gate", "publish", "takedown"])
def test_a_job_run_twice_because_its_lease_lapsed_leaves_its_effects_once(
    leased: Runtime, photo_bytes: bytes, now: datetime, task: str
) -> None:
    queue = JobQueue.of(leased)
    job_id = _seed_job(leased, queue, task, photo_bytes, now)
    before = _events(leased)
    args = _take(leased, queue, job_id)  # the first run starts, then is slow: its lease lapses
    time.sleep(LEASE + 0.1)
    assert queue.sweep() == 1
    assert queue.drain() == 1  # a second run does the job and records it done
    queue.run_started(task, job_id, args, retries_left=0)  # the first run finishes after all
    job = _job(leased, job_id)
    assert (job.state, job.attempts) == ("done", 2)
    after = _events(leased)
    added = {action: n - before.get(action, 0) for action, n in after.items() if n != before.get(action, 0)}
    expected = {
        "gate": {"photo.gated": 1},
        "publish": {"photo.published": 1},
        "takedown": {"publication.taken_down": 1},
    }[task]
    assert {a: n for a, n in added.items() if a in expected} == expected
    assert all(n == 1 for n in added.values()), added  # no audit entry of any kind twice
    if task == "gate":
        assert _count(leased, Decision) == 1
    if task == "publish":
        assert _count(leased, Publication) == 1 and len(list(leased.published.iter_keys())) == 1
    if task == "takedown":
        assert _count(leased, Publication, Publication.taken_down_at.is_not(None)) == 1
        assert list(leased.published.iter_keys()) == []


def test_the_periodic_recheck_opens_a_takedown_task_that_names_the_person(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann", "bob")
    with unit_of_work(runtime.sessions) as session:
        consent_service.grant_consent(
            session,
            "ann",
            "website",
            settings=runtime.settings,
            now=now,
            actor="t",
            granted_by="self",
            valid_until=date(2026, 6, 20),
        )
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["bob"], ids["ann"]))
    with unit_of_work(runtime.sessions) as session:
        placements.record_external(
            session,
            photo_id,
            channel="website",
            where="https://example.org/news/1",
            settings=runtime.settings,
            now=now,
            actor="t",
        )
    with unit_of_work(runtime.sessions) as session:
        run_recheck(runtime, session, "scheduler")  # runs today, long after Ann's consent ended
    with unit_of_work(runtime.sessions) as session:
        [task] = session.scalars(select(TakedownTask)).all()
    assert task.photo_id == photo_id and task.person_id == ids["ann"]


def test_a_job_done_by_another_run_is_not_marked_failed_by_a_late_error(
    leased: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(leased)
    photo_id = seed_gated_photo(leased, photo_bytes, now=now)
    with unit_of_work(leased.sessions) as session:
        job_id = queue.enqueue_publish(session, photo_id, "website")
    assert queue.drain() == 1
    with unit_of_work(leased.sessions) as session:
        jobs_service.finish_job(session, job_id, now=now + timedelta(seconds=1), error="late: boom")
    assert (_job(leased, job_id).state, _job(leased, job_id).error) == ("done", None)
