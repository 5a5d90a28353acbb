"""Retention deadlines: a pure function, exact across UK clock changes, 29 February and midnight."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from gatekeeper.retention.deadlines import (
    PhotoFacts,
    Schedule,
    is_due,
    photo_deadline,
    request_deadline,
    template_deadline,
)

LONDON = Schedule()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("facts", "deadline"),
    [
        # Blocked, 30 days: kept through 31 March; the clocks went forward on 29 March 2026, so
        # local midnight starting 1 April is 23:00 UTC.
        (PhotoFacts("blocked", utc(2026, 3, 1, 10)), utc(2026, 3, 31, 23)),
        # Blocked across the autumn change (25 October 2026): back to GMT, midnight is 00:00 UTC.
        (PhotoFacts("blocked", utc(2026, 9, 26, 10)), utc(2026, 10, 27, 0)),
        # The last second of a local day and the first of the next give deadlines a day apart.
        (PhotoFacts("blocked", utc(2026, 6, 15, 22, 59, 59)), utc(2026, 7, 15, 23)),
        (PhotoFacts("blocked", utc(2026, 6, 15, 23, 0, 0)), utc(2026, 7, 16, 23)),
        # 30 days from 30 January 2028 end on 29 February (kept all that day); due on 1 March.
        (PhotoFacts("blocked", utc(2028, 1, 30, 12)), utc(2028, 3, 1, 0)),
        (PhotoFacts("blocked", utc(2027, 1, 30, 12)), utc(2027, 3, 2, 0)),
        # A photo whose check never finished counts as blocked, from its upload.
        (PhotoFacts("pending", utc(2026, 3, 1, 10)), utc(2026, 3, 31, 23)),
        # Review: 90 days.
        (PhotoFacts("review", utc(2026, 1, 10, 9)), utc(2026, 4, 10, 23)),
        # Published: the earliest end of any shown person's consent, plus 30 days' grace.
        (
            PhotoFacts(
                "published", utc(2026, 1, 1), consent_ends=(None, utc(2026, 8, 31, 23), utc(2026, 12, 1))
            ),
            utc(2026, 10, 1, 23),
        ),
        # A consent ending on 29 February 2028 (withdrawn that evening): kept through 30 March, in BST.
        (
            PhotoFacts("published", utc(2027, 1, 1), consent_ends=(utc(2028, 2, 29, 20),)),
            utc(2028, 3, 30, 23),
        ),
        # Everyone shown still consents, with no end date: no deadline yet.
        (PhotoFacts("published", utc(2026, 1, 1), consent_ends=(None, None)), None),
        (PhotoFacts("publishable", utc(2026, 1, 1)), None),
        # Taken down: 30 days after the takedown (the spring-forward night is still one day).
        (PhotoFacts("taken_down", utc(2026, 1, 1), taken_down_at=utc(2026, 2, 28, 12)), utc(2026, 3, 30, 23)),
    ],
)
def test_photo_deadlines(facts: PhotoFacts, deadline: datetime | None) -> None:
    assert photo_deadline(facts, LONDON) == deadline


@pytest.mark.parametrize(
    ("biometric_end", "left_on", "days", "deadline"),
    [
        (None, None, 0, None),
        # Left on the last day of March 2026 (BST): templates go at local midnight starting 1 April.
        (None, date(2026, 3, 31), 0, utc(2026, 3, 31, 23)),
        (None, date(2028, 2, 29), 0, utc(2028, 3, 1, 0)),
        (None, date(2026, 10, 24), 1, utc(2026, 10, 26, 0)),
        # The earlier of the two ends counts.
        (utc(2026, 5, 1, 8), date(2026, 7, 20), 0, utc(2026, 5, 1, 23)),
    ],
)
def test_template_deadlines(
    biometric_end: datetime | None, left_on: date | None, days: int, deadline: datetime | None
) -> None:
    assert template_deadline(biometric_end, left_on, Schedule(template_days=days)) == deadline


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (utc(2026, 3, 31, 22, 59, 59, 999999), False),
        (utc(2026, 3, 31, 23), True),
        (utc(2026, 4, 1), True),
    ],
)
def test_a_photo_is_due_from_the_deadline_instant_on(now: datetime, due: bool) -> None:
    assert is_due(photo_deadline(PhotoFacts("blocked", utc(2026, 3, 1, 10)), LONDON), now) is due


def test_another_time_zone_moves_the_deadline() -> None:
    facts = PhotoFacts("blocked", utc(2026, 6, 15, 22, 30))  # 23:30 in London, 00:30 on the 16th in Berlin
    assert photo_deadline(facts, Schedule(timezone="UTC")) == utc(2026, 7, 16)
    assert photo_deadline(facts, LONDON) == utc(2026, 7, 15, 23)
    berlin = photo_deadline(facts, Schedule(timezone="Europe/Berlin"))
    assert berlin is not None and berlin - utc(2026, 7, 16) == timedelta(hours=22)


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        photo_deadline(PhotoFacts("blocked", datetime(2026, 1, 1)), LONDON)


@pytest.mark.parametrize(
    ("decided_at", "deadline"),
    [
        (None, None),  # undecided: kept while a consent admin needs it
        # Decided in BST the day before the clocks go back: due from midnight GMT 30 days later.
        (utc(2026, 10, 24, 12), utc(2026, 11, 24, 0)),
        (utc(2028, 1, 30, 23, 59), utc(2028, 3, 1, 0)),  # 30 January ends at 23:59:59 GMT
    ],
)
def test_request_detail_deadlines(decided_at: datetime | None, deadline: datetime | None) -> None:
    assert request_deadline(decided_at, LONDON) == deadline
