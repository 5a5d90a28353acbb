"""`gatekeeper dpia`: record the data protection impact assessment that face matching needs."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from gatekeeper.cli.common import _actor, _runtime, cli_unit


@click.group("dpia")
def dpia() -> None:
    """Record and show the DPIA; no face is matched until one is recorded."""


@dpia.command("record")
@click.option("--ref", "reference", required=True, help="The DPIA's reference in your records.")
@click.option("--approved-by", required=True, help="Who approved it (the DPO, the governors).")
@click.option("--on", "approved_on", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Date approved.")
@click.pass_context
def dpia_record(ctx: click.Context, reference: str, approved_by: str, approved_on: datetime) -> None:
    """Record an approved DPIA (audited); from now on faces are matched and people may be enrolled."""
    from gatekeeper.people import dpia as dpia_service

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        record = dpia_service.record_dpia(
            session,
            reference=reference,
            approved_by=approved_by,
            approved_on=approved_on.date(),
            now=datetime.now(UTC),
            actor=_actor(),
        )
    click.echo(f"DPIA recorded: {record.reference}, approved by {record.approved_by} on {record.approved_on}")


@dpia.command("show")
@click.pass_context
def dpia_show(ctx: click.Context) -> None:
    """Show the DPIA in force, and whether face matching is on."""
    from consent_db.session import unit_of_work
    from gatekeeper.people import dpia as dpia_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        record = dpia_service.current_dpia(session)
        enabled = dpia_service.matching_enabled(session, runtime.settings)
    if record is not None:
        click.echo(
            f"DPIA {record.reference}, approved by {record.approved_by} on {record.approved_on}, "
            f"recorded {record.recorded_at.date()} by {record.recorded_by}"
        )
    else:
        click.echo("no DPIA recorded")
    click.echo(
        f"face matching: {'on' if enabled else 'off (photos with faces go to review: matching_disabled)'}"
    )
