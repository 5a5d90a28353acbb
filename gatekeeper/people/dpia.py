"""The DPIA switch: no face is matched and nobody is enrolled until a DPIA is recorded."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import DpiaRecord
from gatekeeper.config import Settings
from gatekeeper.errors import DpiaRequiredError, InvalidInputError


def current_dpia(session: Session) -> DpiaRecord | None:
    """The DPIA most recently recorded, or None."""
    return session.scalar(select(DpiaRecord).order_by(DpiaRecord.id.desc()).limit(1))


def matching_enabled(session: Session, settings: Settings) -> bool:
    """True when faces may be matched: a DPIA is recorded, or none is required."""
    return not settings.policy.dpia_required or current_dpia(session) is not None


def require_matching(session: Session, settings: Settings) -> None:
    """Raise DpiaRequiredError unless faces may be matched."""
    if not matching_enabled(session, settings):
        raise DpiaRequiredError()


def record_dpia(
    session: Session, *, reference: str, approved_by: str, approved_on: date, now: datetime, actor: str
) -> DpiaRecord:
    """Record an approved DPIA (audited); from now on faces may be matched. Raises InvalidInputError."""
    if not reference.strip() or not approved_by.strip():
        raise InvalidInputError("a DPIA needs its reference and who approved it")
    if approved_on > now.date():
        raise InvalidInputError(f"the DPIA approval date {approved_on.isoformat()} is in the future")
    record = DpiaRecord(
        reference=reference.strip(),
        approved_by=approved_by.strip(),
        approved_on=approved_on,
        recorded_at=now,
        recorded_by=actor,
    )
    session.add(record)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.DPIA_RECORDED,
        subject=f"dpia:{record.id}",
        details={
            "reference": record.reference,
            "approved_by": record.approved_by,
            "approved_on": approved_on,
        },
    )
    return record
