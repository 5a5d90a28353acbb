"""The periodic jobs, as data, and the tick each scheduler claims before running one.

Every worker started without `--no-periodic` runs a scheduler, so several may fire the same tick;
the first to claim it (a job row keyed by the job's kind and the tick's minute) runs the job, the
others do nothing. `last_tick` is pure: it takes the schedule and `now`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from huey import crontab
from sqlalchemy.orm import Session, sessionmaker

from consent_db.session import unit_of_work
from gatekeeper.config import Settings
from gatekeeper.queueing import JobKind
from gatekeeper.queueing import rows as jobs_service


@dataclass(frozen=True)
class Periodic:
    """A job run on a schedule: its kind, and the setting (`part.field`) holding its 5-field crontab."""

    kind: JobKind
    schedule: str
    # A setting (`part.field`) that must be true for the job to have anything to do (empty: none);
    # while it is false no scheduler claims the tick, so no job row is written for nothing.
    needs: str = ""

    def wanted(self, settings: Settings) -> bool:
        """Whether the job has anything to do under `settings` (see `needs`)."""
        if not self.needs:
            return True
        part, _, name = self.needs.partition(".")
        return bool(getattr(getattr(settings, part), name))

    def cron(self, settings: Settings) -> Callable[[datetime], bool]:
        """The schedule `settings` give this job, as a Huey crontab (naive UTC)."""
        part, _, name = self.schedule.partition(".")
        fields: str = getattr(getattr(settings, part), name)
        cron: Callable[[datetime], bool] = crontab(*fields.split())
        return cron


PERIODIC = (
    Periodic(JobKind.RECHECK, "queue.recheck_schedule"),  # GATEKEEPER_RECHECK_SCHEDULE
    Periodic(JobKind.PURGE, "retention.purge_schedule"),  # GATEKEEPER_PURGE_SCHEDULE
    # Without an SMTP server nothing can be sent: messages wait queued until one is configured.
    Periodic(
        JobKind.SEND_MAIL, "mail.retry_schedule", needs="mail.configured"
    ),  # GATEKEEPER_MAIL_RETRY_SCHEDULE
    Periodic(JobKind.SEND_REMINDERS, "forms.reminder_schedule"),  # GATEKEEPER_REMINDER_SCHEDULE
    Periodic(JobKind.STAFF_DIGEST, "mail.digest_schedule"),  # GATEKEEPER_STAFF_DIGEST_SCHEDULE
    Periodic(JobKind.RESCAN, "scan.rescan_schedule"),  # GATEKEEPER_SCAN_SCHEDULE
)


def last_tick(cron: Callable[[datetime], bool], now: datetime) -> datetime:
    """The latest minute at or before `now` that `cron` (a Huey crontab, naive UTC) matches.

    A tick run late (a busy queue) still counts as that tick, so two schedulers agree on it.
    Schedules that match less than once in eight days count each run as its own minute.
    """
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    for back in range(8 * 24 * 60):
        candidate = minute - timedelta(minutes=back)
        if cron(candidate.replace(tzinfo=None)):
            return candidate
    return minute


def claim_tick(
    sessions: sessionmaker[Session], kind: JobKind, cron: Callable[[datetime], bool], *, now: datetime
) -> int | None:
    """The id of the job that runs `kind` for the tick at `now`, if this scheduler claimed it
    first (committed at once); None when another scheduler has it."""
    with unit_of_work(sessions) as session:
        job = jobs_service.claim_tick(session, kind, last_tick(cron, now), now=now)
        return job.id if job is not None else None
