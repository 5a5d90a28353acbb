"""Jobs as the application asks for them: their kinds, what sends them, and asking for one.

A job row is written in the same transaction as the change that made it necessary; the queue
message (carrying only the job's id) is sent after that transaction commits, by the process's
job sender (`workers.JobQueue`, which the entry points give the runtime). A rollback sends nothing.

This module knows the unit of work and the job table, never the queue: use cases that make a job
necessary (a withdrawal makes a takedown necessary) call `request_job`, and whatever sender the
runtime was composed with sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy.orm import Session

from consent_db.models import Job
from consent_db.session import after_commit


class JobKind(StrEnum):
    """Every kind of background job: the `task` of its row and the name of its queue task."""

    GATE = "gate"  # gate an original already in the private store
    PUBLISH = "publish"  # publish a gated photo to the published store
    TAKEDOWN = "takedown"  # decide a person's publications again once their consent ends
    WITHDRAWAL_MATCH = "withdrawal_match"  # match a withdrawal request without a link
    RECHECK = "recheck"  # decide every live publication again (also periodic)
    PURGE = "purge"  # purge what is past its retention deadline (also periodic)
    SEND_MAIL = "send_mail"  # send a queued email (periodic: every one still waiting)
    SEND_REMINDERS = "send_reminders"  # send consent forms before consent ends (periodic only)
    STAFF_DIGEST = "staff_digest"  # write the daily digest of what has waited for staff (periodic)
    SCAN = "scan"  # scan a website, folder or archive already public (gatekeeper/scan/)
    RESCAN = "rescan"  # periodic: ask for a scan of every watched source


class JobSender(Protocol):
    """What hands a committed job to the queue: its kind and its id, never its data."""

    def send(self, kind: str, job_id: int) -> bool:
        """Put the job's id on the queue; False when the queue cannot be reached (it is sent later)."""
        ...


# Session.info key of the callable `(kind, job_id) -> None` that sends a committed job; the
# composition root (Runtime) sets it on every session it makes when it has a job sender.
SEND_JOB = "gatekeeper.send_job"


def record_job(session: Session, kind: JobKind, args: Sequence[Any], *, now: datetime) -> Job:
    """A queued job row of `kind` with id-only `args` (flushes, never commits)."""
    job = Job(
        task=JobKind(kind).value, args=list(args), state="queued", attempts=0, enqueued_at=now, updated_at=now
    )
    session.add(job)
    session.flush()
    return job


def request_job(session: Session, kind: JobKind, args: Sequence[Any], *, now: datetime) -> Job:
    """Record a job in the caller's transaction; it is sent to the queue only after the commit.

    For use cases that make a job necessary without knowing the queue: the session's sender
    (`SEND_JOB`) sends it. If the queue cannot be reached, the change stands and the job row stays
    `queued`: the sweeper sends it once the queue is back. A session without a sender (no queue
    in this process) only records the job.
    """
    job = record_job(session, kind, args, now=now)
    sender: Callable[[str, int], None] | None = session.info.get(SEND_JOB)
    if sender is not None:
        job_id, task = job.id, job.task
        after_commit(session, lambda: sender(task, job_id))
    return job


_TAKEDOWNS = "gatekeeper.takedowns"


def request_takedown(session: Session, person_id: int, *, now: datetime) -> int:
    """Queue a takedown of `person_id`'s photos after this unit of work commits; the job's id.

    One job per person per unit of work, however many withdrawals it records.
    """
    pending: dict[int, int] = session.info.setdefault(_TAKEDOWNS, {})
    if person_id not in pending:
        pending[person_id] = request_job(session, JobKind.TAKEDOWN, [person_id], now=now).id
    return pending[person_id]


def takedown_requested(session: Session, person_id: int) -> int | None:
    """The takedown job this unit of work has requested for `person_id`, if any."""
    pending: dict[int, int] = session.info.get(_TAKEDOWNS, {})
    return pending.get(person_id)
