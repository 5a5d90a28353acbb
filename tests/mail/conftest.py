"""Fixtures of the email tests: a real SMTP server on a free port of 127.0.0.1, running or down."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mail_helpers import SmtpServer, free_port, mail_runtime


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A running SMTP server on a free port."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpServer]:
    """An SMTP server on a free port that is not started yet (the test starts it)."""
    server = SmtpServer(free_port())
    yield server
    server.stop()


@pytest.fixture
def mailer(settings: Any, smtp_server: SmtpServer) -> Iterator[Any]:
    """A runtime that sends through `smtp_server`."""
    rt = mail_runtime(settings, smtp_server)
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


@pytest.fixture
def mailer_down(settings: Any, smtp_down: SmtpServer) -> Iterator[Any]:
    """A runtime that sends through `smtp_down`, a server not started yet."""
    rt = mail_runtime(settings, smtp_down)
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


@pytest.fixture
def unsent(settings: Any) -> Iterator[Any]:
    """A runtime without an SMTP server."""
    rt = mail_runtime(settings, None)
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()
