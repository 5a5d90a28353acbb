"""The Outbox page: consent admins and admins see every message, failed ones first with the mail
server's answer; others are refused (tests/web/test_web_roles.py checks every role)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from engines import compose_app, engine_for
from flask import Flask
from mail_helpers import MAIL, QUEUE, SmtpServer
from web_helpers import make_account, sign_in

from consent_db.session import unit_of_work
from gatekeeper.mail import outbox
from workers import JobQueue


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any, smtp_server: SmtpServer) -> Iterator[Flask]:
    mail = {**MAIL, "smtp_url": smtp_server.url}
    app = compose_app(settings.with_(mail=mail, queue=QUEUE), engine_for(request, settings))
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def _queue(rt: Any, now: datetime, to: str, subject: str) -> int:
    with unit_of_work(rt.sessions) as session:
        return outbox.queue_message(
            session,
            to=[to],
            subject=subject,
            text="Hello.\n",
            kind="test",
            settings=rt.settings.mail,
            now=now,
            actor="test",
        ).id


def test_admins_see_failed_messages_first_with_the_servers_answer(
    app: Flask, smtp_server: SmtpServer, now: datetime
) -> None:
    rt = app.extensions["gatekeeper"]
    _queue(rt, now, "parent@example.org", "Delivered message")
    JobQueue.of(rt).drain()
    smtp_server.mailbox.refuse_rcpt = "550 5.1.1 No such mailbox"
    failed_id = _queue(rt, now, "nobody@example.org", "Refused message")
    JobQueue.of(rt).drain()

    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    page = client.get("/outbox").get_data(as_text=True)
    assert page.index("Refused message") < page.index("Delivered message")
    assert f'id="message-{failed_id}"' in page
    assert "550 5.1.1 No such mailbox" in page and "nobody@example.org" in page
    assert "No mail server is configured" not in page
    only_failed = client.get("/outbox?failed=1").get_data(as_text=True)
    assert "Refused message" in only_failed and "Delivered message" not in only_failed

    other = app.test_client()
    sign_in(other, make_account(rt, "reviewer"))
    assert other.get("/outbox").status_code == 403
