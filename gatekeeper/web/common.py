"""What every blueprint shares: the runtime, one unit of work per request, the clock, the actor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import current_app
from sqlalchemy.orm import Session

from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime


def runtime() -> Runtime:
    """The composition root the app was built with."""
    rt: Runtime = current_app.extensions["gatekeeper"]
    return rt


@contextmanager
def unit() -> Iterator[Session]:
    """The request's unit of work: commits when the block succeeds, rolls back when it raises."""
    with unit_of_work(runtime().sessions) as session:
        yield session


def now() -> datetime:
    """The moment of the request (the only clock the web layer reads)."""
    return datetime.now(UTC)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """A count with its noun as people say it: `1 photo`, `2 photos`, `0 people` (with `nouns`)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"
