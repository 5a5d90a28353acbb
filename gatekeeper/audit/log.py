"""Reading the audit log: filtered pages and a CSV export of the same filter."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from consent_db.models import AuditEvent, Decision, Face
from gatekeeper.people.identity import confirmed_person
from gatekeeper.people.lookup import find_person, subject
from gatekeeper.policy import end_of_day, start_of_day

CSV_COLUMNS = ("id", "at", "actor", "action", "subject", "details", "prev_hash", "hash")


@dataclass(frozen=True)
class AuditFilter:
    """Which events to show: an action or action prefix (`consent.`), actor, subject, UTC days."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    since: date | None = None
    until: date | None = None


def _query(flt: AuditFilter) -> Select[Any]:
    stmt = select(AuditEvent)
    if flt.action:
        stmt = stmt.where(
            AuditEvent.action.startswith(flt.action)
            if flt.action.endswith(".")
            else AuditEvent.action == flt.action
        )
    if flt.actor:
        stmt = stmt.where(AuditEvent.actor == flt.actor)
    if flt.subject:
        stmt = stmt.where(AuditEvent.subject == flt.subject)
    if flt.since:
        stmt = stmt.where(AuditEvent.at >= start_of_day(flt.since))
    if flt.until:
        stmt = stmt.where(AuditEvent.at < end_of_day(flt.until))
    return stmt


def find_events(session: Session, flt: AuditFilter, *, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
    """Events matching `flt`, newest first."""
    stmt = _query(flt).order_by(AuditEvent.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(stmt))


def export_csv(session: Session, flt: AuditFilter) -> Iterator[str]:
    """The matching events as CSV lines, oldest first (hashes included, so the chain can be re-checked)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    for event in session.scalars(_query(flt).order_by(AuditEvent.id).execution_options(yield_per=500)):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [
                event.id,
                event.at.isoformat(),
                event.actor,
                event.action,
                event.subject,
                json.dumps(event.details, sort_keys=True),
                event.prev_hash,
                event.hash,
            ]
        )
        yield buffer.getvalue()


def person_subjects(session: Session, external_id: str) -> set[str]:
    """Every audit subject that concerns one person: the person, each photo in which a face was
    matched to them or identified as them by a reviewer, and each of those faces.

    What a data protection officer needs to answer "what happened to this learner's data?" in one
    filter. Raises NotFoundError for an unknown external id.
    """
    person = find_person(session, external_id)
    subjects = {subject(person)}
    rows = session.execute(
        select(Decision.photo_id, Face)
        .join(Face, Face.decision_id == Decision.id)
        .where((Face.person_id == person.id) | (Face.reviewed_person_id == person.id))
    )
    for photo_id, face in rows:
        # Only faces that are this person: a nearest template or an uncertain candidate is not them.
        if confirmed_person(face) == person.id:
            subjects.add(f"photo:{photo_id}")
            subjects.add(f"face:{face.id}")
    return subjects
