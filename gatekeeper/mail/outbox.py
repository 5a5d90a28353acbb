"""The outbox: writing a message in the caller's unit of work, and what admins see and do with it.

A message is a row (`consent_db.models.OutboxMessage`) written with the change that causes it and
a `JobKind.SEND_MAIL` job asked for in the same transaction: a rollback leaves neither, a commit
sends it. Its Message-ID is made here and kept on the row, so the copy a server accepted can be
told from a second one.

What a message says is its caller's: name a learner by first name only, never put a full name in
a subject, never attach a photo. `about` names the cause by kind and id (`person:12`), never by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import make_msgid
from enum import StrEnum
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import OutboxMessage
from gatekeeper.config import MailSettings
from gatekeeper.errors import InvalidInputError, RecordNotFoundError
from gatekeeper.queueing import JobKind, request_job


class MailState(StrEnum):
    """Where a message is: see `OutboxMessage`."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


# Failed and uncertain messages need someone: they come first in every list.
NEEDS_ATTENTION = (MailState.FAILED, MailState.UNCERTAIN)
_ADDRESS_RE = re.compile(r"^[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9.\-]+$")
_ABOUT_RE = re.compile(r"^[a-z_]+:[A-Za-z0-9_\-]+$")


def is_plain_address(address: str) -> bool:
    """Whether `address` is one plain ASCII address (name@domain), as a message may be sent to."""
    return bool(_ADDRESS_RE.match(address.strip()))


def queue_message(
    session: Session,
    *,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    kind: str,
    about: str | None = None,
    settings: MailSettings,
    now: datetime,
    actor: str,
) -> OutboxMessage:
    """Write a message to `to` and ask for the job that sends it after the commit (flushes only).

    `kind` says what sort of message it is (`test`, `withdrawal_receipt`...), `about` what caused
    it (`person:12`). Raises InvalidInputError for an address that is not one plain ASCII address,
    a subject on more than one line or an `about` that is not `kind:id`.
    """
    recipients = [address.strip() for address in to]
    if not recipients:
        raise InvalidInputError("a message needs at least one recipient", field="to")
    for address in recipients:
        if not is_plain_address(address):
            raise InvalidInputError(f"not one plain email address: {address!r}", field="to")
    if not subject.strip() or "\n" in subject or "\r" in subject or len(subject) > 255:
        raise InvalidInputError("a subject is one line of up to 255 characters", field="subject")
    if about is not None and not _ABOUT_RE.match(about):
        raise InvalidInputError(
            f"`about` is what caused the message as kind:id (got {about!r})", field="about"
        )
    message = OutboxMessage(
        message_id=make_msgid(domain=settings.sender_domain),
        kind=kind,
        about=about,
        recipients=recipients,
        subject=subject,
        body_text=text,
        body_html=html,
        state=MailState.QUEUED.value,
        attempts=0,
        requested_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(message)
    session.flush()
    request_job(session, JobKind.SEND_MAIL, [message.id], now=now)
    return message


@dataclass(frozen=True)
class OutboxLine:
    """One message as admins see it: who it is to, what, where it is and the server's last answer."""

    id: int
    message_id: str
    kind: str
    about: str | None
    recipients: tuple[str, ...]
    subject: str
    state: str
    attempts: int
    answer: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None

    @property
    def needs_attention(self) -> bool:
        """True for a failed or uncertain message: someone must look at it."""
        return self.state in NEEDS_ATTENTION

    def as_json(self) -> dict[str, Any]:
        """The line as `outbox list --json` prints it."""
        return {
            "id": self.id,
            "message_id": self.message_id,
            "kind": self.kind,
            "about": self.about,
            "to": list(self.recipients),
            "subject": self.subject,
            "state": self.state,
            "attempts": self.attempts,
            "answer": self.answer,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def _line(row: OutboxMessage) -> OutboxLine:
    return OutboxLine(
        id=row.id,
        message_id=row.message_id,
        kind=row.kind,
        about=row.about,
        recipients=tuple(row.recipients),
        subject=row.subject,
        state=row.state,
        attempts=row.attempts,
        answer=row.answer,
        created_at=row.created_at,
        updated_at=row.updated_at,
        sent_at=row.sent_at,
    )


def list_messages(session: Session, *, attention_only: bool = False, limit: int = 200) -> list[OutboxLine]:
    """Messages, failed and uncertain first, then waiting, then sent; newest first within each.

    `attention_only`: only the failed and uncertain ones.
    """
    rank = case(
        (OutboxMessage.state.in_(NEEDS_ATTENTION), 0),
        (OutboxMessage.state.in_((MailState.QUEUED, MailState.SENDING)), 1),
        else_=2,
    )
    query = select(OutboxMessage).order_by(rank, OutboxMessage.id.desc()).limit(limit)
    if attention_only:
        query = query.where(OutboxMessage.state.in_(NEEDS_ATTENTION))
    return [_line(row) for row in session.scalars(query)]


def _message(session: Session, message_id: int) -> OutboxMessage:
    row = session.get(OutboxMessage, message_id, with_for_update=True)
    if row is None:
        raise RecordNotFoundError("message", message_id)
    return row


def resend(session: Session, message_id: int, *, now: datetime, actor: str) -> OutboxLine:
    """Queue a failed or uncertain message again (audited) and ask for its job; raises
    InvalidInputError for a message in any other state (a sent message is never sent again)."""
    row = _message(session, message_id)
    if row.state not in NEEDS_ATTENTION:
        raise InvalidInputError(
            f"message {message_id} is {row.state}: only a failed or uncertain message is sent again"
        )
    if not row.recipients:
        raise InvalidInputError(f"message {message_id} has no recipient left: its details were erased")
    was = row.state
    row.state = MailState.QUEUED.value
    row.updated_at = now
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.OUTBOX_RESENT,
        subject=f"outbox:{row.id}",
        details={"was": was, "message_id": row.message_id},
    )
    session.flush()
    request_job(session, JobKind.SEND_MAIL, [row.id], now=now)
    return _line(row)


def mark_sent(session: Session, message_id: int, *, now: datetime, actor: str) -> OutboxLine:
    """Record an uncertain message as sent, once someone has found it in the mailbox (audited);
    raises InvalidInputError for a message that is not uncertain."""
    row = _message(session, message_id)
    if row.state != MailState.UNCERTAIN:
        raise InvalidInputError(
            f"message {message_id} is {row.state}: only an uncertain message is marked sent"
        )
    row.state = MailState.SENT.value
    row.answer = f"marked sent by {actor}"
    row.sent_at = now
    row.updated_at = now
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.OUTBOX_MARKED_SENT,
        subject=f"outbox:{row.id}",
        details={"message_id": row.message_id},
    )
    session.flush()
    return _line(row)


ERASED_ANSWER = "not sent: the recipient's details were erased before it went"


def forget_recipients(session: Session, about: str, *, now: datetime) -> int:
    """Blank the recipients of every message about `about` (`withdrawal_request:3`), when the details
    they were taken from are erased: the address is kept no longer than its source. A message not yet
    sent is never sent (failed, with the reason); one being sent at that very moment is left to its
    conversation. How many were changed."""
    rows = session.scalars(
        select(OutboxMessage).where(OutboxMessage.about == about, OutboxMessage.state != MailState.SENDING)
    )
    changed = 0
    for row in rows:
        if not row.recipients:
            continue
        if row.state == MailState.QUEUED:
            row.state, row.answer = MailState.FAILED.value, ERASED_ANSWER
        row.recipients = []
        row.updated_at = now
        changed += 1
    session.flush()
    return changed
