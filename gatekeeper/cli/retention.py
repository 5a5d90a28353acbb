"""`gatekeeper purge` and `gatekeeper photos hold`: retention, and photos kept for another lawful reason."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from gatekeeper.cli.common import _actor, _echo_purge_report, _emit, _now, _runtime, cli_unit
from gatekeeper.retention import holds


@click.group("purge", invoke_without_command=True)
@click.option("--dry-run", is_flag=True, help="Only list what is due; delete nothing.")
@click.option(
    "--as-of",
    type=click.DateTime(["%Y-%m-%d"]),
    help="With --dry-run: list what will be due at the start of this day (UTC), for planning.",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_context
def purge(ctx: click.Context, dry_run: bool, as_of: datetime | None, as_json: bool) -> None:
    """Delete originals, copies (every S3 version), photos and templates past their retention time.

    Writes one audited purge report; exit code 1 if anything due could not be deleted (it stays
    due for the next run).
    """
    if ctx.invoked_subcommand is not None:
        return
    from consent_db.session import unit_of_work
    from gatekeeper.retention import purge as purge_service

    runtime = _runtime(ctx)
    if as_of is not None and not dry_run:
        raise click.UsageError("--as-of plans ahead: use it with --dry-run")
    if dry_run:
        moment = as_of.replace(tzinfo=UTC) if as_of is not None else _now()
        with unit_of_work(runtime.sessions) as session:
            due = purge_service.find_due(session, runtime.settings.retention, moment)
        lines = [
            {
                "kind": item.kind,
                "id": item.id,
                "state": item.state,
                "deadline": item.deadline.isoformat(),
                "held": item.held,
            }
            for item in due
        ]
        if as_json:
            # One object, whatever is due (an empty list too): a --json command always answers.
            _emit({"dry_run": True, "as_of": moment.isoformat(), "due": lines})
            return
        for item in due:
            since = f"{item.deadline:%Y-%m-%d %H:%M}"
            held = f" (held: {item.held})" if item.held else ""
            click.echo(f"due {item.kind:<9} {item.id:>6} {item.state:<12} since {since} UTC{held}")
        if not due:
            click.echo(f"nothing is due before {moment:%Y-%m-%d %H:%M} UTC (dry run: nothing deleted)")
        else:
            click.echo(f"{len(due)} due at {moment:%Y-%m-%d %H:%M} UTC (dry run: nothing deleted)", err=True)
        return
    from workers import run_purge

    report = run_purge(runtime, now=_now(), actor=_actor())
    _echo_purge_report(report, as_json)
    if report.failures:
        ctx.exit(1)


@purge.command("reports")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report per line.")
@click.pass_context
def purge_reports(ctx: click.Context, as_json: bool) -> None:
    """The newest purge reports: what was deleted, by kind and count, and what could not be."""
    from consent_db.session import unit_of_work
    from gatekeeper.retention import purge as purge_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        reports = purge_service.list_reports(session)
    for report in reports:
        _echo_purge_report(report, as_json)


@click.group("photos")
def photos() -> None:
    """Photos kept for another lawful reason (holds)."""


@photos.command("hold")
@click.argument("photo_id", type=int)
@click.option("--reason", help="The lawful reason to keep the photo (recorded and audited).")
@click.option("--release", is_flag=True, help="End the photo's hold: retention applies again.")
@click.pass_context
def photos_hold(ctx: click.Context, photo_id: int, reason: str | None, release: bool) -> None:
    """Keep PHOTO_ID from erasure and retention purge while held (`--release` ends the hold).

    Publishing still follows the consent in force; purge reports list the photo as held.
    """

    if release == (reason is not None):
        raise click.UsageError("give either --reason TEXT (hold) or --release")
    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        if release:
            holds.release_hold(session, photo_id, now=_now(), actor=_actor())
        else:
            holds.hold_photo(session, photo_id, reason or "", now=_now(), actor=_actor())
    click.echo(f"photo {photo_id} " + ("released: retention applies again" if release else "held"))
