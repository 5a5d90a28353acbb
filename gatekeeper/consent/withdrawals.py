"""The public withdrawal form's use cases: per-person links, requests with and without a link.

A request made with a person's link withdraws at once. A request without one (name, date of birth,
relationship, contact) cannot be trusted, yet must not wait: it is recorded as received, and a job
sent after the commit (`withdrawal_match`) suspends publishing for every matching person by
withdrawal records with how `public_form_unverified` (the decision treats them like any
withdrawal); a consent admin then confirms the request (the withdrawal stands) or rejects it (each
suspended grant is re-instated by a new grant record, audited). Nothing here ever grants or widens
consent on behalf of the public; the answer, and the time it takes, never depend on whether anyone
matched, since the request itself never looks anyone up. The audit log gets references and ids,
never the requester's contact details.

The requester is written to at the email they typed: a receipt with the request (its reference and
what happens next, the same words whoever it names) and a second message when staff decide. Both
are queued in the unit of work that records the request or the decision.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from difflib import SequenceMatcher

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentRecord, Person, WithdrawalLink, WithdrawalRequest
from gatekeeper.config import Settings
from gatekeeper.consent import records as consent
from gatekeeper.consent import summary as person_summary
from gatekeeper.errors import InvalidInputError, WithdrawalRequestNotFoundError
from gatekeeper.mail import messages, outbox
from gatekeeper.people import lookup as people
from gatekeeper.people.contacts import contacts_of
from gatekeeper.policy import PersonStatus
from gatekeeper.queueing import JobKind, request_job, request_takedown
from gatekeeper.staff import alerts
from gatekeeper.staff.accounts import token_hash

LINK_HOW = "public_form_link"
UNVERIFIED_HOW = "public_form_unverified"
REINSTATED_HOW = "suspension_lifted"
RELATIONSHIPS = ("self", "parent", "guardian", "other")
PENDING, DONE, CONFIRMED, REJECTED = "pending", "done", "confirmed", "rejected"
# How alike a name must be (difflib's ratio, after normalise_name) to be shown to staff as a near match.
NEAR_NAME_RATIO = 0.75
# Staff act on a request without a link within this many hours (the list marks older ones overdue):
# a typo suspends nobody, so until then the learner's photos may still be published.
ACT_WITHIN_HOURS = 24
OVERDUE = timedelta(hours=ACT_WITHIN_HOURS)
_REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class LinkView:
    """What a link's page may show: the person's first name and the channels consented now."""

    first_name: str
    channels: tuple[str, ...]


def new_reference() -> str:
    """A receipt reference: short enough to read out, random enough not to guess."""
    return "WD-" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(10))


def link_url(public_url: str, token: str) -> str:
    """The withdrawal page for `token` under the app's public address."""
    return f"{public_url.rstrip('/')}/withdraw/{token}"


def issue_link(session: Session, external_id: str, *, settings: Settings, now: datetime, actor: str) -> str:
    """A new withdrawal link for a person (earlier links stay valid); raises PersonNotFoundError."""
    person = people.find_person(session, external_id)
    token = secrets.token_urlsafe(32)
    link = WithdrawalLink(person_id=person.id, token_hash=token_hash(token), created_at=now, created_by=actor)
    session.add(link)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.WITHDRAWAL_LINK_ISSUED,
        subject=f"person:{person.id}",
        details={"link": link.id},
    )
    return link_url(settings.web.public_address, token)


def person_for_link(session: Session, token: str) -> Person | None:
    """The person a link token belongs to, else None (erased people have no working link)."""
    if not token or len(token) > 100:
        return None
    person = session.scalar(
        select(Person)
        .join(WithdrawalLink, WithdrawalLink.person_id == Person.id)
        .where(WithdrawalLink.token_hash == token_hash(token))
    )
    return person if person is not None and person.status != PersonStatus.ERASED else None


def suspended_channels(person: Person) -> tuple[str, ...]:
    """Channels whose grant is interrupted only by an unverified suspension (a rejection re-instates it)."""
    found = []
    for channel in sorted({r.channel for r in person.consents if r.kind == "publication"}):
        same = sorted(
            (r for r in person.consents if r.kind == "publication" and r.channel == channel),
            key=lambda r: (r.at, r.id),
        )
        if len(same) >= 2 and same[-1].how == UNVERIFIED_HOW and same[-2].action == "grant":
            found.append(channel)
    return tuple(found)


def consented_channels(
    session: Session, person: Person, *, settings: Settings, now: datetime
) -> tuple[str, ...]:
    """The channels with a grant in force for `person` now, or only suspended pending verification."""
    summary = person_summary.summarise_person(session, person.external_id, settings=settings, now=now)
    suspended = suspended_channels(person)
    granted = [c.channel for c in summary.channels if c.granted_by is not None or c.channel in suspended]
    return tuple(dict.fromkeys([*granted, *suspended]))


def withdraw(
    session: Session,
    external_id: str,
    channels: Sequence[str],
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    how: str,
) -> list[ConsentRecord]:
    """Withdraw like consent.withdraw_consent, and also record it where only a suspension stands.

    A channel suspended by an unverified request already reads as withdrawn, so a plain withdrawal
    would add nothing, and rejecting the request later would re-instate the grant. An explicit
    record makes this withdrawal outlast the suspension. Raises PersonNotFoundError,
    UnknownChannelError.
    """
    added = consent.withdraw_consent(
        session, external_id, channels, settings=settings, now=now, actor=actor, how=how
    )
    person = people.find_person(session, external_id)
    done = {r.channel for r in added}
    for channel in suspended_channels(person):
        if channel in done or (channels and channel not in channels):
            continue
        record = ConsentRecord(
            person=person,
            kind="publication",
            channel=channel,
            action="withdraw",
            at=now,
            named="no",
            how=how,
            recorded_at=now,
            recorded_by=actor,
        )
        session.add(record)
        session.flush()
        added.append(record)
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.CONSENT_WITHDRAW,
            subject=f"person:{person.id}",
            details={"record": record.id, "kind": "publication", "channel": channel, "how": how},
        )
        request_takedown(session, person.id, now=now)
    return added


def view_link(session: Session, token: str, *, settings: Settings, now: datetime) -> LinkView | None:
    """What the link's page shows, or None for a link that does not work."""
    person = person_for_link(session, token)
    if person is None:
        return None
    return LinkView(
        people.first_name(person), consented_channels(session, person, settings=settings, now=now)
    )


def withdraw_with_link(
    session: Session, token: str, channels: Sequence[str], *, settings: Settings, now: datetime
) -> WithdrawalRequest:
    """Withdraw the chosen consented channels (none chosen: all) at once; raises InvalidInputError."""
    person = person_for_link(session, token)
    if person is None:
        raise InvalidInputError("this withdrawal link does not work; use the form without a link")
    consented = consented_channels(session, person, settings=settings, now=now)
    unknown = [c for c in channels if c not in consented]
    if unknown:
        raise InvalidInputError(f"not currently consented: {', '.join(unknown)}", field="channels")
    targets = list(channels) or list(consented)
    reference = new_reference()
    records: list[ConsentRecord] = []
    if targets:
        records = withdraw(
            session,
            person.external_id,
            targets,
            settings=settings,
            now=now,
            actor=f"public:{reference}",
            how=LINK_HOW,
        )
    request = WithdrawalRequest(
        reference=reference,
        via="link",
        status=DONE,
        created_at=now,
        channels=targets,
        person_ids=[person.id],
        record_ids=[r.id for r in records],
        matched_at=now,
    )
    session.add(request)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=f"public:{reference}",
        action=AuditAction.WITHDRAWAL_LINK,
        subject=f"person:{person.id}",
        details={"reference": reference, "channels": targets},
    )
    _tell_contacts(session, person, request, settings=settings, now=now)
    return request


def _tell_contacts(
    session: Session, person: Person, request: WithdrawalRequest, *, settings: Settings, now: datetime
) -> None:
    """A receipt of a withdrawal made with a link to every contact on record for the person, each
    with a new withdrawal link of their own (none on record: nobody is written to)."""
    first = people.first_name(person)
    for contact in contacts_of(session, person):
        messages.queue(
            session,
            "withdrawal_link_receipt",
            to=[contact.email],
            about=f"withdrawal_request:{request.id}",
            settings=settings.mail,
            now=now,
            actor=f"public:{request.reference}",
            first_name=first,
            reference=request.reference,
            at=now,
            channels=[messages.channel_label(c) for c in request.channels],
            withdraw_url=issue_link(
                session, person.external_id, settings=settings, now=now, actor=f"public:{request.reference}"
            ),
        )


def normalise_name(name: str) -> str:
    """A name compared the way people type it: case, accents' composition and spacing ignored."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def request_withdrawal(
    session: Session,
    *,
    name: str,
    date_of_birth: date,
    relationship: str,
    contact_email: str,
    settings: Settings,
    now: datetime,
) -> WithdrawalRequest:
    """Record a request without a link, queue its matching job and the receipt to `contact_email`.

    The request looks nobody up: the same rows and the same receipt are written whoever it names,
    so neither the answer, its timing nor the receipt says whether the learner is on record.
    `match_request` does the rest in the job. Raises InvalidInputError (for `contact_email`, an
    address a message cannot be sent to).
    """
    if relationship not in RELATIONSHIPS:
        raise InvalidInputError(
            f"relationship must be one of {', '.join(RELATIONSHIPS)}", field="relationship"
        )
    if not normalise_name(name):
        raise InvalidInputError("the learner's name is required", field="name")
    if not outbox.is_plain_address(contact_email):
        raise InvalidInputError(
            "enter an email address like name@example.org, without accents or spaces", field="contact_email"
        )
    reference = new_reference()
    request = WithdrawalRequest(
        reference=reference,
        via="form",
        status=PENDING,
        created_at=now,
        channels=[],
        claimed_name=name.strip(),
        claimed_date_of_birth=date_of_birth,
        relationship_to_person=relationship,
        contact_email=contact_email.strip(),
        person_ids=[],
        record_ids=[],
    )
    session.add(request)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=f"public:{reference}",
        action=AuditAction.WITHDRAWAL_RECEIVED,
        subject=f"request:{request.id}",
        details={"reference": reference},
    )
    # The job matches the request and suspends publishing for whoever it names.
    request_job(session, JobKind.WITHDRAWAL_MATCH, [request.id], now=now)
    # The receipt is written before any match and names nobody: it reads the same for everyone.
    messages.queue(
        session,
        "withdrawal_receipt",
        to=[contact_email.strip()],
        about=f"withdrawal_request:{request.id}",
        settings=settings.mail,
        now=now,
        actor=f"public:{reference}",
        reference=reference,
    )
    return request


def exact_matches(session: Session, name: str, date_of_birth: date) -> list[Person]:
    """People (not erased) whose name (ignoring case and spacing) and date of birth are these."""
    wanted = normalise_name(name)
    return [p for p in _born_on(session, date_of_birth) if normalise_name(p.display_name) == wanted]


def _born_on(session: Session, date_of_birth: date) -> Sequence[Person]:
    return session.scalars(
        select(Person)
        .where(Person.date_of_birth == date_of_birth, Person.status != PersonStatus.ERASED)
        .order_by(Person.id)
    ).all()


def match_request(
    session: Session, request_id: int, *, settings: Settings, now: datetime
) -> WithdrawalRequest | None:
    """Suspend publishing for every person a request without a link names (the job's body), and
    tell consent admins it waits for them to check it (`alerts.request_waiting`).

    Idempotent: a request already matched is left as it is; None when there is no such request.
    A person's takedown is queued by the withdrawal, after this unit of work commits.
    """
    request = session.get(WithdrawalRequest, request_id)
    if request is None or request.matched_at is not None:
        return request
    matches: list[Person] = []
    if request.claimed_name is not None and request.claimed_date_of_birth is not None:
        matches = exact_matches(session, request.claimed_name, request.claimed_date_of_birth)
    record_ids: list[int] = []
    for person in matches:
        records = consent.withdraw_consent(
            session,
            person.external_id,
            (),
            settings=settings,
            now=now,
            actor=f"public:{request.reference}",
            how=UNVERIFIED_HOW,
        )
        record_ids.extend(r.id for r in records)
    request.person_ids = [p.id for p in matches]
    request.record_ids = record_ids
    request.matched_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=f"public:{request.reference}",
        action=AuditAction.WITHDRAWAL_SUSPENDED,
        subject=f"request:{request.id}",
        details={"reference": request.reference, "people": request.person_ids, "records": record_ids},
    )
    # Staff can decide only once it is matched: now it waits for them.
    alerts.request_waiting(session, request, settings=settings, now=now, actor=f"public:{request.reference}")
    return request


def near_matches(session: Session, request: WithdrawalRequest) -> list[Person]:
    """People born on the day a request gives whose name is like, but not, the one typed.

    For staff: a typo suspends nobody, so the request page shows who it may have meant.
    """
    if request.claimed_name is None or request.claimed_date_of_birth is None:
        return []
    typed = normalise_name(request.claimed_name)
    found = []
    for person in _born_on(session, request.claimed_date_of_birth):
        name = normalise_name(person.display_name)
        if person.id in request.person_ids or name == typed:
            continue
        if (
            set(name.split()) & set(typed.split())
            or SequenceMatcher(None, name, typed).ratio() >= NEAR_NAME_RATIO
        ):
            found.append(person)
    return found


def find_request(session: Session, reference: str) -> WithdrawalRequest:
    """The request with `reference`; raises WithdrawalRequestNotFoundError."""
    request = session.scalar(select(WithdrawalRequest).where(WithdrawalRequest.reference == reference))
    if request is None:
        raise WithdrawalRequestNotFoundError(reference)
    return request


def pending_requests(session: Session) -> list[WithdrawalRequest]:
    """Requests without a link that wait for a consent admin, oldest first."""
    return list(
        session.scalars(
            select(WithdrawalRequest)
            .where(WithdrawalRequest.status == PENDING)
            .order_by(WithdrawalRequest.created_at, WithdrawalRequest.id)
        )
    )


@dataclass(frozen=True)
class Waiting:
    """How long a request has waited for staff, in words, and whether that is past ACT_WITHIN_HOURS."""

    words: str
    overdue: bool


def waiting(request: WithdrawalRequest, now: datetime) -> Waiting:
    """How long `request` has waited at `now` ("40 min", "5 h", "3 days")."""
    return Waiting(alerts.waited(request.created_at, now), now - request.created_at >= OVERDUE)


def people_of(session: Session, request: WithdrawalRequest) -> list[Person]:
    """The people a request matched."""
    if not request.person_ids:
        return []
    return list(session.scalars(select(Person).where(Person.id.in_(request.person_ids)).order_by(Person.id)))


def has_details(request: WithdrawalRequest) -> bool:
    """Whether a request still holds what it was made with (names, birth date, relationship, email)."""
    details = (
        request.claimed_name,
        request.claimed_date_of_birth,
        request.relationship_to_person,
        request.contact_email,
    )
    return any(value is not None for value in details)


def erase_details(
    session: Session, request: WithdrawalRequest, *, now: datetime, actor: str, why: str
) -> bool:
    """Blank the learner's name and birth date as typed and the requester's relationship and email,
    and that email in the messages written to them (audited); the reference, status, decision and
    matched people stay. False: nothing was left."""
    if not has_details(request):
        return False
    request.claimed_name = request.contact_email = request.relationship_to_person = None
    request.claimed_date_of_birth = None
    # The messages written to the requester keep their address no longer than the request does.
    outbox.forget_recipients(session, f"withdrawal_request:{request.id}", now=now)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.WITHDRAWAL_DETAILS_ERASED,
        subject=f"request:{request.id}",
        details={"reference": request.reference, "why": why},
    )
    return True


def _pending(session: Session, reference: str) -> WithdrawalRequest:
    request = find_request(session, reference)
    if request.status != PENDING:
        raise InvalidInputError(f"request {reference} was already {request.status}")
    if request.matched_at is None:
        # Deciding before the job has suspended anyone would confirm or lift nothing.
        raise InvalidInputError(f"request {reference} is still being matched; try again in a minute")
    return request


def _tell_decision(
    session: Session, request: WithdrawalRequest, *, settings: Settings, now: datetime
) -> None:
    """Queue the message that tells the requester what was decided, to the email they typed.

    Only while the request still holds that email: once its details are erased (retention, or an
    erasure), there is no one to write to, and nothing is sent.
    """
    if request.contact_email is None or not outbox.is_plain_address(request.contact_email):
        return
    messages.queue(
        session,
        "withdrawal_decision",
        to=[request.contact_email],
        about=f"withdrawal_request:{request.id}",
        settings=settings.mail,
        now=now,
        actor=request.decided_by or f"public:{request.reference}",
        reference=request.reference,
        confirmed=request.status == CONFIRMED,
    )


def confirm_request(
    session: Session, reference: str, *, settings: Settings, now: datetime, actor: str, note: str = ""
) -> WithdrawalRequest:
    """The requester was verified: the suspension stands as their withdrawal; raises InvalidInputError.

    Each matched person's photos are taken down again (the suspension already queued a takedown;
    this one also catches a copy published between the two). The requester is told (`_tell_decision`).
    """
    request = _pending(session, reference)
    for person_id in request.person_ids:
        request_takedown(session, person_id, now=now)
    request.status, request.decided_by, request.decided_at = CONFIRMED, actor, now
    request.decision_note = note.strip() or None
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.WITHDRAWAL_CONFIRMED,
        subject=f"request:{request.id}",
        details={"reference": reference, "people": request.person_ids},
    )
    _tell_decision(session, request, settings=settings, now=now)
    return request


def reject_request(
    session: Session, reference: str, *, settings: Settings, now: datetime, actor: str, note: str = ""
) -> WithdrawalRequest:
    """The request was not genuine: lift the suspension, re-instating each grant it interrupted.

    A channel is re-instated only while the suspension is still the latest record for it, so a
    withdrawal made since (with a link, or by staff) is never undone. The requester is told
    (`_tell_decision`). Raises InvalidInputError.
    """
    request = _pending(session, reference)
    reinstated: list[int] = []
    for record_id in request.record_ids:
        suspension = session.get(ConsentRecord, record_id)
        if suspension is None:
            continue
        same_channel = [
            r
            for r in suspension.person.consents
            if r.kind == suspension.kind and r.channel == suspension.channel
        ]
        latest = max(same_channel, key=lambda r: (r.at, r.id))
        if latest.id != suspension.id:
            continue
        earlier = [r for r in same_channel if (r.at, r.id) < (suspension.at, suspension.id)]
        before = max(earlier, key=lambda r: (r.at, r.id)) if earlier else None
        if before is None or before.action != "grant":
            continue
        if before.valid_until is not None and before.valid_until <= now:
            continue
        grant = ConsentRecord(
            person=suspension.person,
            kind=before.kind,
            channel=before.channel,
            action="grant",
            at=now,
            granted_by=before.granted_by,
            granted_by_name=before.granted_by_name,
            evidence_ref=before.evidence_ref,
            wording_version=before.wording_version,
            valid_until=before.valid_until,
            named=before.named,
            how=REINSTATED_HOW,
            recorded_at=now,
            recorded_by=actor,
        )
        session.add(grant)
        session.flush()
        reinstated.append(grant.id)
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.CONSENT_GRANT,
            subject=f"person:{suspension.person_id}",
            details={
                "record": grant.id,
                "kind": grant.kind,
                "channel": grant.channel,
                "how": REINSTATED_HOW,
                "reinstates": before.id,
                "request": reference,
            },
        )
    request.status, request.decided_by, request.decided_at = REJECTED, actor, now
    request.decision_note = note.strip() or None
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.WITHDRAWAL_REJECTED,
        subject=f"request:{request.id}",
        details={"reference": reference, "people": request.person_ids, "reinstated": reinstated},
    )
    _tell_decision(session, request, settings=settings, now=now)
    return request
