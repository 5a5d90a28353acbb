"""Sending the outbox over SMTP, so that a message is never sent twice and never silently lost.

`deliver` takes one message through three units of work of its own: the row is committed as
`sending` before the SMTP conversation starts, the conversation runs outside any transaction, and
its end is recorded after. A crash between the server's acceptance and that record leaves the row
`sending`: whoever finds it so later (a job sent again, the periodic run) marks it `uncertain` and
does not send it, and an admin looks in the mailbox for its Message-ID, then sends it again or
marks it sent. A sent message is never sent again.

A server that cannot be reached, or answers 4xx, leaves the message queued and raises
MailDeliveryError (transient: the job is retried with backoff, and `deliver_due`, run on
`GATEKEEPER_MAIL_RETRY_SCHEDULE`, tries again later). A 5xx answer to the sender, every recipient
or the message itself fails it for good, with the server's answer kept on the row. Without an SMTP
server configured, nothing is sent and messages stay queued.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from consent_db.models import OutboxMessage
from consent_db.session import unit_of_work
from gatekeeper.config import MailSettings
from gatekeeper.errors import MailDeliveryError, RecordNotFoundError
from gatekeeper.mail.outbox import MailState

log = logging.getLogger(__name__)

UNCERTAIN_ANSWER = (
    "the sending of this message was cut short and its end was never recorded: it may have been sent. "
    "Look for its Message-ID in the mailbox, then send it again or mark it sent"
)


def stale_after(settings: MailSettings) -> timedelta:
    """How long a message may stay `sending` before it is taken for a sending cut short: longer than
    any conversation, whose every step ends within the SMTP timeout."""
    return timedelta(seconds=settings.timeout * 10)


@dataclass(frozen=True)
class _Claimed:
    """A message taken for sending: what the conversation needs."""

    message_id: str
    recipients: tuple[str, ...]
    email: bytes


@dataclass
class DeliveryRun:
    """What `deliver_due` did: messages by the state each was left in."""

    states: dict[str, int] = field(default_factory=dict)

    def count(self, state: str) -> None:
        self.states[state] = self.states.get(state, 0) + 1


class _CutShort(Exception):
    """The conversation ended between handing over the message and hearing the server's answer."""


class _Refused(Exception):
    """The server answered the sender, every recipient or the message with an error."""

    def __init__(self, code: int, answer: str) -> None:
        super().__init__(answer)
        self.code = code
        self.answer = answer

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


def compose(row: OutboxMessage, settings: MailSettings, *, now: datetime) -> EmailMessage:
    """The email of `row`: its stored Message-ID, Date, From (the organisation's name and the
    sender's address), To and Subject; its text, and its HTML as the alternative when it has one."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = row.subject
    address = settings.from_address or f"gatekeeper@{settings.sender_domain}"
    message["From"] = formataddr((settings.org_name, address)) if settings.org_name else address
    message["To"] = ", ".join(row.recipients)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = row.message_id
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(row.body_text)
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message


def deliver(
    sessions: sessionmaker[Session], message_id: int, settings: MailSettings, *, now: datetime
) -> str:
    """Send outbox message `message_id` if it is queued; the state it is left in.

    Takes the session factory, not a session: the row is committed as `sending` before the
    conversation and its end in a unit of its own after. A message found `sending` for longer
    than `stale_after` is marked uncertain, not sent; one found `sending` more recently is being
    sent by another worker and is left to it. Raises MailDeliveryError when the message stays
    queued because the server could not take it now, RecordNotFoundError for no such message.
    """
    if not settings.configured:
        return MailState.QUEUED.value
    with unit_of_work(sessions) as session:
        claimed, state = _claim(session, message_id, settings, now=now)
    if claimed is None:
        return state
    try:
        answer, refused = _converse(settings, claimed)
    except _Refused as exc:
        final = MailState.FAILED if exc.permanent else MailState.QUEUED
        _record(sessions, message_id, final, exc.answer, now=now)
        if final is MailState.QUEUED:
            raise MailDeliveryError(f"message {message_id} stays queued: {exc.answer}") from None
        return final.value
    except _CutShort as exc:
        log.warning("message %s: the server's answer was lost (%s): marked uncertain", message_id, exc)
        _record(sessions, message_id, MailState.UNCERTAIN, f"{UNCERTAIN_ANSWER} ({exc})", now=now)
        return MailState.UNCERTAIN.value
    except (OSError, smtplib.SMTPException) as exc:
        why = _describe(exc)
        _record(sessions, message_id, MailState.QUEUED, why, now=now)
        raise MailDeliveryError(f"message {message_id} stays queued: {why}") from None
    if refused:
        answer += "; refused: " + "; ".join(f"{to}: {why}" for to, why in refused.items())
    _record(sessions, message_id, MailState.SENT, answer, now=now)
    return MailState.SENT.value


def deliver_due(sessions: sessionmaker[Session], settings: MailSettings, *, now: datetime) -> DeliveryRun:
    """Settle every message left `sending` too long (uncertain), then send every queued one, oldest
    first, until the server cannot take more now (the rest wait for the next run)."""
    run = DeliveryRun()
    with unit_of_work(sessions) as session:
        waiting = list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.state.in_((MailState.QUEUED, MailState.SENDING)))
                .order_by(OutboxMessage.id)
            )
        )
    if not settings.configured:
        run.states[MailState.QUEUED.value] = len(waiting)
        return run
    for message_id in waiting:
        try:
            run.count(deliver(sessions, message_id, settings, now=now))
        except MailDeliveryError as exc:
            log.warning("%s; the others wait for the next run", exc)
            run.count(MailState.QUEUED.value)
            break
    return run


def _claim(
    session: Session, message_id: int, settings: MailSettings, *, now: datetime
) -> tuple[_Claimed | None, str]:
    row = session.get(OutboxMessage, message_id)
    if row is None:
        raise RecordNotFoundError("message", message_id)
    if row.state == MailState.SENDING:
        if now - row.updated_at < stale_after(settings):
            return None, row.state
        settled = session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, OutboxMessage.state == MailState.SENDING)
            .where(OutboxMessage.updated_at == row.updated_at)
            .values(state=MailState.UNCERTAIN.value, answer=UNCERTAIN_ANSWER, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        log.warning("message %s was left sending: marked uncertain, not sent again", message_id)
        return None, MailState.UNCERTAIN.value if settled.rowcount else _state(session, message_id)  # type: ignore[attr-defined]
    if row.state != MailState.QUEUED:
        return None, row.state
    email = compose(row, settings, now=now)
    taken = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.state == MailState.QUEUED)
        .values(state=MailState.SENDING.value, attempts=OutboxMessage.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None, _state(session, message_id)
    return _Claimed(row.message_id, tuple(row.recipients), email.as_bytes()), MailState.SENDING.value


def _state(session: Session, message_id: int) -> str:
    state: str = session.scalar(select(OutboxMessage.state).where(OutboxMessage.id == message_id)) or ""
    return state


def _record(
    sessions: sessionmaker[Session], message_id: int, state: MailState, answer: str, *, now: datetime
) -> None:
    """The end of a conversation, on a row still `sending` (or marked uncertain meanwhile: this
    conversation knows better)."""
    values: dict[str, object] = {"state": state.value, "answer": answer[:2000], "updated_at": now}
    if state is MailState.SENT:
        values["sent_at"] = now
    with unit_of_work(sessions) as session:
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.state.in_((MailState.SENDING, MailState.UNCERTAIN)),
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _answer(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}".strip()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return _answer(exc.smtp_code, exc.smtp_error)
    if isinstance(exc, ConnectionRefusedError):
        return "the SMTP server refused the connection (is it running?)"
    if isinstance(exc, TimeoutError):
        return "the SMTP server did not answer in time"
    return f"{type(exc).__name__}: {exc}"


def _tls_context(settings: MailSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.starttls_required and not settings.implicit_tls:
        # A relay on this machine: the connection never leaves it, so its certificate is not checked.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _converse(settings: MailSettings, claimed: _Claimed) -> tuple[str, dict[str, str]]:
    """Hand the message to the server: its final answer, and the recipients it refused (if some
    were accepted). Raises _Refused for an error answer, OSError or SMTPException otherwise."""
    context = _tls_context(settings)
    smtp: smtplib.SMTP
    if settings.implicit_tls:
        smtp = smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    try:
        smtp.ehlo()
        if not settings.implicit_tls:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            elif settings.starttls_required:
                raise smtplib.SMTPNotSupportedError(
                    f"{settings.host} does not offer STARTTLS, which an smtp:// server must: nothing was sent"
                )
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        sender = settings.from_address or f"gatekeeper@{settings.sender_domain}"
        code, text = smtp.mail(sender)
        if code != 250:
            raise _Refused(code, "sender refused: " + _answer(code, text))
        refused: dict[str, str] = {}
        codes: list[int] = []
        for recipient in claimed.recipients:
            code, text = smtp.rcpt(recipient)
            if code not in (250, 251):
                refused[recipient] = _answer(code, text)
                codes.append(code)
        if len(refused) == len(claimed.recipients):
            smtp.rset()
            # Refused for good only when every recipient was refused for good.
            worst = min(codes)
            raise _Refused(worst, "; ".join(f"{to}: {why}" for to, why in refused.items()))
        try:
            code, text = smtp.data(claimed.email)
        except smtplib.SMTPDataError as exc:
            raise _Refused(exc.smtp_code, _answer(exc.smtp_code, exc.smtp_error)) from None
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # Cut off after the message went out and before the server's answer: it may have been
            # accepted, so it is not sent again blindly.
            raise _CutShort(_describe(exc)) from None
        if code != 250:
            raise _Refused(code, _answer(code, text))
    except BaseException:
        smtp.close()
        raise
    # Accepted: whatever happens now, the message was sent.
    try:
        smtp.quit()
    except (OSError, smtplib.SMTPException):
        smtp.close()
    return _answer(code, text), refused
