"""People as records: finding one, and the safeguarding flag."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Person, SafeguardingNote
from gatekeeper.errors import InvalidInputError, PersonNotFoundError
from gatekeeper.policy import PersonStatus


def subject(person: Person) -> str:
    """The audit subject naming `person`."""
    return f"person:{person.id}"


def first_name(person: Person) -> str:
    """The only part of a person's name a message or a public page shows."""
    parts = person.display_name.split()
    return parts[0] if parts else ""


def find_person(session: Session, external_id: str) -> Person:
    """The person with `external_id`, consents and templates loaded; raises PersonNotFoundError."""
    person = session.scalar(
        select(Person)
        .where(Person.external_id == external_id)
        .options(selectinload(Person.consents), selectinload(Person.templates))
    )
    if person is None:
        raise PersonNotFoundError(external_id)
    return person


def set_safeguarding(
    session: Session, external_id: str, flag: bool, *, reason: str, now: datetime, actor: str
) -> bool:
    """Set or clear the safeguarding flag; False when it already was so.

    The audit log records who changed it and when; the reason goes to a safeguarding note, which
    only consent admins and admins read. Raises PersonNotFoundError, InvalidInputError (no reason).
    """
    if not reason.strip():
        raise InvalidInputError("a reason is required to set or clear the safeguarding flag", field="reason")
    person = find_person(session, external_id)
    if person.safeguarding == flag:
        return False
    person.safeguarding, person.updated_at = flag, now
    note = SafeguardingNote(person_id=person.id, flag=flag, reason=reason.strip(), at=now, by=actor)
    session.add(note)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_SAFEGUARDING_SET if flag else AuditAction.PERSON_SAFEGUARDING_CLEARED,
        subject=subject(person),
        details={"note": note.id},
    )
    return True


def safeguarding_notes(session: Session, person: Person) -> list[SafeguardingNote]:
    """The person's safeguarding notes, newest first (for consent admins and admins only)."""
    return list(
        session.scalars(
            select(SafeguardingNote)
            .where(SafeguardingNote.person_id == person.id)
            .order_by(SafeguardingNote.id.desc())
        )
    )


def new_person(
    session: Session, external_id: str, name: str, date_of_birth: date | None, *, now: datetime
) -> Person:
    """A new active person with no consent recorded, flushed (so it has an id); not audited."""
    person = Person(
        external_id=external_id,
        display_name=name,
        date_of_birth=date_of_birth,
        status=PersonStatus.ACTIVE,
        safeguarding=False,
        created_at=now,
        updated_at=now,
    )
    session.add(person)
    session.flush()
    return person
