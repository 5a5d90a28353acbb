"""The queue: jobs sent only after commit, retried only for transient errors, drained by real workers."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from engines import recorded_runtime
from sqlalchemy import select

from consent_db.models import AuditEvent, Job, Photo, Publication
from consent_db.session import unit_of_work
from gatekeeper.publishing import recheck as publication_checks
from gatekeeper.runtime import Runtime
from helpers import add_people, add_person, run, seed_gated_photo
from workers import JobQueue

REDIS_URL = os.environ.get("GATEKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def photo_bytes(corpus: Any) -> bytes:
    return (corpus.faces_dir / "biden/biden2.jpg").read_bytes()


def _other(runtime: Runtime, **changes: Any) -> Iterator[Runtime]:
    other = recorded_runtime(runtime.settings.with_(**changes), sender=JobQueue)
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


def _jobs(runtime: Runtime) -> list[Job]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(Job).order_by(Job.id)))


def test_a_job_runs_only_after_its_transaction_commits(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue(runtime, immediate=True)
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    with unit_of_work(runtime.sessions) as session:
        queue.enqueue_publish(session, photo_id, "website")
        assert list(runtime.published.iter_keys()) == []  # immediate mode, yet nothing ran yet
    [job] = _jobs(runtime)
    assert (job.task, job.args, job.state, job.attempts) == ("publish", [photo_id, "website"], "done", 1)
    assert len(list(runtime.published.iter_keys())) == 1


def test_a_rollback_sends_nothing(runtime: Runtime, photo_bytes: bytes, now: datetime) -> None:
    queue = JobQueue(runtime, immediate=True)
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    with pytest.raises(RuntimeError), unit_of_work(runtime.sessions) as session:
        queue.enqueue_publish(session, photo_id, "website")
        raise RuntimeError("the change that needed the job failed")
    assert _jobs(runtime) == []
    assert list(runtime.published.iter_keys()) == []


def test_an_error_that_will_not_pass_fails_the_job_at_once_and_is_audited(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    queue = JobQueue.of(runtime)
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    with unit_of_work(runtime.sessions) as session:
        queue.enqueue_publish(session, photo_id, "print")  # the photo was gated for the website
    assert queue.drain() == 1
    [job] = _jobs(runtime)
    assert (job.state, job.attempts) == ("failed", 1) and "gated for 'website'" in (job.error or "")
    with unit_of_work(runtime.sessions) as session:
        failed = session.scalars(select(AuditEvent).where(AuditEvent.action == "job.failed")).one()
        assert failed.details["task"] == "publish"
    listed = run(runtime, "jobs", "--json")
    assert [json.loads(line)["state"] for line in listed.stdout.splitlines()] == ["failed"]


def test_a_transient_backend_error_is_retried_with_backoff_then_failed_and_can_be_retried(
    runtime: Runtime, photo_bytes: bytes, now: datetime, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"a file where the published folder should be")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    for broken in _other(
        runtime, storage={"published_url": str(blocked)}, queue={"job_retries": 2, "job_retry_delay": 0.05}
    ):
        queue = JobQueue.of(broken)
        with unit_of_work(broken.sessions) as session:
            job_id = queue.enqueue_publish(session, photo_id, "website")
        assert queue.drain() == 3  # the first attempt and two retries
        [job] = _jobs(broken)
        assert (job.state, job.attempts) == ("failed", 3) and "StorageError" in (job.error or "")
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Publication)).all() == []
    # Once the store works again, an operator retries the failed job.
    assert run(runtime, "jobs", "--retry", job_id).exit_code == 0
    assert JobQueue.of(runtime).drain() == 1
    [job] = _jobs(runtime)
    assert (job.state, job.attempts) == ("done", 4)
    assert len(list(runtime.published.iter_keys())) == 1


def test_a_withdrawal_queues_a_takedown_that_deletes_the_published_copy(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    assert run(runtime, "publish", photo_id, "--channel", "website").exit_code == 0
    assert len(list(runtime.published.iter_keys())) == 1
    withdrawn = run(runtime, "consent", "withdraw", "ann", "--channel", "website")
    assert "takedown job" in withdrawn.stdout
    assert JobQueue.of(runtime).drain() == 1
    assert list(runtime.published.iter_keys()) == []
    with unit_of_work(runtime.sessions) as session:
        [publication] = session.scalars(select(Publication)).all()
        assert publication.taken_down_at is not None


def test_a_worker_refuses_a_schema_that_is_not_current_until_db_upgrade(tmp_path: Path) -> None:
    from gatekeeper.config import Settings

    runtime = Runtime(Settings(home=tmp_path / "fresh"))
    result = run(runtime, "worker", "--drain")
    assert result.exit_code == 1 and "gatekeeper db upgrade" in result.output
    assert run(runtime, "db", "upgrade").exit_code == 0
    assert run(runtime, "worker", "--drain").exit_code == 0


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def test_two_worker_processes_drain_one_redis_queue_each_job_once(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    require_redis = _redis_reachable()
    from conftest import require

    require(require_redis, f"Redis not reachable at {REDIS_URL}")
    name = f"gk-test-{secrets.token_hex(4)}"
    photo_ids = [seed_gated_photo(runtime, photo_bytes + bytes([i]), now=now) for i in range(30)]
    for redis_runtime in _other(runtime, queue={"url": REDIS_URL, "name": name}):
        queue = JobQueue.of(redis_runtime)
        with unit_of_work(redis_runtime.sessions) as session:
            for photo_id in photo_ids:
                queue.enqueue_publish(session, photo_id, "website")
        settings = redis_runtime.settings
        env = {
            **os.environ,
            "GATEKEEPER_HOME": str(settings.home),
            "GATEKEEPER_DATABASE_URL": settings.database_url,
            "GATEKEEPER_QUEUE_URL": REDIS_URL,
            "GATEKEEPER_QUEUE_NAME": name,
        }
        command = [str(Path(sys.executable).parent / "gatekeeper"), "worker", "--drain"]
        workers = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [w.communicate(timeout=300)[1] for w in workers]
        assert [w.returncode for w in workers] == [0, 0], outputs
        queue.huey.storage.flush_all()
    jobs = _jobs(runtime)
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * 30
    with unit_of_work(runtime.sessions) as session:
        publications = session.scalars(select(Publication)).all()
        actors = {
            e.actor for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.published"))
        }
    assert sorted(p.photo_id for p in publications) == photo_ids  # each photo published exactly once
    # Which worker takes which job is up to the queue: on a busy machine the first worker to start
    # may drain all of them. What must hold is above: each job done once, both exit cleanly.
    assert 1 <= len(actors) <= 2 and all(a.startswith("worker:") for a in actors)


@pytest.mark.slow
def test_a_long_running_worker_gates_with_the_templates_and_consent_of_the_moment(
    runtime: Runtime, corpus: Any
) -> None:
    queue = JobQueue.of(runtime)  # one long-lived queue and runtime, as in a worker process
    photo = corpus.faces_dir / "biden/biden2.jpg"

    def gate_queued(jobs: int = 1) -> tuple[str, list[str]]:
        queued = run(runtime, "gate", "--queue", "--channel", "website", "--json", photo)
        assert queued.exit_code == 0 and json.loads(queued.stdout)["job"] is not None
        assert queue.drain() == jobs
        with unit_of_work(runtime.sessions) as session:
            [photo_row] = session.scalars(select(Photo)).all()
            return photo_row.status, list(photo_row.reasons)

    assert gate_queued() == ("blocked", ["unknown_face"])
    add_person(runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"])
    assert gate_queued() == ("publishable", [])
    run(runtime, "consent", "withdraw", "biden")
    assert gate_queued(jobs=2) == ("blocked", ["consent_withdrawn"])  # the takedown job, then the gate
    assert [j.state for j in _jobs(runtime)] == ["done"] * 4  # three gate jobs and the takedown


@pytest.mark.slow
def test_a_withdrawal_while_the_gate_job_runs_leaves_nothing_of_the_person_published(
    runtime: Runtime, corpus: Any
) -> None:

    add_person(runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"])
    queued = run(runtime, "gate", "--queue", "--channel", "website", corpus.faces_dir / "biden/biden2.jpg")
    assert queued.exit_code == 0, queued.output
    settings = runtime.settings
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_DPIA_REQUIRED": "0",
    }
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "gatekeeper"), "worker", "--drain"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while [j.state for j in _jobs(runtime)] != ["running"]:  # the worker has taken the gate job
            assert worker.poll() is None and time.monotonic() < deadline, "the gate job never started"
            time.sleep(0.05)
        withdrawn = run(runtime, "consent", "withdraw", "biden")  # commits while the faces are matched
        assert withdrawn.exit_code == 0, withdrawn.output
        _, stderr = worker.communicate(timeout=300)
    finally:
        worker.kill()
    assert worker.returncode == 0, stderr
    JobQueue.of(runtime).drain()  # the takedown job, if the worker had already found the queue empty
    with unit_of_work(runtime.sessions) as session:
        [photo] = session.scalars(select(Photo)).all()
        photo_id = photo.id
    # Whichever consent the gate read, publishing now decides again and finds the withdrawal.
    published = run(runtime, "publish", str(photo_id), "--channel", "website")
    assert published.exit_code == 1 and "NOT published" in published.output, published.output
    queue = JobQueue.of(runtime)
    with unit_of_work(runtime.sessions) as session:
        queue.enqueue_publish(session, photo_id, "website")
    assert queue.drain() == 1
    assert [(j.task, j.state) for j in _jobs(runtime)] == [
        ("gate", "done"),
        ("takedown", "done"),
        ("publish", "done"),  # done: it decided, refused and audited the refusal
    ]
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Publication)).all() == []
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.action == "publication.refused")).all()
    assert len(refusals) == 2
    assert list(runtime.published.iter_keys()) == []


def test_the_recheck_job_takes_down_a_copy_whose_consent_has_since_expired(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    from datetime import date

    from gatekeeper.consent import records as consent_service
    from gatekeeper.publishing import publish as publish_service

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
    expiring = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    lasting = seed_gated_photo(runtime, photo_bytes + b"b", now=now, person_ids=(ids["bob"],))
    for photo_id in (expiring, lasting):
        with unit_of_work(runtime.sessions) as session:
            publish_service.publish_photo(
                session,
                photo_id,
                channel="website",
                store=runtime.published,
                originals=runtime.originals,
                settings=runtime.settings,
                now=now,
                actor="t",
            )
    queue = JobQueue.of(runtime)
    with unit_of_work(runtime.sessions) as session:
        queue.enqueue_recheck(session)
    assert queue.drain() == 1  # the job decides at the moment it runs, long after 20 June 2026
    with unit_of_work(runtime.sessions) as session:
        live = {p.photo_id for p in publication_checks.live_publications(session)}
    assert live == {lasting}
    assert len(list(runtime.published.iter_keys())) == 1


def test_a_queue_that_is_down_never_fails_the_withdrawal_and_the_sweeper_sends_its_job_later(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    for down in _other(runtime, queue={"url": "redis://127.0.0.1:1/0"}):  # nothing listens on port 1
        result = run(down, "consent", "withdraw", "ann")
        assert result.exit_code == 0, result.output
        [job] = _jobs(down)
        assert (job.task, job.args, job.state) == ("takedown", [ids["ann"]], "queued")
        assert JobQueue.of(down).reachable() is False
    # The withdrawal committed and its job waits in the database; no command is needed: once the
    # queue answers, the sweeper finds a queued job that is not in the queue and sends it.
    for back in _other(runtime, queue={"job_lease": 0.2}):
        queue = JobQueue.of(back)
        assert queue.reachable() is True
        assert queue.huey.pending_count() == 0  # the message was never sent
        time.sleep(0.3)
        assert queue.drain() == 1  # `worker --drain` sweeps first
        assert [j.state for j in _jobs(back)] == ["done"]
