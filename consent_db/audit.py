"""The append-only, hash-chained audit log.

Each event's hash covers its content and the previous event's hash, so removing or editing any
event breaks every hash after it. On PostgreSQL appends take a transaction-scoped advisory lock so
two writers cannot both chain onto the same predecessor; SQLite serialises writers itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from consent_db.models import AuditEvent

GENESIS = "0" * 64
_LOCK_KEY = 0x6761_7465  # "gate": an arbitrary constant shared by every writer


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
    action: str,
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
class ChainCheck:
    """The result of re-computing the chain: how many events, and the first that does not fit."""

    events: int
    first_bad_id: int | None

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


def verify(session: Session) -> ChainCheck:
    """Re-compute every hash in order; report the first event whose hash or link is wrong."""
    prev = GENESIS
    count = 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.id)):
        count += 1
        expected = event_hash(prev, event.at, event.actor, event.action, event.subject, event.details)
        if event.prev_hash != prev or event.hash != expected:
            return ChainCheck(count, event.id)
        prev = event.hash
    return ChainCheck(count, None)
