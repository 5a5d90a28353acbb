"""Publication and biometric consent recorded one at a time: grants and withdrawals.

Consent records are never edited: every change adds a record, so the history a DPO is asked about
is always there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentRecord, Person
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import (
    BIOMETRIC,
    biometric_records,
    check_channel,
    check_choice,
    latest,
    matching_reasons,
    person_state,
    policy_for,
)
from gatekeeper.errors import InvalidInputError
from gatekeeper.people.enrolment import delete_templates
from gatekeeper.people.lookup import find_person, subject
from gatekeeper.policy import PersonStatus
from gatekeeper.queueing import request_takedown

# How a record was made: by an import, or in the gatekeeper (staff on the command line or web).
IMPORT = "import"
STAFF = "staff"


def last_valid_day(valid_until: datetime) -> date:
    """The last day a consent holds, as the user wrote it: consent valid until a date is valid through
    that whole day, so it is stored as `policy.end_of_day` of it."""
    return (valid_until - timedelta(microseconds=1)).date()


def add_record(
    session: Session,
    person: Person,
    *,
    kind: str,
    channel: str,
    action: str,
    at: datetime,
    how: str,
    now: datetime,
    actor: str,
    source: str | None = None,
    granted_by: str | None = None,
    granted_by_name: str | None = None,
    valid_until: datetime | None = None,
    named: str = "no",
    survives_leaving: bool = False,
    evidence_ref: str | None = None,
    wording_version: str | None = None,
) -> ConsentRecord:
    """Add one immutable consent record and its audit event (flushes, never commits).

    Any record but a grant (a withdrawal, an objection, a refusal) queues a takedown of the
    person's photos, sent once the caller's unit of work commits.
    """
    record = ConsentRecord(
        person=person,
        kind=kind,
        channel=channel,
        action=action,
        at=at,
        granted_by=granted_by,
        granted_by_name=granted_by_name,
        valid_until=valid_until,
        named=named,
        how=how,
        recorded_at=now,
        recorded_by=actor,
        survives_leaving=survives_leaving,
        evidence_ref=evidence_ref,
        wording_version=wording_version,
    )
    session.add(record)
    session.flush()
    details: dict[str, Any] = {"record": record.id, "kind": kind, "channel": channel, "how": how}
    if action == "grant":
        details.update(granted_by=granted_by, valid_until=valid_until, named=named, at=at)
        if survives_leaving:
            details["survives_leaving"] = True
    if granted_by_name:
        details["by"] = granted_by_name
    if evidence_ref:
        details["evidence"] = evidence_ref
    if wording_version:
        details["wording"] = wording_version
    if source:
        details["source"] = source
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.of_consent(action),
        subject=subject(person),
        details=details,
    )
    if action != "grant":
        request_takedown(session, person.id, now=now)
    return record


@dataclass(frozen=True)
class Grant:
    """A recorded grant, and why the person is still not publishable on its channel (empty: they are)."""

    record: ConsentRecord
    blockers: tuple[str, ...]


def grant_consent(
    session: Session,
    external_id: str,
    channel: str,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    granted_by: str,
    granted_by_name: str | None = None,
    valid_until: date | None = None,
    named: str | None = None,
    survives_leaving: bool = False,
    evidence_ref: str | None = None,
    wording_version: str | None = None,
) -> Grant:
    """Record a grant for one channel, effective now, and say whether it makes the person publishable.

    `named` None keeps what the person's last grant for the channel said (no grant yet: "no").
    `survives_leaving` lets the consent continue after the person leaves. `evidence_ref` (where the
    signed form or email is kept) and `wording_version` (which consent text was agreed to) are kept
    on the record.
    Raises PersonNotFoundError, InvalidInputError.
    """
    check_channel(settings.policy, channel)
    check_choice("granted_by", granted_by, policy.GRANTED_BY)
    if named is not None:
        check_choice("named", named, policy.NAMED)
    if valid_until is not None and valid_until < now.date():
        raise InvalidInputError(f"valid until {valid_until.isoformat()} is in the past", field="valid_until")
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{external_id} was erased; consent cannot be granted")
    if named is None:
        previous = latest((r for r in person.consents if r.kind == "publication"), channel, action="grant")
        named = previous.named if previous is not None else "no"
    record = add_record(
        session,
        person,
        kind="publication",
        channel=channel,
        action="grant",
        at=now,
        granted_by=granted_by,
        granted_by_name=granted_by_name,
        valid_until=policy.end_of_day(valid_until) if valid_until else None,
        named=named,
        how=STAFF,
        now=now,
        actor=actor,
        survives_leaving=survives_leaving,
        evidence_ref=(evidence_ref or "").strip() or None,
        wording_version=(wording_version or "").strip() or None,
    )
    blockers = policy.consent_reasons(person_state(person), channel, now, policy_for(settings.policy))
    return Grant(record, blockers)


def withdraw_consent(
    session: Session,
    external_id: str,
    channels: Sequence[str] = (),
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    how: str = STAFF,
) -> list[ConsentRecord]:
    """Withdraw consent for the given channels (none: every channel), effective now."""
    for channel in channels:
        check_channel(settings.policy, channel)
    person = find_person(session, external_id)
    targets = list(channels) or sorted(
        {r.channel for r in person.consents if r.kind == "publication"} | set(settings.policy.channels)
    )
    added = []
    for channel in targets:
        current = policy.current_record(person_state(person).records, channel, now)
        if current is not None and current.action == "withdraw" and current.channel == channel:
            continue
        added.append(
            add_record(
                session,
                person,
                kind="publication",
                channel=channel,
                action="withdraw",
                at=now,
                how=how,
                now=now,
                actor=actor,
            )
        )
    return added


@dataclass(frozen=True)
class BiometricChange:
    """What one biometric answer did: records added, templates deleted, why matching is not allowed."""

    records: tuple[ConsentRecord, ...]
    templates_deleted: int
    blockers: tuple[str, ...]


def record_biometric_answer(
    session: Session,
    external_id: str,
    action: str,
    *,
    given_by: str | None,
    name: str | None,
    settings: Settings,
    now: datetime,
    actor: str,
    how: str = STAFF,
    evidence_ref: str | None = None,
    wording_version: str | None = None,
) -> BiometricChange:
    """Record a biometric consent answer, effective now.

    `grant` is written consent from `given_by` (self, parent or guardian, `name` for a parent);
    `object` a parent's objection; `refuse` the person's own refusal; `withdraw` takes back every
    grant in force (or only that of `given_by`/`name` when given). Whenever the answers no longer
    allow matching, every template is deleted at once (audited). Raises PersonNotFoundError,
    InvalidInputError. `how`, `evidence_ref` and `wording_version` say where the answer came from
    (staff by default).
    """
    check_choice("biometric answer", action, policy.BIOMETRIC_ACTIONS)
    if given_by is not None:
        check_choice("given by", given_by, policy.GRANTED_BY)
    if action == "refuse" and given_by not in (None, "self"):
        raise InvalidInputError(
            "a refusal is the person's own; a parent or guardian objects", field="given_by"
        )
    if action == "object" and given_by == "self":
        raise InvalidInputError("the person's own objection is a refusal", field="given_by")
    if action == "grant" and given_by is None:
        raise InvalidInputError("say who gave biometric consent (self, parent or guardian)", field="given_by")
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED and action == "grant":
        raise InvalidInputError(f"{external_id} was erased; consent cannot be granted")
    records: list[ConsentRecord] = []

    def answer(act: str, role: str, who: str | None) -> None:
        records.append(
            add_record(
                session,
                person,
                kind="biometric",
                channel=BIOMETRIC,
                action=act,
                at=now,
                granted_by=role,
                granted_by_name=who,
                how=how,
                now=now,
                actor=actor,
                evidence_ref=evidence_ref,
                wording_version=wording_version,
            )
        )

    if action == "withdraw":
        in_force = _biometric_grants_in_force(person, now)
        for role, who in in_force:
            if given_by is None or (role == given_by and (name is None or who == name)):
                answer("withdraw", role, who)
    elif action == "refuse":
        answer("refuse", "self", None)
    elif action == "object":
        answer("object", given_by or "parent", name)
    else:
        answer("grant", given_by or "self", name)
    blockers = matching_reasons(person, settings.policy, now)
    deleted = 0
    if blockers:
        deleted = delete_templates(
            session, person, now=now, actor=actor, why=f"matching not allowed: {', '.join(blockers)}"
        )
    return BiometricChange(tuple(records), deleted, blockers)


def _biometric_grants_in_force(person: Person, now: datetime) -> list[tuple[str, str | None]]:
    """Each giver (role, name) whose latest biometric answer is a grant."""
    answers: dict[tuple[str, str | None], str] = {}
    for record in sorted(biometric_records(person), key=lambda r: (r.at, r.sequence)):
        if record.at <= now:
            answers[(record.by, record.by_name)] = record.action
    return [giver for giver, act in answers.items() if act == "grant"]


def object_to_publication(
    session: Session, external_id: str, channel: str, *, settings: Settings, now: datetime, actor: str
) -> ConsentRecord:
    """Record an objection to publication on `channel`, effective now.

    Where the channel's lawful basis is public task or legitimate interests it is recorded as an
    objection; where it is consent, as a withdrawal. Either blocks at once. Raises
    PersonNotFoundError, InvalidInputError.
    """
    check_channel(settings.policy, channel)
    person = find_person(session, external_id)
    action = policy.objection_action(channel, policy_for(settings.policy))
    return add_record(
        session,
        person,
        kind="publication",
        channel=channel,
        action=action,
        at=now,
        how="objection",
        now=now,
        actor=actor,
    )
