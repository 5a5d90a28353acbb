"""What every blueprint shares: the runtime, one unit of work per request, the clock, the actor."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import abort, current_app, g, request
from sqlalchemy.orm import Session
from werkzeug.routing import IntegerConverter

from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime

# The largest id any table can hold on every supported database (PostgreSQL's INTEGER).
DB_INT_MAX = 2**31 - 1


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


def _at_most(limit: int) -> str:
    """A regular expression for the whole numbers 0..`limit`, written in decimal."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        rest = len(digits) - i - 1
        if digit != "0":
            options.append(f"{digits[:i]}[0-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    options.append(digits)
    return "(?:" + "|".join(options) + ")"


class DatabaseIntConverter(IntegerConverter):
    """`<int:...>` in routes: a number the database can hold, else no route matches (404, never 500).

    The bound is in the pattern itself, not only in the conversion: a path that matched and then
    failed to convert would answer 405 where another method shares the path.
    """

    regex = _at_most(DB_INT_MAX)

    def __init__(self, map: object, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max", DB_INT_MAX)
        super().__init__(map, *args, **kwargs)  # type: ignore[arg-type]


def page_number(name: str = "page") -> int:
    """The page asked for in the query string (1 when absent or not a number); aborts 404 past the range."""
    page = request.args.get(name, 1, type=int) or 1
    if page > DB_INT_MAX:
        abort(404)
    return max(1, page)


# Rows per page of the staff lists (people, the audit log).
PAGE = 50


def form_errors(form: object) -> str:
    """A form's field errors in one line, for a flash message."""
    errors = getattr(form, "errors", {})
    return (
        "; ".join(f"{name}: {', '.join(map(str, msgs))}" for name, msgs in errors.items()) or "invalid form"
    )
