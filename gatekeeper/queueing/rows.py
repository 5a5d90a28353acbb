"""Job rows as operators see them: leases, stranded jobs, periodic ticks, failed jobs sent again.

A job row is written in the same transaction as the change that made it necessary, and the queue
message (carrying only the job's id) is sent after that transaction commits (`gatekeeper.queueing`).
The row says whether the job is queued, running, done or failed, how many attempts it took and the
last error.

The row, not the queue, is the record: a running job's `updated_at` is its lease, renewed while it
runs, and `find_stranded` finds what no worker will ever hear of (queued jobs whose message is
gone, running jobs whose lease lapsed) so that they are sent again. A job's work and its `done`
commit together (`complete_job`), so of two runs of one job only one leaves its effects.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Job
from gatekeeper.errors import InvalidInputError, RecordNotFoundError
from gatekeeper.queueing import JobKind

STATES = ("queued", "running", "done", "failed")


# One Postgres advisory lock for claiming periodic ticks (SQLite writes are serialised already).
_TICK_LOCK = 0x6761_7465_6B70  # "gatekp"
# And one for sweeping, so that several sweepers (serve, each worker) never send a job twice at once.
_SWEEP_LOCK = 0x6761_7465_6B73  # "gateks"


def claim_tick(session: Session, task: JobKind, tick: datetime, *, now: datetime) -> Job | None:
    """The job of periodic `task`'s run due at `tick`, recorded by the first scheduler to claim it.

    Several schedulers (workers started without --no-periodic on several machines) each fire the
    same tick; only the first claim records a job (enqueued at `tick`), the others get None.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TICK_LOCK})
    taken = session.scalar(select(Job.id).where(Job.task == task, Job.enqueued_at == tick).limit(1))
    if taken is not None:
        return None
    job = Job(task=task.value, args=[], state="queued", attempts=0, enqueued_at=tick, updated_at=now)
    session.add(job)
    session.flush()
    return job


def start_job(session: Session, job_id: int, *, now: datetime, lease: float | None = None) -> Job | None:
    """Mark a job running and count the attempt (its lease starts now).

    None when there is nothing to run: the job is done, or (with `lease`, in seconds) another
    process runs it under a lease that has not lapsed (a duplicate message).
    """
    job = session.get(Job, job_id)
    if job is None or job.state == "done":
        return None
    if lease is not None and job.state == "running" and job.updated_at > now - timedelta(seconds=lease):
        return None
    job.state, job.attempts, job.updated_at = "running", job.attempts + 1, now
    session.flush()
    return job


def renew_lease(session: Session, job_id: int, *, now: datetime) -> None:
    """Extend a running job's lease to `now` (its process is alive and still running it)."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running").values(updated_at=now),
        execution_options={"synchronize_session": False},
    )


def complete_job(session: Session, job_id: int, *, now: datetime) -> bool:
    """Mark a job done in the transaction of its work; False if another run of it was done first.

    The row is locked (PostgreSQL; SQLite's write lock is held already), so of two runs of one
    job only the first to commit records its work: the caller rolls back when this is False.
    """
    job = session.scalar(
        select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    )
    if job is None or job.state == "done":
        return False
    job.state, job.updated_at, job.error = "done", now, None
    session.flush()
    return True


@dataclass(frozen=True)
class Stranded:
    """What a sweep found: jobs to send again (task, id) and jobs it failed."""

    resend: list[tuple[str, int]]
    failed: list[int]


def has_stranded(session: Session, *, now: datetime, lease: float) -> bool:
    """True when some queued job was not touched for `lease` seconds or some running job's lease lapsed."""
    cutoff = now - timedelta(seconds=lease)
    found = session.scalar(
        select(Job.id).where(Job.state.in_(("queued", "running")), Job.updated_at < cutoff).limit(1)
    )
    return found is not None


def find_stranded(
    session: Session,
    *,
    now: datetime,
    lease: float,
    max_attempts: int,
    in_queue: Collection[int],
    actor: str,
) -> Stranded:
    """Take back every job no worker will hear of, for the caller to send after the commit.

    A queued job not touched for `lease` seconds whose id is not `in_queue` (its message was
    lost with the queue's storage, or never sent while the queue was down) is sent again; a
    running job whose lease lapsed (its process died) is queued again, or failed with the reason
    once it was started `max_attempts` times. Duplicates are harmless: a job runs under one live
    lease at a time and only one run's work commits.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SWEEP_LOCK})
    cutoff = now - timedelta(seconds=lease)
    query = (
        select(Job)
        .where(Job.state.in_(("queued", "running")), Job.updated_at < cutoff)
        .order_by(Job.id)
        .with_for_update(skip_locked=True)
    )
    resend: list[tuple[str, int]] = []
    failed: list[int] = []
    for job in session.scalars(query):
        if job.state == "queued" and job.id in in_queue:
            continue
        if job.state == "running" and job.attempts >= max_attempts:
            error = (
                f"the process running it stopped {job.attempts} times before it finished "
                f"(its lease of {lease:g} s lapsed each time)"
            )
            job.state, job.updated_at, job.error = "failed", now, error
            failed.append(job.id)
            audit.append(
                session,
                at=now,
                actor=actor,
                action=AuditAction.JOB_FAILED,
                subject=f"job:{job.id}",
                details={"task": job.task, "args": job.args, "attempts": job.attempts, "error": error},
            )
            continue
        if job.state == "running":
            job.error = f"lease lapsed after attempt {job.attempts}: the process running it stopped"
        job.state, job.updated_at = "queued", now
        resend.append((job.task, job.id))
    session.flush()
    return Stranded(resend, failed)


def finish_job(
    session: Session, job_id: int, *, now: datetime, error: str | None = None, retrying: bool = False
) -> None:
    """Record a job's end: done, queued again for a retry, or failed (audited)."""
    job = session.get(Job, job_id)
    if job is None or job.state == "done":  # another run of it finished first; its record stands
        return
    job.updated_at, job.error = now, error
    if error is None:
        job.state = "done"
    elif retrying:
        job.state = "queued"
    else:
        job.state = "failed"
        audit.append(
            session,
            at=now,
            actor="worker",
            action=AuditAction.JOB_FAILED,
            subject=f"job:{job.id}",
            details={"task": job.task, "args": job.args, "attempts": job.attempts, "error": error},
        )
    session.flush()


def list_jobs(session: Session, states: Sequence[str] = STATES, limit: int = 100) -> list[Job]:
    """The newest jobs in `states`."""
    query = select(Job).where(Job.state.in_(list(states))).order_by(Job.id.desc()).limit(limit)
    return list(session.scalars(query))


def requeue_failed(session: Session, job_id: int, *, now: datetime, actor: str) -> Job:
    """Send a job again: a failed one, or one whose message a worker that died took with it.

    The sweeper sends again, by itself, jobs a dead worker took with it; this is for failed jobs
    and for not waiting for it. The caller sends the job after commit; jobs are idempotent, so one
    that was in fact still waiting or running ends in the same state. Raises RecordNotFoundError,
    InvalidInputError (the job is done).
    """
    job = session.get(Job, job_id)
    if job is None:
        raise RecordNotFoundError("job", job_id)
    if job.state == "done":
        raise InvalidInputError(f"job {job_id} is done")
    job.state, job.updated_at = "queued", now
    audit.append(
        session, at=now, actor=actor, action=AuditAction.JOB_RETRIED, subject=f"job:{job.id}", details={}
    )
    session.flush()
    return job
