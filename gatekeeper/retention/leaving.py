"""People leaving and being erased: the last day that starts retention clocks, and erasure."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentRecord, Person, WithdrawalRequest
from gatekeeper.consent.withdrawals import erase_details
from gatekeeper.errors import InvalidInputError
from gatekeeper.mail import outbox
from gatekeeper.people.contacts import forget_contacts
from gatekeeper.people.edit import set_last_day
from gatekeeper.people.enrolment import delete_templates
from gatekeeper.people.lookup import find_person, subject
from gatekeeper.policy import PersonStatus
from gatekeeper.queueing import request_takedown


def record_leaving(session: Session, external_id: str, on: date, *, now: datetime, actor: str) -> Person:
    """Record a person's last day; it starts their retention clocks. Raises PersonNotFoundError."""
    person = find_person(session, external_id)
    set_last_day(person, on, today=now.date())
    person.updated_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_LEFT,
        subject=subject(person),
        details={"on": on.isoformat()},
    )
    if on <= now.date():
        # Consent that does not outlast leaving has ended: take down what no longer passes.
        request_takedown(session, person.id, now=now)
    return person


def erase_person(session: Session, external_id: str, *, now: datetime, actor: str) -> Person:
    """Erase a person: templates and consent history deleted, name and birth date blanked, and
    the details of every withdrawal request that matched them (name, birth date, requester's email).

    The external id stays, so a later MIS import refuses to bring the person back; the audit chain
    keeps what it already holds (the minimum: ids and actions). Their photos are
    then taken down and purged by the caller, one unit of work each (`purge.photos_showing`),
    except those under a hold (another lawful reason), which are kept and reported.
    Raises PersonNotFoundError, InvalidInputError (already erased).
    """
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{external_id} is already erased")
    templates = delete_templates(session, person, now=now, actor=actor, why="erasure")
    records = len(person.consents)
    session.execute(delete(ConsentRecord).where(ConsentRecord.person_id == person.id))
    session.expire(person, ["consents"])
    contacts = forget_contacts(session, person, now=now)
    outbox.forget_recipients(session, subject(person), now=now)
    person.status, person.display_name, person.date_of_birth = PersonStatus.ERASED, "(erased)", None
    person.updated_at = now
    session.flush()
    for request in session.scalars(select(WithdrawalRequest).order_by(WithdrawalRequest.id)):
        if person.id in request.person_ids:
            erase_details(session, request, now=now, actor=actor, why="erasure")
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_ERASED,
        subject=subject(person),
        details={"templates": templates, "consent_records": records, "contacts": contacts},
    )
    # With no consent left, a takedown re-decides every copy still up (held photos' included).
    request_takedown(session, person.id, now=now)
    return person
