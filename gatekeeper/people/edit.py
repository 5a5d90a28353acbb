"""Adding a person by hand and correcting their record; their external id never changes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Person
from gatekeeper.errors import InvalidInputError
from gatekeeper.people.lookup import find_person, new_person, subject
from gatekeeper.policy import PersonStatus
from gatekeeper.queueing import request_takedown


def set_last_day(person: Person, left_on: date | None, *, today: date) -> None:
    """Record `left_on` as the person's last day (None: not leaving). Their status follows it: left
    from that day on, active before it; an erased person stays erased."""
    person.left_on = left_on
    if person.status != PersonStatus.ERASED:
        person.status = PersonStatus.LEFT if left_on is not None and left_on <= today else PersonStatus.ACTIVE


def _check(name: str, date_of_birth: date | None, today: date) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInputError("the name is required", field="name")
    if len(name) > 200:
        raise InvalidInputError("the name is longer than 200 characters", field="name")
    if date_of_birth is not None and date_of_birth > today:
        raise InvalidInputError(
            f"date of birth {date_of_birth.isoformat()} is in the future", field="date_of_birth"
        )
    return name


def add_person(
    session: Session,
    external_id: str,
    name: str,
    *,
    date_of_birth: date | None,
    now: datetime,
    actor: str,
) -> Person:
    """Create a person with no consent recorded (audited); raises InvalidInputError (taken id, bad input)."""
    external_id = external_id.strip()
    if not external_id or len(external_id) > 120 or any(c.isspace() for c in external_id):
        raise InvalidInputError(
            "the MIS id is required: up to 120 characters, no spaces", field="external_id"
        )
    name = _check(name, date_of_birth, now.date())
    if session.scalar(select(Person.id).where(Person.external_id == external_id)) is not None:
        raise InvalidInputError(f"{external_id} is already taken by another person", field="external_id")
    person = new_person(session, external_id, name, date_of_birth, now=now)
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_CREATED,
        subject=subject(person),
        details={"source": "web"},
    )
    return person


def update_person(
    session: Session,
    external_id: str,
    *,
    name: str,
    date_of_birth: date | None,
    left_on: date | None,
    now: datetime,
    actor: str,
) -> list[str]:
    """Change a person's name, date of birth and last day; returns the fields changed (audited).

    A new date of birth or last day can end consent (an age threshold, leaving), so either queues
    a takedown that decides the person's publications again after the commit.
    The external id is the link to the MIS and never changes. Raises PersonNotFoundError,
    InvalidInputError (an erased person, bad input).
    """
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{external_id} was erased; the record cannot be edited")
    name = _check(name, date_of_birth, now.date())
    changes: dict[str, Any] = {}
    if person.display_name != name:
        person.display_name = name
        changes["display_name"] = True
    if person.date_of_birth != date_of_birth:
        person.date_of_birth = date_of_birth
        changes["date_of_birth"] = date_of_birth
    if person.left_on != left_on:
        set_last_day(person, left_on, today=now.date())
        changes["left_on"] = left_on
    if not changes:
        return []
    person.updated_at = now
    session.flush()
    # The new name is not written to the audit log: erasure must be able to remove it.
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_UPDATED,
        subject=subject(person),
        details={"fields": sorted(changes), **{k: v for k, v in changes.items() if k != "display_name"}},
    )
    if changes.keys() & {"date_of_birth", "left_on"}:
        request_takedown(session, person.id, now=now)
    return sorted(changes)
