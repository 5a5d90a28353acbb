"""The consent form in Chromium on a phone, reached from the email a real SMTP server received.

A running `gatekeeper serve` sends the consent request through aiosmtpd on 127.0.0.1; the test
reads the message back with the `email` package, follows its link on a phone-sized screen, and
checks each step with axe-core (no serious or critical violation): the form, its error summary,
and the recorded answer. A consent admin then asks from the staff pages.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import factories
import pytest
from live_server import DESKTOP, PHONE, check, chromium_browser, expect, new_staff, serving
from live_server import LiveServer as Server
from mail_helpers import SmtpServer, free_port

from consent_db.session import unit_of_work
from gatekeeper.people import contacts


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with chromium_browser(chromium) as launched:
        yield launched


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any, smtp: SmtpServer) -> Iterator[Server]:
    mail = {
        "GATEKEEPER_SMTP_URL": smtp.url,
        "GATEKEEPER_MAIL_FROM": "photos@school.example",
        "GATEKEEPER_ORG_NAME": "Hilltop School",
        "GATEKEEPER_ORG_ADDRESS": "1 Hill Road, Leeds LS1 1AA",
        "GATEKEEPER_PRIVACY_CONTACT": "dpo@school.example",
    }
    with serving(tmp_path_factory.mktemp("consent") / "instance", **mail) as live:
        yield live


def _learner(server: Server, external_id: str, *emails: str) -> None:
    """A 9-year-old with no consent yet, and their contacts."""
    today = datetime.now(UTC).date()
    with server.runtime() as rt, unit_of_work(rt.sessions) as session:
        person = factories.person(
            session, external_id, name="Amy Pond", born=date(today.year - 9, 1, 15), channels=()
        )
        for entry in emails:
            contacts.add_contact(
                session, person, contacts.parse_contact(entry), now=datetime.now(UTC), actor="test"
            )


def _message_to(smtp: SmtpServer, address: str, subject: str) -> EmailMessage:
    """The message to `address` with `subject`, once the server's worker has sent it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with smtp.mailbox.lock:
            for message in smtp.mailbox.received:
                to = [a.addr_spec for a in message["To"].addresses]
                if to == [address] and message["Subject"] == subject:
                    return message
        time.sleep(0.2)
    pytest.fail(f"no message {subject!r} to {address}")


def _link(message: EmailMessage, server: Server) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(re.escape(server.url) + r"/consent/[A-Za-z0-9_\-]+", body.get_content())
    assert match is not None
    return match.group(0)


def test_a_parent_answers_on_a_phone_from_the_email(browser: Any, server: Server, smtp: SmtpServer) -> None:
    _learner(server, "F001", "mother:mum@example.org")
    sent = json.loads(server.cli("consent", "request", "--people", "F001", "--json"))
    assert sent["sent"] == [{"external_id": "F001", "links": 1}]
    message = _message_to(smtp, "mum@example.org", "Photos at school: please give or refuse consent")

    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(_link(message, server))
    expect(page.get_by_role("heading", name="Photos of Amy")).to_be_visible()
    assert "Pond" not in page.content()
    expect(page.get_by_text("Hilltop School").first).to_be_visible()
    check(page, "60-phone-consent-form")

    # Sent empty: every missing answer at the top, each a link to its question.
    page.get_by_role("button", name="Send my answer").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary.get_by_role("link")).to_have_count(7)  # five channels, face recognition, name
    check(page, "61-phone-consent-errors")
    summary.get_by_role("link", name="Enter your full name.").click()
    expect(page.get_by_label("Your full name")).to_be_focused()

    questions = page.locator("fieldset.question")
    expect(questions).to_have_count(6)  # five channels and face recognition
    questions.nth(0).get_by_label("Yes").check()
    questions.nth(0).get_by_label("First name only").check()
    for index in range(1, 5):
        questions.nth(index).get_by_label("No", exact=True).check()
    questions.nth(5).get_by_label("Yes").check()
    page.get_by_label("Your full name").fill("Jo Smith")
    page.get_by_role("button", name="Send my answer").click()
    expect(page.get_by_role("heading", name="Your answer is recorded")).to_be_visible()
    # The form shows what is recorded now.
    expect(questions.nth(0).get_by_label("Yes")).to_be_checked()
    expect(questions.nth(1).get_by_label("No", exact=True)).to_be_checked()
    check(page, "62-phone-consent-recorded")
    context.close()

    shown = json.loads(server.cli("people", "show", "F001", "--json"))
    state = {c["channel"]: c["reasons"] for c in shown["channels"]}
    assert state["website"] == [] and state["social_media"] == ["consent_withdrawn"]
    receipt = _message_to(smtp, "mum@example.org", "Photos at school: we have recorded your answer")
    assert not list(receipt.iter_attachments())

    # The withdrawal link every message carries opens the withdrawal page on the phone, and works.
    body = receipt.get_body(preferencelist=("plain",))
    assert body is not None
    withdraw = re.search(re.escape(server.url) + r"/withdraw/[A-Za-z0-9_\-]+", body.get_content())
    assert withdraw is not None
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(withdraw.group(0))
    expect(page.get_by_role("heading", name="Photos of Amy")).to_be_visible()
    check(page, "66-phone-withdraw-from-email")
    page.get_by_label("Withdraw from everything").check()
    page.get_by_role("button", name="Withdraw consent").click()
    expect(page.get_by_role("heading", name="Thank you: your request is recorded")).to_be_visible()
    context.close()
    shown = json.loads(server.cli("people", "show", "F001", "--json"))
    assert {c["channel"]: c["reasons"] for c in shown["channels"]}["website"] == ["consent_withdrawn"]
    told = _message_to(smtp, "mum@example.org", "Photos: consent withdrawn").get_body(
        preferencelist=("plain",)
    )
    assert told is not None and "The school website" in told.get_content()


def test_no_to_everything_is_one_tap(browser: Any, server: Server, smtp: SmtpServer) -> None:
    _learner(server, "F002", "dad@example.org")
    server.cli("consent", "request", "--people", "F002")
    message = _message_to(smtp, "dad@example.org", "Photos at school: please give or refuse consent")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(_link(message, server))
    page.get_by_label("Your full name").fill("Sam Smith")
    page.get_by_role("button", name="No to everything").click()
    expect(page.get_by_role("heading", name="Your answer is recorded")).to_be_visible()
    context.close()
    shown = json.loads(server.cli("people", "show", "F002", "--json"))
    assert all(c["reasons"] == ["consent_withdrawn"] for c in shown["channels"])
    assert shown["biometric_consent"] is False


def test_a_consent_admin_adds_a_contact_and_sends_forms(
    browser: Any, server: Server, smtp: SmtpServer, tmp_path: Path
) -> None:
    _learner(server, "F003")
    for name, options in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(**options)
        page = context.new_page()
        new_staff(server, page, f"forms-{name}", "consent_admin")
        page.goto(server.url + "/people/F003")
        page.get_by_label("Email address").fill(f"{name}@example.org")
        page.get_by_role("button", name="Add contact").click()
        expect(page.get_by_text("Contact added.")).to_be_visible()
        check(page, f"63-{name}-person-contacts")
        page.get_by_role("button", name="Email a consent form").click()
        expect(page.get_by_text("1 consent form sent by email.")).to_be_visible()
        _message_to(smtp, f"{name}@example.org", "Photos at school: please give or refuse consent")
        page.goto(server.url + "/consent/ask")
        check(page, f"64-{name}-consent-ask")
        page.get_by_label("Everyone with no answer recorded for these channels").check()
        page.get_by_role("button", name="Send consent forms").click()
        expect(
            page.get_by_role("heading", name=re.compile(r"\d+ asked, \d+ could not be asked"))
        ).to_be_visible()
        check(page, f"65-{name}-consent-asked")
        page.goto(server.url + "/people/F003")
        page.get_by_role("button", name=re.compile("^Remove")).first.click()
        expect(page.get_by_text("Contact removed")).to_be_visible()
        context.close()
