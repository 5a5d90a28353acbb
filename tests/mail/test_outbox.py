"""The outbox against a real SMTP server on 127.0.0.1: sent after commit and read back with the
`email` package, nothing sent on rollback, a server that is down (sent once it is back), a
permanent refusal (failed, shown to admins), a sending cut short (uncertain, never sent twice)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from mail_helpers import MAIL, SmtpServer
from sqlalchemy import func, select

from consent_db import audit
from consent_db.models import AuditEvent, Job, OutboxMessage
from consent_db.session import unit_of_work
from gatekeeper.errors import InvalidInputError, MailDeliveryError
from gatekeeper.mail import delivery, outbox
from helpers import run
from workers import JobQueue

TEXT = "Dear parent,\n\nWe have received your withdrawal for Amy. Nothing more needs doing.\n"
HTML = "<p>Dear parent,</p><p>We have received your withdrawal for Amy. Nothing more needs doing.</p>"


def _queue(rt: Any, now: datetime, *, to: tuple[str, ...] = ("parent@example.org",)) -> tuple[int, str]:
    with unit_of_work(rt.sessions) as session:
        message = outbox.queue_message(
            session,
            to=to,
            subject="Your withdrawal has been received",
            text=TEXT,
            html=HTML,
            kind="withdrawal_receipt",
            about="withdrawal_request:7",
            settings=rt.settings.mail,
            now=now,
            actor="test",
        )
        return message.id, message.message_id


def _row(rt: Any, message_id: int) -> OutboxMessage:
    with unit_of_work(rt.sessions) as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row


def test_a_queued_message_is_sent_after_commit_and_reads_back_as_written(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    with unit_of_work(mailer.sessions) as session:
        message = outbox.queue_message(
            session,
            to=["parent@example.org", "carer@example.org"],
            subject="Your withdrawal has been received",
            text=TEXT,
            html=HTML,
            kind="withdrawal_receipt",
            about="withdrawal_request:7",
            settings=mailer.settings.mail,
            now=now,
            actor="test",
        )
        row_id, message_id = message.id, message.message_id
        assert message_id.endswith("@school.example>")
    assert smtp_server.mailbox.received == []  # sent by a job, never by the request
    assert JobQueue.of(mailer).drain() == 1

    [received] = smtp_server.mailbox.received
    assert received["Message-ID"] == message_id
    assert received["Subject"] == "Your withdrawal has been received"
    assert received["From"] == "Hilltop School <photos@school.example>"
    assert [a.addr_spec for a in received["To"].addresses] == ["parent@example.org", "carer@example.org"]
    assert smtp_server.mailbox.envelopes == [
        ("photos@school.example", ["parent@example.org", "carer@example.org"])
    ]
    assert received["Date"] is not None
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(preferencelist=("plain",))
    html = received.get_body(preferencelist=("html",))
    # On the wire, lines end with CRLF.
    assert text is not None and text.get_content().replace("\r\n", "\n") == TEXT
    assert html is not None and html.get_content().strip() == HTML
    assert not list(received.iter_attachments())

    row = _row(mailer, row_id)
    assert (row.state, row.attempts, row.answer) == ("sent", 1, "250 2.0.0 Ok: queued as TESTQ1")
    assert row.sent_at is not None
    # A sent message is never sent again, whatever asks.
    assert delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=now) == "sent"
    assert len(smtp_server.mailbox.received) == 1


def test_a_change_that_rolls_back_leaves_no_message_and_sends_nothing(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    with pytest.raises(RuntimeError), unit_of_work(mailer.sessions) as session:
        outbox.queue_message(
            session,
            to=["parent@example.org"],
            subject="Your withdrawal has been received",
            text=TEXT,
            kind="withdrawal_receipt",
            settings=mailer.settings.mail,
            now=now,
            actor="test",
        )
        raise RuntimeError("the change that caused it failed")
    with unit_of_work(mailer.sessions) as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert JobQueue.of(mailer).drain() == 0
    assert smtp_server.mailbox.received == []


def test_without_an_smtp_server_messages_stay_queued_and_are_listed(unsent: Any, now: datetime) -> None:
    rt = unsent
    row_id, _ = _queue(rt, now)
    assert JobQueue.of(rt).drain() == 1
    row = _row(rt, row_id)
    assert (row.state, row.attempts, row.answer) == ("queued", 0, None)
    listed = run(rt, "outbox", "list")
    assert f"{row_id} queued" in listed.stdout
    assert "no SMTP server is configured" in listed.stderr


def test_a_server_that_is_down_leaves_the_message_queued_and_it_is_sent_once_back(
    mailer_down: Any, smtp_down: SmtpServer, now: datetime
) -> None:
    rt = mailer_down
    row_id, message_id = _queue(rt, now)
    queue = JobQueue.of(rt)
    assert queue.drain() == 2  # the job, and its one retry
    row = _row(rt, row_id)
    assert (row.state, row.attempts) == ("queued", 2)
    assert row.answer == "the SMTP server refused the connection (is it running?)"
    with unit_of_work(rt.sessions) as session:
        assert session.scalars(select(Job.state).where(Job.task == "send_mail")).all() == ["failed"]

    smtp_down.start()
    # The periodic run (GATEKEEPER_MAIL_RETRY_SCHEDULE) sends what is still waiting.
    queue.periodic["send_mail"].call_local()
    assert len(smtp_down.mailbox.with_id(message_id)) == 1
    row = _row(rt, row_id)
    assert (row.state, row.attempts) == ("sent", 3)
    queue.periodic["send_mail"].call_local()
    assert len(smtp_down.mailbox.received) == 1


def test_a_temporary_refusal_keeps_the_message_queued(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    smtp_server.mailbox.refuse_rcpt = "451 4.7.1 Greylisted, try again later"
    row_id, _ = _queue(mailer, now)
    with pytest.raises(MailDeliveryError, match=r"451 4\.7\.1"):
        delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=now)
    row = _row(mailer, row_id)
    assert (row.state, row.attempts) == ("queued", 1)
    assert row.answer == "parent@example.org: 451 4.7.1 Greylisted, try again later"
    smtp_server.mailbox.refuse_rcpt = None
    assert delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=now) == "sent"


def test_a_permanent_refusal_fails_the_message_with_the_answer_and_admins_see_it(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    sent_id, _ = _queue(mailer, now, to=("carer@example.org",))
    assert JobQueue.of(mailer).drain() == 1
    smtp_server.mailbox.refuse_rcpt = "550 5.1.1 No such mailbox"
    row_id, message_id = _queue(mailer, now)
    assert JobQueue.of(mailer).drain() == 1
    row = _row(mailer, row_id)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.answer == "parent@example.org: 550 5.1.1 No such mailbox"
    with unit_of_work(mailer.sessions) as session:
        # Refused for good is how the job ends, not a failure of the job: it is not retried.
        assert session.get(Job, session.scalar(select(func.max(Job.id)))).state == "done"  # type: ignore[union-attr]

    failed = run(mailer, "outbox", "list", "--failed")
    assert f"{row_id} failed" in failed.stdout and "550 5.1.1 No such mailbox" in failed.stdout
    assert f"{sent_id} sent" not in failed.stdout
    lines = [json.loads(line) for line in run(mailer, "outbox", "list", "--json").stdout.splitlines()]
    assert [(line["id"], line["state"]) for line in lines] == [(row_id, "failed"), (sent_id, "sent")]
    assert lines[0]["message_id"] == message_id and lines[0]["to"] == ["parent@example.org"]

    # Corrected at the server's end, the admin sends it again: audited, and sent once.
    smtp_server.mailbox.refuse_rcpt = None
    assert run(mailer, "outbox", "resend", str(row_id)).exit_code == 0
    assert JobQueue.of(mailer).drain() == 1
    assert _row(mailer, row_id).state == "sent"
    assert len(smtp_server.mailbox.with_id(message_id)) == 1
    refused = run(mailer, "outbox", "resend", str(row_id))
    assert refused.exit_code != 0 and "only a failed or uncertain message" in refused.output
    with unit_of_work(mailer.sessions) as session:
        assert session.scalars(select(AuditEvent.action)).all()[-1] == audit.AuditAction.OUTBOX_RESENT


def test_a_refused_message_body_fails_it(mailer: Any, smtp_server: SmtpServer, now: datetime) -> None:
    smtp_server.mailbox.refuse_data = "554 5.7.1 Message rejected as spam"
    row_id, _ = _queue(mailer, now)
    assert delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=now) == "failed"
    assert _row(mailer, row_id).answer == "554 5.7.1 Message rejected as spam"


def test_a_message_found_sending_is_never_sent_again_but_marked_uncertain(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    row_id, message_id = _queue(mailer, now)
    # As a worker leaves it when it dies between the server's acceptance and the record.
    with unit_of_work(mailer.sessions) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        row.state, row.attempts, row.updated_at = "sending", 1, now
    mail = mailer.settings.mail
    # Recently: another worker may be sending it now, and it is left to that worker.
    assert delivery.deliver(mailer.sessions, row_id, mail, now=now + timedelta(seconds=1)) == "sending"
    # Long enough for any conversation to have ended: uncertain, and shown to admins.
    later = now + delivery.stale_after(mail)
    assert delivery.deliver(mailer.sessions, row_id, mail, now=later) == "uncertain"
    assert delivery.deliver(mailer.sessions, row_id, mail, now=later) == "uncertain"
    assert smtp_server.mailbox.received == []
    row = _row(mailer, row_id)
    assert (row.state, row.attempts, row.answer) == ("uncertain", 1, delivery.UNCERTAIN_ANSWER)
    listed = run(mailer, "outbox", "list", "--failed")
    assert f"{row_id} uncertain" in listed.stdout and "may have been sent" in listed.stdout

    # Found in the mailbox: marked sent (audited); a sent message is neither resent nor marked again.
    assert run(mailer, "outbox", "mark-sent", str(row_id)).exit_code == 0
    row = _row(mailer, row_id)
    assert row.state == "sent" and row.answer is not None and row.answer.startswith("marked sent by cli:")
    again = run(mailer, "outbox", "mark-sent", str(row_id))
    assert again.exit_code != 0 and "only an uncertain message" in again.output
    assert run(mailer, "outbox", "resend", str(row_id)).exit_code != 0
    assert smtp_server.mailbox.with_id(message_id) == []


def test_an_uncertain_message_sent_again_goes_out_with_the_same_message_id(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    row_id, message_id = _queue(mailer, now)
    with unit_of_work(mailer.sessions) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None
        row.state, row.updated_at = "uncertain", now
    assert run(mailer, "outbox", "resend", str(row_id)).exit_code == 0
    # The message's first job (never run) and the one resend asked for: it is sent by one of them.
    assert JobQueue.of(mailer).drain() == 2
    assert len(smtp_server.mailbox.with_id(message_id)) == 1
    assert _row(mailer, row_id).state == "sent"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"to": []}, "at least one recipient"),
        ({"to": ["Amy Pond <amy@example.org>"]}, "not one plain email address"),
        ({"to": ["parent@example.org, other@example.org"]}, "not one plain email address"),
        ({"subject": "Amy\nBcc: x@example.org"}, "one line"),
        ({"about": "Amy Pond"}, "kind:id"),
    ],
)
def test_a_message_that_cannot_be_sent_as_given_is_refused_when_written(
    settings: Any, now: datetime, changes: dict[str, Any], message: str
) -> None:
    from gatekeeper.config import MailSettings

    values: dict[str, Any] = {
        "to": ["parent@example.org"],
        "subject": "Your withdrawal has been received",
        "text": TEXT,
        "kind": "withdrawal_receipt",
        "about": "person:12",
        **changes,
    }
    with pytest.raises(InvalidInputError, match=message):
        outbox.queue_message(
            None,  # type: ignore[arg-type]
            settings=MailSettings(**MAIL),
            now=now,
            actor="test",
            **values,
        )


def test_a_server_answer_lost_after_the_message_went_out_leaves_it_uncertain_and_never_sent_again(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    # The server holds the message, then answers later than the client waits (MAIL's 5 s timeout).
    smtp_server.mailbox.on_data = lambda: time.sleep(MAIL["timeout"] + 1)
    row_id, message_id = _queue(mailer, now)
    state = delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=now)
    assert state == "uncertain"
    row = _row(mailer, row_id)
    assert row.state == "uncertain" and "may have been sent" in (row.answer or "")
    smtp_server.mailbox.on_data = None
    later = now + timedelta(hours=1)
    assert delivery.deliver(mailer.sessions, row_id, mailer.settings.mail, now=later) == "uncertain"
    delivery.deliver_due(mailer.sessions, mailer.settings.mail, now=later)
    assert len(smtp_server.mailbox.with_id(message_id)) == 1
