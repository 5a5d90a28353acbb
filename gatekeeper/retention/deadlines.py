"""Retention deadlines: a pure function of a photo's state, its people's consent ends and a schedule.

No I/O, no clock, no globals (standard library only). Periods are whole days of the
organisation's calendar (`Schedule.timezone`, Europe/London by default): something kept for N days
after an event on local day D is kept through the last instant of local day D + N and is due from
local midnight starting day D + N + 1, whatever the clocks did in between (a 23- or 25-hour day
still counts as one day; 29 February counts like any other day).

Default schedule, and why:
- blocked and never-reviewed originals: 30 days, time for staff to look at a refusal;
- originals whose check never finished (a gate job that failed and was not retried): as blocked,
  30 days from the upload, time to retry the job; an unchecked photo is never kept for ever;
- photos in review: 90 days, a term's worth of time for a reviewer;
- published photos and their copies: until the earliest end of any shown person's consent
  (expiry, withdrawal, leaving) plus a 30-day grace period to take copies down everywhere;
- taken-down photos: 30 days after the takedown;
- templates: when biometric consent ends or the person leaves, plus 0 days;
- the details a withdrawal request without a link was made with (the learner's name and date of
  birth as typed, the requester's relationship and email): 30 days after a consent admin decides
  it, time to answer the requester; the reference, the outcome and the people it matched stay.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

State = Literal["pending", "blocked", "review", "publishable", "published", "taken_down"]


@dataclass(frozen=True)
class Schedule:
    """How long each kind of photo is kept, in days of the organisation's calendar."""

    blocked_days: int = 30
    review_days: int = 90
    published_grace_days: int = 30
    taken_down_days: int = 30
    template_days: int = 0
    request_days: int = 30
    timezone: str = "Europe/London"


@dataclass(frozen=True)
class PhotoFacts:
    """What a photo's deadline depends on.

    `decided_at`: when the photo was last decided, or uploaded if never (the clock for pending,
    blocked and review photos).
    `consent_ends`: for each person shown, the moment their consent for the photo's channel ends
    (None: no end known yet). `taken_down_at`: when its last live copy came down.
    """

    state: State
    decided_at: datetime
    consent_ends: tuple[datetime | None, ...] = ()
    taken_down_at: datetime | None = None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("retention needs timezone-aware datetimes")
    return moment


def day_after_period(moment: datetime, days: int, timezone: str) -> datetime:
    """The first instant (UTC) after `days` whole local days following `moment`'s local day."""
    zone = ZoneInfo(timezone)
    local_day = _aware(moment).astimezone(zone).date()
    due_day = local_day + timedelta(days=days + 1)
    return datetime.combine(due_day, time(0), tzinfo=zone).astimezone(UTC)


def photo_deadline(facts: PhotoFacts, schedule: Schedule) -> datetime | None:
    """When the photo (original, copies, previews) is due for purge, in UTC; None: not yet known."""
    tz = schedule.timezone
    if facts.state in ("pending", "blocked"):
        return day_after_period(facts.decided_at, schedule.blocked_days, tz)
    if facts.state == "review":
        return day_after_period(facts.decided_at, schedule.review_days, tz)
    if facts.state == "taken_down":
        return day_after_period(facts.taken_down_at or facts.decided_at, schedule.taken_down_days, tz)
    ends = [_aware(e) for e in facts.consent_ends if e is not None]
    if not ends:
        return None
    return day_after_period(min(ends), schedule.published_grace_days, tz)


def template_deadline(
    biometric_end: datetime | None, left_on: date | None, schedule: Schedule
) -> datetime | None:
    """When a person's templates are due for deletion; None while they have consent and stay.

    `left_on` is the last day at the organisation, a day of the organisation's calendar.
    """
    zone = ZoneInfo(schedule.timezone)
    candidates: list[datetime] = []
    if biometric_end is not None:
        candidates.append(day_after_period(biometric_end, schedule.template_days, schedule.timezone))
    if left_on is not None:
        due_day = left_on + timedelta(days=schedule.template_days + 1)
        candidates.append(datetime.combine(due_day, time(0), tzinfo=zone).astimezone(UTC))
    return min(candidates) if candidates else None


def request_deadline(decided_at: datetime | None, schedule: Schedule) -> datetime | None:
    """When a withdrawal request's contact details are due for erasure; None while it is undecided."""
    if decided_at is None:
        return None
    return day_after_period(decided_at, schedule.request_days, schedule.timezone)


def is_due(deadline: datetime | None, now: datetime) -> bool:
    """True from the deadline's instant on."""
    return deadline is not None and _aware(now) >= deadline


def earliest(moments: Iterable[datetime | None]) -> datetime | None:
    """The earliest of the known moments, or None."""
    known = [m for m in moments if m is not None]
    return min(known) if known else None
