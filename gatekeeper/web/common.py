"""What every blueprint shares: the runtime, one unit of work per request, the clock, the actor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import current_app, g
from sqlalchemy.orm import Session

from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime


def runtime() -> Runtime:
    """The composition root the app was built with."""
    rt: Runtime = current_app.extensions["gatekeeper"]
    return rt


# flask.g key of the unit of work an idempotent API request runs in (web/idempotency.py).
SHARED_UNIT = "gatekeeper_shared_unit"


@contextmanager
def unit() -> Iterator[Session]:
    """The request's unit of work: commits when the block succeeds, rolls back when it raises.

    Inside an idempotent API request every unit is that request's one transaction, which also
    records its answer: the answer and the change it reports commit together.
    """
    shared: Session | None = g.get(SHARED_UNIT)
    if shared is not None:
        yield shared
        return
    with unit_of_work(runtime().sessions) as session:
        yield session


def now() -> datetime:
    """The moment of the request (the only clock the web layer reads)."""
    return datetime.now(UTC)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """A count with its noun as people say it: `1 photo`, `2 photos`, `0 people` (with `nouns`)."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"
