"""Who needs asking again: parents' consent lapsing at the age threshold, consent about to expire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db.models import Person
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.records import last_valid_day
from gatekeeper.consent.state import person_state, policy_for
from gatekeeper.policy import PersonStatus

RECONSENT: str = policy.RECONSENT_REQUIRED
EXPIRES: str = "expires"


@dataclass(frozen=True)
class ConsentRenewal:
    """One consent that needs renewing: whose, on which channel, why, and from (or until) when."""

    external_id: str
    name: str
    channel: str
    why: str
    due: date
    overdue: bool


def consent_due(
    session: Session, *, settings: Settings, now: datetime, within_days: int
) -> list[ConsentRenewal]:
    """Grants in force that lapse (coming of age) or expire within `within_days`, or already did."""
    horizon = now + timedelta(days=within_days)
    people = session.scalars(
        select(Person)
        .where(Person.status != PersonStatus.ERASED)
        .options(selectinload(Person.consents))
        .order_by(Person.external_id)
    ).all()
    items = [
        item for person in people for item in renewals(person, settings=settings, now=now, until=horizon)
    ]
    return sorted(items, key=lambda i: (i.due, i.external_id, i.channel))


def renewals(person: Person, *, settings: Settings, now: datetime, until: datetime) -> list[ConsentRenewal]:
    """The person's grants in force that end by `until`, each by what ends it first: a parent's
    consent lapsing once the learner comes of age (RECONSENT), or its own last valid day (EXPIRES)."""
    state = person_state(person)
    lapses = policy.reconsent_due(state, policy_for(settings.policy))
    items: list[ConsentRenewal] = []
    for channel in sorted({r.channel for r in state.records}):
        record = policy.current_record(state.records, channel, now)
        if record is None or record.action != "grant" or record.channel != channel:
            continue
        lapsing = lapses if record.granted_by in policy.GUARDIANS else None
        if lapsing is not None and (record.valid_until is None or lapsing <= record.valid_until):
            if lapsing <= until:
                items.append(
                    ConsentRenewal(
                        person.external_id,
                        person.display_name,
                        channel,
                        RECONSENT,
                        lapsing.date(),
                        lapsing <= now,
                    )
                )
        elif record.valid_until is not None and record.valid_until <= until:
            items.append(
                ConsentRenewal(
                    person.external_id,
                    person.display_name,
                    channel,
                    EXPIRES,
                    last_valid_day(record.valid_until),
                    record.valid_until <= now,
                )
            )
    return items
