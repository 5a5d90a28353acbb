"""Data factories: people, their consent and their enrolment written straight into a session.

A person made here holds what importing one row of a people CSV makes of a new person: the person
and its `person.created` audit event, publication and biometric consent recorded as an import
records it (`how` "import"), and a face template from each enrolment photo, all through the same
domain code. No CSV is written and no command runs: tests about something else than the import
(publishing, takedowns, review, purge, pages) set up their people here. Tests of the import itself,
its columns and the commands that run it use the real import.

Every factory flushes and returns the rows it made; the caller's unit of work commits them. `now`
is when the records are made (the clock when not given, as an import from the command line or the
web would); consent takes effect from `granted_on`, as in the CSV.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentRecord, FaceTemplate, Person
from gatekeeper.config import Settings
from gatekeeper.consent.records import IMPORT, add_record
from gatekeeper.consent.state import BIOMETRIC, matching_reasons
from gatekeeper.faces import FaceEngine
from gatekeeper.people import enrolment
from gatekeeper.people.edit import set_last_day
from gatekeeper.people.lookup import new_person, subject
from gatekeeper.policy import end_of_day, start_of_day

ADULT = date(1980, 1, 1)  # the date of birth of the CSV rows tests write (helpers.person_row)
GRANTED_ON = date(2025, 9, 1)  # the day their consent was given


def person(
    session: Session,
    external_id: str,
    *,
    name: str | None = None,
    born: date | None = ADULT,
    channels: Iterable[str] = ("website",),
    granted_by: str = "self",
    granted_on: date | None = GRANTED_ON,
    valid_until: date | None = None,
    named: str = "no",
    biometric: bool | None = None,
    biometric_granted_by: str | None = None,
    biometric_objection: str | None = None,
    photos: Iterable[Path] = (),
    engine: FaceEngine | None = None,
    settings: Settings | None = None,
    left_on: date | None = None,
    now: datetime | None = None,
    actor: str = "test",
    source: str = "test",
) -> Person:
    """A new person, as importing one CSV row with these values makes them.

    By default an adult (born 1 January 1980) named after `external_id` ("kit_harington": "Kit
    Harington") who consented to the website on 1 September 2025, by themselves, not to be named.

    `channels`: publication consent granted on each, with the terms `granted_by`, `granted_on`
    (None: from `now`), `valid_until` (the last valid day) and `named`. `biometric`: consent to face
    matching (by default, when there are enrolment photos), given by `biometric_granted_by` (else
    `granted_by`). `biometric_objection`: "self" records the person's refusal, "parent" or
    "guardian" that one's objection (either queues a takedown, as it does on import). `photos`:
    enrolment photos, a template each (needs biometric consent, the `engine` and `settings`, and
    matching allowed). `left_on`: the last day at the organisation.
    """
    now = now or datetime.now(UTC)
    photos = tuple(photos)
    if biometric is None:
        biometric = bool(photos)
    made = new_person(session, external_id, name or external_id.replace("_", " ").title(), born, now=now)
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PERSON_CREATED,
        subject=subject(made),
        details={"source": source},
    )
    if left_on is not None:
        set_last_day(made, left_on, today=now.date())
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.PERSON_LEFT,
            subject=subject(made),
            details={"source": source, "left_on": left_on, "status": made.status},
        )
    granted_at = start_of_day(granted_on) if granted_on else now
    for channel in dict.fromkeys(channels):
        consent(
            session,
            made,
            channel,
            at=granted_at,
            granted_by=granted_by,
            valid_until=valid_until,
            named=named,
            now=now,
            actor=actor,
            source=source,
        )
    if biometric:
        consent(
            session,
            made,
            BIOMETRIC,
            at=granted_at,
            granted_by=biometric_granted_by or granted_by,
            now=now,
            actor=actor,
            source=source,
        )
    if biometric_objection is not None:
        action = "refuse" if biometric_objection == "self" else "object"
        consent(
            session,
            made,
            BIOMETRIC,
            action=action,
            granted_by=biometric_objection,
            now=now,
            actor=actor,
            source=source,
        )
    if photos:
        if not biometric:
            raise ValueError(f"{external_id}: enrolment photos need biometric consent")
        if engine is None or settings is None:
            raise ValueError(f"{external_id}: enrolling photos needs the face engine and the settings")
        blockers = matching_reasons(made, settings.policy, now)
        if blockers:
            raise ValueError(f"{external_id}: matching is not allowed ({', '.join(blockers)})")
        enrol(session, made, *photos, engine=engine, settings=settings, now=now, actor=actor)
    return made


def consent(
    session: Session,
    person: Person,
    channel: str = "website",
    *,
    action: str = "grant",
    at: datetime | None = None,
    granted_by: str | None = None,
    valid_until: date | None = None,
    named: str = "no",
    how: str = IMPORT,
    now: datetime | None = None,
    actor: str = "test",
    source: str | None = "test",
) -> ConsentRecord:
    """One consent record of `person`, with its audit event: publication consent on `channel`, or
    biometric consent when `channel` is "biometric".

    A grant (given by "self" unless `granted_by` says otherwise) holds through `valid_until`; any
    other action (withdraw, object, refuse) queues a takedown of the person's photos, sent once
    the unit of work commits. `at` (default `now`) is when it takes effect; `how` "import" as an
    import records it, "staff" as staff record it in the gatekeeper.
    """
    now = now or datetime.now(UTC)
    if action == "grant" and granted_by is None:
        granted_by = "self"
    return add_record(
        session,
        person,
        kind="biometric" if channel == BIOMETRIC else "publication",
        channel=channel,
        action=action,
        at=at or now,
        how=how,
        now=now,
        actor=actor,
        source=source,
        granted_by=granted_by,
        valid_until=end_of_day(valid_until) if valid_until else None,
        named=named,
    )


def enrol(
    session: Session,
    person: Person,
    *photos: Path,
    engine: FaceEngine,
    settings: Settings,
    now: datetime | None = None,
    actor: str = "test",
) -> list[FaceTemplate]:
    """A face template of `person` from each enrolment photo not enrolled before, made by `engine`
    as an import makes them (each photo must show one clear face); the new templates."""
    before = {t.id for t in person.templates}
    enrolment.enrol(
        session, person, photos, engine=engine, settings=settings, now=now or datetime.now(UTC), actor=actor
    )
    return [t for t in person.templates if t.id not in before]
