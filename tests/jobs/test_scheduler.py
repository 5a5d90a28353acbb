"""Periodic jobs run once per tick however many schedulers fire; `worker --workers N` uses N processes."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from huey import crontab
from sqlalchemy import select

from consent_db.models import AuditEvent, Job, Publication
from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime
from helpers import seed_gated_photo
from workers import PERIODIC, TASKS, JobQueue, last_tick

REDIS_URL = os.environ.get("GATEKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
GATEKEEPER = str(Path(sys.executable).parent / "gatekeeper")


def _other(runtime: Runtime, **changes: Any) -> Iterator[Runtime]:
    other = Runtime(runtime.settings.with_(**changes), sender=JobQueue)
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


def _jobs(runtime: Runtime, *tasks: str) -> list[Job]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(Job).where(Job.task.in_(tasks)).order_by(Job.id)))


def _require_redis() -> None:
    import redis
    from conftest import require

    try:
        reachable = bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        reachable = False
    require(reachable, f"Redis not reachable at {REDIS_URL}")


def _env(runtime: Runtime, **extra: str) -> dict[str, str]:
    settings = runtime.settings
    return {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        **extra,
    }


def test_a_tick_is_the_latest_minute_the_schedule_matches() -> None:
    every_quarter = crontab(*["*/15", "*", "*", "*", "*"])
    nightly = crontab(*["30", "2", "*", "*", "*"])
    at = datetime(2026, 3, 29, 10, 7, 31, tzinfo=UTC)
    assert last_tick(every_quarter, at) == datetime(2026, 3, 29, 10, 0, tzinfo=UTC)
    assert last_tick(every_quarter, at.replace(minute=15, second=0)) == at.replace(minute=15, second=0)
    assert last_tick(nightly, at.replace(hour=1)) == datetime(2026, 3, 28, 2, 30, tzinfo=UTC)


def test_every_periodic_job_is_a_task_scheduled_by_a_setting(runtime: Runtime) -> None:
    def is_setting(dotted: str) -> bool:
        part, _, name = dotted.partition(".")
        value = getattr(runtime.settings, part, None)
        return dataclasses.is_dataclass(value) and name in {f.name for f in dataclasses.fields(value)}

    assert [(p.kind, p.schedule) for p in PERIODIC] == [
        ("recheck", "queue.recheck_schedule"),
        ("purge", "retention.purge_schedule"),
        ("send_mail", "mail.retry_schedule"),
        ("send_reminders", "forms.reminder_schedule"),
        ("staff_digest", "mail.digest_schedule"),
        ("rescan", "scan.rescan_schedule"),
    ]
    assert all(p.kind in TASKS and is_setting(p.schedule) for p in PERIODIC)
    assert set(JobQueue.of(runtime).periodic) == {p.kind for p in PERIODIC}


def test_without_an_smtp_server_the_periodic_email_run_writes_no_job(runtime: Runtime) -> None:
    assert not runtime.settings.mail.configured
    JobQueue.of(runtime).periodic["send_mail"].call_local()
    assert _jobs(runtime, "send_mail") == []
    # With a server configured (nothing waiting to be sent) the tick is claimed and run.
    for configured in _other(
        runtime, mail={"smtp_url": "smtp://127.0.0.1:9", "from_address": "photos@school.example"}
    ):
        JobQueue.of(configured).periodic["send_mail"].call_local()
    assert [(j.task, j.state) for j in _jobs(runtime, "send_mail")] == [("send_mail", "done")]


def test_two_schedulers_firing_one_tick_run_its_job_once(runtime: Runtime) -> None:
    first = JobQueue.of(runtime)
    for second_runtime in _other(runtime):
        second = JobQueue.of(second_runtime)  # another process's scheduler, on the same database
        for name in ("recheck", "purge"):
            first.periodic[name].call_local()
            second.periodic[name].call_local()
            first.periodic[name].call_local()
    jobs = _jobs(runtime, "recheck", "purge")
    assert sorted(j.task for j in jobs) == ["purge", "recheck"]
    assert all(j.state == "done" and j.attempts == 1 for j in jobs), [(j.state, j.error) for j in jobs]


@pytest.mark.slow
def test_two_worker_processes_with_schedulers_on_one_redis_queue_run_each_tick_once(
    runtime: Runtime,
) -> None:
    _require_redis()
    name = f"gk-test-{secrets.token_hex(4)}"
    # Both schedulers fire when they start, in the same minute: start well before its end.
    while datetime.now(UTC).second > 40:
        time.sleep(1)
    env = _env(
        runtime,
        GATEKEEPER_QUEUE_URL=REDIS_URL,
        GATEKEEPER_QUEUE_NAME=name,
        GATEKEEPER_RECHECK_SCHEDULE="* * * * *",
        GATEKEEPER_PURGE_SCHEDULE="* * * * *",
    )
    workers = [
        subprocess.Popen([GATEKEEPER, "worker"], env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = [j for j in _jobs(runtime, "recheck", "purge") if j.state == "done"]
            if len(done) >= 2:
                break
            time.sleep(0.5)
        time.sleep(5)  # time for the second scheduler's messages to be taken and found claimed
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        outputs = [w.communicate(timeout=60)[1] for w in workers]
        for redis_runtime in _other(runtime, queue={"url": REDIS_URL, "name": name}):
            JobQueue.of(redis_runtime).huey.storage.flush_all()
    fired = [o.count("Enqueueing periodic task") for o in outputs]
    assert all(n >= 2 for n in fired), outputs  # each scheduler fired both periodic tasks
    jobs = _jobs(runtime, "recheck", "purge")
    ticks = [(j.task, j.enqueued_at) for j in jobs]
    assert len(ticks) == len(set(ticks)), ticks  # one job per task per tick
    assert {j.task for j in jobs} == {"recheck", "purge"}
    assert len(jobs) < sum(fired), (ticks, fired)  # more firings than runs: the duplicates were dropped
    assert all(j.state == "done" for j in jobs), [(j.task, j.state, j.error) for j in jobs]
    with unit_of_work(runtime.sessions) as session:
        reports = session.scalars(select(AuditEvent).where(AuditEvent.action == "purge.report")).all()
    assert len(reports) == len([j for j in jobs if j.task == "purge"])


@pytest.mark.slow
def test_worker_workers_n_drain_runs_the_jobs_in_n_processes(
    runtime: Runtime, corpus: Any, now: datetime
) -> None:
    data = (corpus.faces_dir / "biden/biden2.jpg").read_bytes()
    photo_ids = [seed_gated_photo(runtime, data + bytes([i]), now=now) for i in range(12)]
    queue = JobQueue.of(runtime)
    with unit_of_work(runtime.sessions) as session:
        for photo_id in photo_ids:
            queue.enqueue_publish(session, photo_id, "website")
    command = subprocess.Popen(
        [GATEKEEPER, "worker", "--workers", "3", "--drain"],
        env=_env(runtime),
        stderr=subprocess.PIPE,
        text=True,
    )
    _, stderr = command.communicate(timeout=300)
    assert command.returncode == 0, stderr
    assert "12 jobs run; queue empty" in stderr
    jobs = _jobs(runtime, "publish")
    assert [(j.state, j.attempts) for j in jobs] == [("done", 1)] * 12
    with unit_of_work(runtime.sessions) as session:
        published = sorted(p.photo_id for p in session.scalars(select(Publication)))
        actors = {
            e.actor for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.published"))
        }
    assert published == photo_ids
    pids = {int(a.split(":")[1]) for a in actors}
    # The jobs ran in worker processes the command started, never in the command's own process.
    assert 1 <= len(pids) <= 3 and command.pid not in pids and os.getpid() not in pids
    assert queue.counts() == {"pending": 0, "scheduled": 0}
