"""What every command module shares: the clock, the actor, errors as failures, the runtime, a unit of
work that fails the command on a gatekeeper error, JSON out.

A module of its own so that `gatekeeper.cli` (the root group) and every command module import it
without importing one another in a circle: command modules import this module, `cli.files` and
services, never one another nor `gatekeeper.cli`, which registers them.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import click

from gatekeeper.config import Settings
from gatekeeper.errors import GatekeeperError, MediaError
from gatekeeper.media.refusals import explain
from gatekeeper.runtime import Runtime

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from workers import JobQueue


def _now() -> datetime:
    return datetime.now(UTC)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _fail(exc: GatekeeperError) -> NoReturn:
    """The one place where gatekeeper errors become command-line failures."""
    if isinstance(exc, MediaError):
        # A decoder's own message is no help to staff: the refusal's plain words are.
        raise click.ClickException(f"{explain(exc).words} ({exc.code})") from exc
    raise click.ClickException(str(exc)) from exc


@contextmanager
def cli_unit(runtime: Runtime) -> Iterator[Session]:
    """A command's unit of work: committed when the block succeeds, rolled back when it raises.

    A gatekeeper error, from the block, the commit or opening the database, fails the command as
    `_fail` words it; anything else is raised as it is.
    """
    from consent_db.session import unit_of_work

    try:
        with unit_of_work(runtime.sessions) as session:
            yield session
    except GatekeeperError as exc:
        _fail(exc)


def plural(count: int, noun: str) -> str:
    """`1 photo`, `2 photos`: a count with its noun as people say it."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _job_queue(runtime: Runtime) -> JobQueue:
    """The command line's job queue, built on the runtime's first send (workers load only then)."""
    from workers import JobQueue

    return JobQueue(runtime)


def _runtime(ctx: click.Context) -> Runtime:
    runtime = ctx.find_object(Runtime)
    if runtime is None:
        try:
            runtime = Runtime(Settings.from_env(), sender=_job_queue)
        except GatekeeperError as exc:
            _fail(exc)
        if not runtime.settings.policy.dpia_required:
            click.echo(
                "warning: GATEKEEPER_DPIA_REQUIRED=0: faces are matched without a recorded DPIA", err=True
            )
        ctx.obj = runtime
    return runtime


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def job_queue(ctx: click.Context) -> JobQueue:
    """This process's job queue (built once, on the command's runtime)."""
    from workers import JobQueue

    return JobQueue.of(_runtime(ctx))


def _report_json(report: Any) -> dict[str, Any]:
    return {
        "id": report.id,
        "started_at": report.started_at.isoformat(),
        "finished_at": report.finished_at.isoformat() if report.finished_at else None,
        "actor": report.actor,
        "deleted": report.deleted,
        "failures": report.failures,
        "held": report.held,
    }


def _echo_purge_report(report: Any, as_json: bool) -> None:
    """A purge report (from `purge` or `people erase`): one JSON object, or what was deleted and what not."""
    if as_json:
        _emit(_report_json(report))
        return
    deleted = ", ".join(f"{n} {kind}" for kind, n in report.deleted.items()) or "nothing"
    click.echo(f"purge report {report.id} ({report.started_at:%Y-%m-%d %H:%M} UTC): deleted {deleted}")
    for failure in report.failures:
        click.echo(f"  NOT deleted {failure['kind']} {failure['id']}: {failure['why']}")
    for kept in report.held:
        click.echo(f"  held {kept['kind']} {kept['id']}: {kept['reason']}")
