"""The messages of a withdrawal without a link, through a real SMTP server and read back with the
`email` package: the receipt to the email typed (the same words whoever it names, and nothing sent
when the request rolls back), and the decision after staff confirm or reject it (nothing once the
email has been erased)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import factories
import pytest
from engines import compose_app, engine_for
from flask import Flask
from mail_helpers import MAIL, QUEUE, SmtpServer
from web_helpers import csrf

from consent_db.models import OutboxMessage, WithdrawalRequest
from consent_db.session import unit_of_work
from gatekeeper.consent import withdrawals
from gatekeeper.runtime import Runtime
from workers import JobQueue

ORG = {
    **MAIL,
    "org_address": "Hilltop School, 1 Hill Road, Leeds LS1 1AA",
    "privacy_contact": "dpo@school.example",
}
REFERENCE = re.compile(r"WD-[A-Z0-9]{10}")


@pytest.fixture
def school(settings: Any, smtp_server: SmtpServer) -> Iterator[Any]:
    """A runtime sending through `smtp_server`, with the organisation's details configured."""
    rt = Runtime(settings.with_(mail={**ORG, "smtp_url": smtp_server.url}, queue=QUEUE), sender=JobQueue)
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


def _amy(rt: Any) -> None:
    with unit_of_work(rt.sessions) as session:
        factories.person(
            session,
            "L001",
            name="Amy Pond",
            born=date(2014, 3, 27),
            channels=("website", "social_media"),
            granted_by="parent",
        )


def _request(rt: Any, name: str, email: str, now: datetime, born: date = date(2014, 3, 27)) -> str:
    with unit_of_work(rt.sessions) as session:
        return withdrawals.request_withdrawal(
            session,
            name=name,
            date_of_birth=born,
            relationship="parent",
            contact_email=email,
            settings=rt.settings,
            now=now,
        ).reference


def _bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return text.get_content().replace("\r\n", "\n"), html.get_content()


def _to(message: EmailMessage) -> list[str]:
    return [a.addr_spec for a in message["To"].addresses]


def _no_name(message: EmailMessage, *names: str) -> None:
    subject = str(message["Subject"])
    text, html = _bodies(message)
    for name in names:
        for part in name.split():
            assert part.casefold() not in subject.casefold()
        # At most a first name in the body: never the family name nor the name as typed.
        assert name.split()[-1].casefold() not in (text + html).casefold()
    assert not list(message.iter_attachments())


def test_the_receipt_reaches_the_email_typed_and_reads_the_same_whether_or_not_the_learner_is_on_record(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    _amy(school)
    on_record = _request(school, "Amy Pond", "parent@example.org", now)
    unknown = _request(school, "Rory Williams", "other@example.org", now)
    assert smtp_server.mailbox.received == []  # sent by jobs after the commit, never by the request
    JobQueue.of(school).drain()

    received = {_to(m)[0]: m for m in smtp_server.mailbox.received}
    assert sorted(received) == ["other@example.org", "parent@example.org"]
    first, second = received["parent@example.org"], received["other@example.org"]
    assert first["Subject"] == "We have received your request to stop using photos"
    assert first["From"] == "Hilltop School <photos@school.example>"
    _no_name(first, "Amy Pond")
    _no_name(second, "Rory Williams")

    text, html = _bodies(first)
    assert on_record in text and on_record in html
    assert "What happens next" in text and "What happens next" in html
    # The organisation's name, address and privacy contact, in both bodies.
    for part in (text, html):
        assert "Hilltop School" in part and "1 Hill Road" in part and "Leeds LS1 1AA" in part
        assert "dpo@school.example" in part
    assert '<a href="mailto:dpo@school.example">' in html

    # The same message, word for word, for a learner on record and one who is not.
    assert first["Subject"] == second["Subject"]
    assert [b.replace(on_record, "WD-X") for b in _bodies(first)] == [
        b.replace(unknown, "WD-X") for b in _bodies(second)
    ]
    with unit_of_work(school.sessions) as session:
        kinds = {row.about: row.kind for row in session.query(OutboxMessage)}
        ids = dict(session.query(WithdrawalRequest.reference, WithdrawalRequest.id))
    assert kinds == {
        f"withdrawal_request:{ids[on_record]}": "withdrawal_receipt",
        f"withdrawal_request:{ids[unknown]}": "withdrawal_receipt",
    }


def test_a_request_that_rolls_back_sends_no_receipt(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    with pytest.raises(RuntimeError), unit_of_work(school.sessions) as session:
        withdrawals.request_withdrawal(
            session,
            name="Amy Pond",
            date_of_birth=date(2014, 3, 27),
            relationship="parent",
            contact_email="parent@example.org",
            settings=school.settings,
            now=now,
        )
        raise RuntimeError("the request could not be recorded")
    assert JobQueue.of(school).drain() == 0
    assert smtp_server.mailbox.received == []
    with unit_of_work(school.sessions) as session:
        assert session.query(OutboxMessage).count() == 0
        assert session.query(WithdrawalRequest).count() == 0


@pytest.mark.parametrize(
    ("decision", "words"),
    [("confirm", "Decision: confirmed."), ("reject", "Decision: not confirmed.")],
)
def test_the_requester_is_told_what_staff_decided(
    school: Any, smtp_server: SmtpServer, now: datetime, decision: str, words: str
) -> None:
    _amy(school)
    reference = _request(school, "Amy Pond", "parent@example.org", now)
    JobQueue.of(school).drain()  # matched (suspended), and the receipt sent
    act = withdrawals.confirm_request if decision == "confirm" else withdrawals.reject_request
    with unit_of_work(school.sessions) as session:
        act(
            session,
            reference,
            settings=school.settings,
            now=now + timedelta(hours=2),
            actor="dpo",
            note="Checked with Mrs Pond by phone",
        )
    JobQueue.of(school).drain()

    receipt, told = smtp_server.mailbox.received
    assert _to(told) == ["parent@example.org"]
    assert told["Subject"] == "Your request to stop using photos: our decision"
    assert told["Message-ID"] != receipt["Message-ID"]
    _no_name(told, "Amy Pond")
    text, html = _bodies(told)
    assert reference in text and reference in html
    assert words in text and words in html
    assert ("not confirmed" in text) is (decision == "reject")
    assert "Checked with" not in text + html  # the staff's note stays with the staff
    assert "Hilltop School" in text and "dpo@school.example" in html


def test_no_decision_message_once_the_email_has_been_erased(
    school: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    reference = _request(school, "Rory Williams", "parent@example.org", now)
    JobQueue.of(school).drain()
    with unit_of_work(school.sessions) as session:
        request = withdrawals.find_request(session, reference)
        withdrawals.erase_details(session, request, now=now, actor="dpo", why="asked to be forgotten")
    with unit_of_work(school.sessions) as session:
        withdrawals.reject_request(session, reference, settings=school.settings, now=now, actor="dpo")
    JobQueue.of(school).drain()
    [receipt] = smtp_server.mailbox.received
    assert receipt["Subject"] == "We have received your request to stop using photos"
    with unit_of_work(school.sessions) as session:
        assert [row.kind for row in session.query(OutboxMessage)] == ["withdrawal_receipt"]


def test_erasing_a_request_s_details_erases_the_address_in_its_messages(
    school: Any, smtp_server: SmtpServer, settings: Any, now: datetime
) -> None:
    sent = _request(school, "Rory Williams", "parent@example.org", now)
    JobQueue.of(school).drain()
    # A second request, its receipt still waiting: no SMTP server configured for this runtime.
    waiting_rt = Runtime(settings.with_(queue=QUEUE), sender=JobQueue)
    waiting = _request(waiting_rt, "Clara Oswald", "other@example.org", now)
    waiting_rt.db.dispose()
    for reference in (sent, waiting):
        with unit_of_work(school.sessions) as session:
            request = withdrawals.find_request(session, reference)
            assert withdrawals.erase_details(session, request, now=now, actor="dpo", why="retention")
    with unit_of_work(school.sessions) as session:
        rows = {row.about: row for row in session.query(OutboxMessage)}
        assert all(row.recipients == [] for row in rows.values())
        states = sorted(row.state for row in rows.values())
        assert states == ["failed", "sent"]
    JobQueue.of(school).drain()
    # The waiting receipt is never sent: only the first one ever reached the server.
    assert [_to(m) for m in smtp_server.mailbox.received] == [["parent@example.org"]]


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any, smtp_server: SmtpServer) -> Iterator[Flask]:
    app = compose_app(
        settings.with_(mail={**ORG, "smtp_url": smtp_server.url}, queue=QUEUE), engine_for(request, settings)
    )
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def _form(email: str) -> dict[str, str]:
    return {
        "name": "Amy Pond",
        "dob_day": "27",
        "dob_month": "3",
        "dob_year": "2014",
        "relationship": "parent",
        "contact_email": email,
    }


def test_the_public_form_names_the_organisation_and_its_receipt_is_mailed(
    app: Flask, smtp_server: SmtpServer
) -> None:
    client = app.test_client()
    page = client.get("/withdraw").get_data(as_text=True)
    assert "<title>Withdraw consent to photos – Hilltop School</title>" in page
    assert '<a class="brand" href="/withdraw">Hilltop School</a>' in page
    assert "<address>Hilltop School<br>1 Hill Road<br>Leeds LS1 1AA</address>" in page
    assert '<a href="mailto:dpo@school.example">dpo@school.example</a>' in page

    token = csrf(client, "/withdraw")
    sent = client.post("/withdraw", data={**_form("parent@example.org"), "csrf_token": token})
    assert sent.status_code == 302
    receipt_page = client.get(sent.headers["Location"]).get_data(as_text=True)
    reference = REFERENCE.search(receipt_page).group(0)  # type: ignore[union-attr]
    assert "Hilltop School" in receipt_page
    JobQueue.of(app.extensions["gatekeeper"]).drain()
    [mailed] = smtp_server.mailbox.received
    assert _to(mailed) == ["parent@example.org"] and reference in _bodies(mailed)[0]


def test_an_address_no_receipt_can_be_sent_to_is_asked_again_and_nothing_is_recorded(
    app: Flask, smtp_server: SmtpServer
) -> None:
    client = app.test_client()
    token = csrf(client, "/withdraw")
    answer = client.post("/withdraw", data={**_form("amélie@exämple.org"), "csrf_token": token})
    assert answer.status_code == 400
    assert "without accents or spaces" in answer.get_data(as_text=True)
    with unit_of_work(app.extensions["gatekeeper"].sessions) as session:
        assert session.query(WithdrawalRequest).count() == 0
        assert session.query(OutboxMessage).count() == 0
