"""For the email tests: a real SMTP server (aiosmtpd) on 127.0.0.1 and a runtime that sends through it."""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    """What the server received, and how it answers: refusing recipients or the message on demand,
    and calling `on_data` once it holds a message (before it answers)."""

    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse_rcpt: str | None = None
    refuse_data: str | None = None
    on_data: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        message = email.message_from_bytes(envelope.original_content, policy=default)
        with self.lock:
            self.received.append(message)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        if self.on_data is not None:
            self.on_data()
        return "250 2.0.0 Ok: queued as TESTQ1"

    def with_id(self, message_id: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.received if m["Message-ID"] == message_id]


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port`, started and stopped by the test (a server that is down is one
    not started)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


MAIL = {"from_address": "photos@school.example", "org_name": "Hilltop School", "timeout": 5.0}
# Quick retries: one retry a tenth of a second later, then the periodic run takes over.
QUEUE = {"job_retries": 1, "job_retry_delay": 0.1}


def mail_runtime(settings: Any, server: SmtpServer | None) -> Any:
    """The composed application, sending through `server` (None: no SMTP server configured)."""
    from gatekeeper.runtime import Runtime
    from workers import JobQueue

    mail = {**MAIL, "smtp_url": server.url} if server is not None else MAIL
    return Runtime(settings.with_(mail=mail, queue=QUEUE), sender=JobQueue)
