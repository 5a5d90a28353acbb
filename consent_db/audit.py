"""The append-only, hash-chained audit log.

Each event's hash covers its content and the previous event's hash, so removing or editing any
event breaks every hash after it. Removing the *last* events leaves a shorter chain that is still
consistent: only a head recorded outside the database (`head()`, checked by `verify(anchor=...)`)
shows that. On PostgreSQL appends take a transaction-scoped advisory lock so two writers cannot
both chain onto the same predecessor; SQLite serialises writers itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from consent_db.models import AuditEvent

GENESIS = "0" * 64
_LOCK_KEY = 0x6761_7465  # "gate": an arbitrary constant shared by every writer


class AuditAction(StrEnum):
    """What an audit event records: `<what>.<what happened>`. Stored as its value, which never changes
    (the chain's hashes and every filter on `action` depend on it)."""

    BATCH_UPLOADED = "batch.uploaded"

    CONSENT_FORM_ANSWERED = "consent_form.answered"
    CONSENT_FORM_SENT = "consent_form.sent"

    CONSENT_GRANT = "consent.grant"
    CONSENT_WITHDRAW = "consent.withdraw"
    CONSENT_OBJECT = "consent.object"
    CONSENT_REFUSE = "consent.refuse"

    CONTACT_ADDED = "contact.added"
    CONTACT_REMOVED = "contact.removed"

    DPIA_RECORDED = "dpia.recorded"

    FACE_CONFIRMED = "face.confirmed"
    FACE_REVIEWED = "face.reviewed"

    FILE_UNREADABLE = "file.unreadable"

    JOB_FAILED = "job.failed"
    JOB_RETRIED = "job.retried"

    ORPHANS_DELETED = "orphans.deleted"

    OUTBOX_MARKED_SENT = "outbox.marked_sent"
    OUTBOX_RESENT = "outbox.resent"

    PERSON_CREATED = "person.created"
    PERSON_ERASED = "person.erased"
    PERSON_EXPORTED = "person.exported"
    PERSON_LEFT = "person.left"
    PERSON_SAFEGUARDING_CLEARED = "person.safeguarding_cleared"
    PERSON_SAFEGUARDING_SET = "person.safeguarding_set"
    PERSON_UPDATED = "person.updated"

    PHOTO_GATED = "photo.gated"
    PHOTO_HELD = "photo.held"
    PHOTO_PUBLISHED = "photo.published"
    PHOTO_PURGED = "photo.purged"
    PHOTO_RELEASED = "photo.released"

    PUBLICATION_RECORDED = "publication.recorded"
    PUBLICATION_REFUSED = "publication.refused"
    PUBLICATION_REQUESTED = "publication.requested"
    PUBLICATION_TAKEN_DOWN = "publication.taken_down"

    PURGE_REPORT = "purge.report"

    SCAN_FINISHED = "scan.finished"
    SCAN_ORIGINALS_DELETED = "scan.originals_deleted"
    SCAN_STARTED = "scan.started"

    TAKEDOWN_DONE = "takedown.done"
    TAKEDOWN_OPENED = "takedown.opened"

    TEMPLATE_CREATED = "template.created"
    TEMPLATE_DELETED = "template.deleted"
    TEMPLATES_RESEALED = "templates.resealed"

    USER_CREATED = "user.created"
    USER_EMAIL_CHANGED = "user.email_changed"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_TOKEN_ISSUED = "user.token_issued"

    WITHDRAWAL_CONFIRMED = "withdrawal.confirmed"
    WITHDRAWAL_DETAILS_ERASED = "withdrawal.details_erased"
    WITHDRAWAL_LINK = "withdrawal.link"
    WITHDRAWAL_RECEIVED = "withdrawal.received"
    WITHDRAWAL_REJECTED = "withdrawal.rejected"
    WITHDRAWAL_SUSPENDED = "withdrawal.suspended"
    WITHDRAWAL_LINK_ISSUED = "withdrawal_link.issued"

    @classmethod
    def of_consent(cls, action: str) -> AuditAction:
        """The event of a consent record with `action` (grant, withdraw, object, refuse); raises
        ValueError for any other."""
        return cls(f"consent.{action}")


def event_hash(
    prev_hash: str, at: datetime, actor: str, action: str, subject: str, details: dict[str, Any]
) -> str:
    """The hash of one event's content chained onto its predecessor's."""
    body = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


def append(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: AuditAction,
    subject: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain (flushes, never commits)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    clean = json.loads(json.dumps(details or {}, sort_keys=True, default=str))
    prev = session.scalar(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)) or GENESIS
    event = AuditEvent(
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=clean,
        prev_hash=prev,
        hash=event_hash(prev, at, actor, action, subject, clean),
    )
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class ChainHead:
    """How long the chain is and the hash of its last event (GENESIS when empty)."""

    events: int
    hash: str


def head(session: Session) -> ChainHead:
    """The chain's current head: worth keeping outside the database to anchor later checks."""
    last = session.execute(
        select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).one_or_none()
    if last is None:
        return ChainHead(0, GENESIS)
    # Counted up to that event, so an append committed in between cannot make the pair disagree.
    count = session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.id <= last.id))
    return ChainHead(count or 0, last.hash)


def events(
    session: Session,
    *,
    since: datetime | None = None,
    subject: str | None = None,
    subjects: Collection[str] | None = None,
) -> Iterator[AuditEvent]:
    """Events in chain order, optionally only those at or after `since`, about `subject` and
    about any of `subjects` (both filters apply when both are given)."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if subject is not None:
        query = query.where(AuditEvent.subject == subject)
    if subjects is not None:
        query = query.where(AuditEvent.subject.in_(sorted(set(subjects))))
    yield from session.scalars(query)


@dataclass(frozen=True)
class ChainCheck:
    """The result of re-computing the chain: how many events, and the first that does not fit.

    With an anchor (a head recorded earlier, outside the database), also where that head is in
    the chain: None when it is not there, which means events were removed from the end or the
    chain was rewritten.
    """

    events: int
    first_bad_id: int | None
    anchor: str | None = None
    anchor_position: int | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None and (self.anchor is None or self.anchor_position is not None)


def verify(session: Session, anchor: str | None = None) -> ChainCheck:
    """Re-compute every hash in order; report the first event whose hash or link is wrong.

    With `anchor`, also find that hash in the chain (GENESIS is the empty chain's head).
    """
    prev = GENESIS
    count = 0
    position = 0 if anchor == GENESIS else None
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        expected = event_hash(prev, event.at, event.actor, event.action, event.subject, event.details)
        if event.prev_hash != prev or event.hash != expected:
            return ChainCheck(count, event.id, anchor, position)
        if event.hash == anchor:
            position = count
        prev = event.hash
    return ChainCheck(count, None, anchor, position)
