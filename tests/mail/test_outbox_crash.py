"""A worker killed (SIGKILL) after the SMTP server took the message and before it recorded so: the
message is found `sending`, marked uncertain and shown to admins, never sent a second time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mail_helpers import MAIL, QUEUE, SmtpServer

from consent_db.models import OutboxMessage
from consent_db.session import unit_of_work
from gatekeeper.mail import delivery, outbox
from gatekeeper.runtime import Runtime
from helpers import run
from workers import JobQueue


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_worker_killed_after_the_server_accepted_leaves_one_copy_and_an_uncertain_row(
    mailer: Any, smtp_server: SmtpServer, now: datetime
) -> None:
    with unit_of_work(mailer.sessions) as session:
        message = outbox.queue_message(
            session,
            to=["parent@example.org"],
            subject="Your withdrawal has been received",
            text="We have received your withdrawal for Amy.\n",
            html="<p>We have received your withdrawal for Amy.</p>",
            kind="withdrawal_receipt",
            about="withdrawal_request:3",
            settings=mailer.settings.mail,
            now=now,
            actor="test",
        )
        row_id, message_id = message.id, message.message_id
    settings = mailer.settings
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_SMTP_URL": smtp_server.url,
        "GATEKEEPER_MAIL_FROM": MAIL["from_address"],
        "GATEKEEPER_JOB_LEASE": "1",
    }
    worker: dict[str, subprocess.Popen[bytes]] = {}
    # The server holds the message; the worker dies before it hears the answer or records it.
    smtp_server.mailbox.on_data = lambda: os.kill(worker["process"].pid, signal.SIGKILL)
    command = [str(Path(sys.executable).parent / "gatekeeper"), "worker", "--drain"]
    worker["process"] = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    assert worker["process"].wait(timeout=120) == -signal.SIGKILL
    smtp_server.mailbox.on_data = None
    assert len(smtp_server.mailbox.with_id(message_id)) == 1
    with unit_of_work(mailer.sessions) as session:
        row = session.get(OutboxMessage, row_id)
        assert row is not None and (row.state, row.attempts) == ("sending", 1)
        since = row.updated_at

    # Another worker, once the dead one's lease has lapsed and the sending is older than any
    # conversation (a short SMTP timeout here), takes the job the dead worker took with it.
    recovering = Runtime(
        settings.with_(
            mail={**MAIL, "smtp_url": smtp_server.url, "timeout": 0.5}, queue={**QUEUE, "job_lease": 1}
        ),
        sender=JobQueue,
    )
    try:
        wait = (
            since + delivery.stale_after(recovering.settings.mail) - datetime.now(since.tzinfo)
        ).total_seconds()
        time.sleep(max(wait, 1.0) + 0.5)
        assert JobQueue.of(recovering).drain() == 1
        with unit_of_work(recovering.sessions) as session:
            row = session.get(OutboxMessage, row_id)
            assert row is not None and (row.state, row.attempts) == ("uncertain", 1)
        listed = run(recovering, "outbox", "list", "--failed")
        assert f"{row_id} uncertain" in listed.stdout and "may have been sent" in listed.stdout
        JobQueue.of(recovering).periodic["send_mail"].call_local()
        assert len(smtp_server.mailbox.with_id(message_id)) == 1

        # The admin finds it in the mailbox by its Message-ID and marks it sent.
        assert run(recovering, "outbox", "mark-sent", str(row_id)).exit_code == 0
        assert JobQueue.of(recovering).drain() == 0
    finally:
        if "db" in recovering.__dict__:
            recovering.db.dispose()
    assert len(smtp_server.mailbox.received) == 1
