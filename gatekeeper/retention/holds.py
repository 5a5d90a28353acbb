"""Holds: a photo kept past its retention deadline for a stated reason, until released."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import (
    Photo,
    PhotoHold,
)
from gatekeeper.errors import InvalidInputError, RecordNotFoundError

# --- holds: another lawful reason to keep a photo ------------------------------------------


def active_hold(session: Session, photo_id: int) -> PhotoHold | None:
    """The photo's hold in force, if any."""
    return session.scalar(
        select(PhotoHold)
        .where(PhotoHold.photo_id == photo_id, PhotoHold.released_at.is_(None))
        .order_by(PhotoHold.id.desc())
        .limit(1)
    )


def held_photos(session: Session) -> dict[int, str]:
    """Every photo under a hold in force, with the hold's reason."""
    rows = session.execute(
        select(PhotoHold.photo_id, PhotoHold.reason)
        .where(PhotoHold.released_at.is_(None))
        .order_by(PhotoHold.id)
    )
    return {photo_id: reason for photo_id, reason in rows}


def hold_photo(session: Session, photo_id: int, reason: str, *, now: datetime, actor: str) -> PhotoHold:
    """Record another lawful reason to keep a photo: erasure and purge leave it while held.

    Publishing still follows the consent in force. Raises RecordNotFoundError, InvalidInputError
    (no reason given, or already held).
    """
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("say why the photo must be kept (the lawful reason)", field="reason")
    if session.get(Photo, photo_id) is None:
        raise RecordNotFoundError("photo", photo_id)
    if active_hold(session, photo_id) is not None:
        raise InvalidInputError(f"photo {photo_id} is already held; release it first")
    hold = PhotoHold(photo_id=photo_id, reason=reason, held_at=now, held_by=actor)
    session.add(hold)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PHOTO_HELD,
        subject=f"photo:{photo_id}",
        details={"hold": hold.id, "reason": reason},
    )
    return hold


def release_hold(session: Session, photo_id: int, *, now: datetime, actor: str) -> PhotoHold:
    """End a photo's hold: retention applies again. Raises RecordNotFoundError, InvalidInputError."""
    if session.get(Photo, photo_id) is None:
        raise RecordNotFoundError("photo", photo_id)
    hold = active_hold(session, photo_id)
    if hold is None:
        raise InvalidInputError(f"photo {photo_id} is not held")
    hold.released_at, hold.released_by = now, actor
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PHOTO_RELEASED,
        subject=f"photo:{photo_id}",
        details={"hold": hold.id},
    )
    return hold
