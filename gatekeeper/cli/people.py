"""`gatekeeper people`: import, show, flag, leave, erase, and withdrawal links."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import click

from gatekeeper.cli.common import _actor, _echo_purge_report, _emit, _fail, _now, _runtime, cli_unit
from gatekeeper.errors import GatekeeperError


@click.group()
def people() -> None:
    """Import and inspect enrolled people."""


@people.command("import")
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def people_import(ctx: click.Context, csv_file: Path, as_json: bool) -> None:
    """Import people, consent and enrolment photos from CSV_FILE (or a zip of the CSV and its photos).

    Required columns: external_id, name. Optional: date_of_birth, photos, biometric_consent,
    channels, granted_by, granted_on, valid_until, named, biometric_granted_by,
    biometric_objection, left_on (header names in any case). Re-importing
    the same file changes nothing; consent recorded in the gatekeeper is never undone by an import.
    Every change is listed; rows that fail are reported with their line number and the others
    still import (exit code 1 if any failed); warnings flag rows to look at. Photos of a zip are
    read only from inside it, as for an upload to the web app.
    """
    import tempfile

    from consent_db.session import unit_of_work
    from gatekeeper.consent import mis_csv as people_csv
    from gatekeeper.consent import mis_import as people_import
    from gatekeeper.consent import mis_upload as people_admin

    runtime = _runtime(ctx)
    settings = runtime.settings
    now = _now()
    with tempfile.TemporaryDirectory(prefix="gatekeeper-import-") as tmp:
        data, base, confined = csv_file.read_bytes(), csv_file.parent, False
        try:
            if people_admin.is_zip(data):
                unpacked = people_admin.unpack_upload(data, Path(tmp))
                data, base, confined = unpacked.read_bytes(), unpacked.parent, True
            rows, problems = people_csv.parse_people_csv(
                data, base, settings, today=now.date(), confined=confined
            )
        except GatekeeperError as exc:
            _fail(exc)
        engine = runtime.faces if any(r.biometric and r.photos for r in rows) else None
        with unit_of_work(runtime.sessions) as session:
            report = people_import.import_people(
                session,
                rows,
                engine=engine,
                settings=settings,
                now=now,
                actor=_actor(),
                source=f"csv:{csv_file.name}",
            )
    report.problems = sorted([*problems, *report.problems], key=lambda p: p.line)
    report.rows += len(problems)
    if as_json:
        _emit(report.as_json())
    else:
        click.echo(
            f"{report.rows} rows: {report.imported} imported, {report.unchanged} unchanged, "
            f"{len(report.problems)} failed, {len(report.warnings)} warnings; "
            f"{report.people_created} people created, "
            f"{report.consent_records_added} consent records added, {report.templates_added} templates added"
            + (f", {report.templates_deleted} deleted" if report.templates_deleted else "")
        )
        for change in report.changes:
            on = f" {change.channel}" if change.channel else ""
            detail = f" ({change.detail})" if change.detail else ""
            click.echo(f"  line {change.line} {change.external_id}: {change.action}{on}{detail}")
        for warning in report.warnings:
            click.echo(f"warning: line {warning.line} {warning.external_id}: {warning.message}", err=True)
        for problem in report.problems:
            click.echo(f"line {problem.line}: {problem.reason}", err=True)
    if report.problems:
        ctx.exit(1)


@people.command("show")
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def people_show(ctx: click.Context, external_id: str, as_json: bool) -> None:
    """Show a person's current consent per channel, template count and consent history.

    A consent valid until a date is shown with that date: it holds through the whole day.
    """
    from gatekeeper.consent import summary as person_summary

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        summary = person_summary.summarise_person(session, external_id, settings=runtime.settings, now=_now())
    if as_json:
        _emit(
            {
                "external_id": summary.external_id,
                "name": summary.name,
                "date_of_birth": summary.date_of_birth.isoformat() if summary.date_of_birth else None,
                "status": summary.status,
                "safeguarding": summary.safeguarding,
                "templates": summary.templates,
                "biometric_consent": summary.biometric_consent,
                "biometric_reasons": list(summary.biometric_reasons),
                "left_on": summary.left_on.isoformat() if summary.left_on else None,
                "channels": [
                    {**c.as_json(), "last_valid_day": _last_day(c.valid_until)} for c in summary.channels
                ],
                "history": [_record_json(r) for r in summary.history],
            }
        )
        return
    dob = summary.date_of_birth.isoformat() if summary.date_of_birth else "unknown"
    flag = ", safeguarding flag set" if summary.safeguarding else ""
    left = f" on {summary.left_on.isoformat()}" if summary.left_on else ""
    click.echo(f"{summary.name} ({summary.external_id}), born {dob}, {summary.status}{left}{flag}")
    click.echo(
        "face matching: "
        + (
            "allowed"
            if summary.biometric_consent
            else f"not allowed ({', '.join(summary.biometric_reasons)})"
        )
        + f"; templates: {summary.templates}"
    )
    click.echo("consent now:")
    for c in summary.channels:
        if c.publishable:
            until = f" until {_last_day(c.valid_until)}" if c.valid_until else ""
            click.echo(f"  {c.channel:<24} granted by {c.granted_by}{until}, named: {c.named}")
        else:
            click.echo(f"  {c.channel:<24} NOT publishable: {', '.join(c.reasons)}")
    click.echo("history:")
    for r in summary.history:
        fields = _record_json(r)
        del fields["valid_until"]
        click.echo("  " + " ".join(f"{k}={v}" for k, v in fields.items() if v is not None))


def _last_day(valid_until: datetime | None) -> str | None:
    from gatekeeper.consent.records import last_valid_day

    return last_valid_day(valid_until).isoformat() if valid_until else None


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "at": record.at.isoformat(),
        "kind": record.kind,
        "channel": record.channel,
        "action": record.action,
        "granted_by": record.granted_by,
        "by": record.granted_by_name,
        "named": record.named if record.action == "grant" else None,
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "last_valid_day": _last_day(record.valid_until),
        "how": record.how,
        "recorded_by": record.recorded_by,
        "evidence": record.evidence_ref,
        "wording": record.wording_version,
    }


@people.command("safeguarding")
@click.argument("external_id")
@click.option("--set/--clear", "flag", default=None, help="Set or clear the flag (one is required).")
@click.option(
    "--reason",
    required=True,
    help="Why (kept in a safeguarding note for consent admins; the audit log records only who and when).",
)
@click.pass_context
def people_safeguarding(ctx: click.Context, external_id: str, flag: bool | None, reason: str) -> None:
    """Set or clear EXTERNAL_ID's safeguarding flag: while set, never published on any channel."""
    from gatekeeper.people import lookup as people_service

    if flag is None:
        raise click.UsageError("give --set or --clear")
    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        changed = people_service.set_safeguarding(
            session, external_id, flag, reason=reason, now=_now(), actor=_actor()
        )
    state = "set" if flag else "cleared"
    click.echo(f"safeguarding flag {state}: {external_id}" if changed else f"unchanged: flag already {state}")


@people.command("leave")
@click.argument("external_id")
@click.option(
    "--on", "on", required=True, type=click.DateTime(["%Y-%m-%d"]), help="The last day (YYYY-MM-DD)."
)
@click.pass_context
def people_leave(ctx: click.Context, external_id: str, on: datetime) -> None:
    """Record that EXTERNAL_ID leaves on a day: it starts their retention clocks."""
    from gatekeeper.retention import leaving as leaving_service

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        leaving_service.record_leaving(session, external_id, on.date(), now=_now(), actor=_actor())
    click.echo(f"{external_id} leaves on {on.date().isoformat()}")


@people.command("erase")
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_context
def people_erase(ctx: click.Context, external_id: str, as_json: bool) -> None:
    """Erase EXTERNAL_ID: templates, consent history, and every photo showing them (taken down, purged).

    Exit code 1 if something could not be deleted yet (listed in the report; `purge` finishes it).
    """
    from workers import run_erasure

    runtime = _runtime(ctx)
    try:
        report = run_erasure(runtime, external_id, now=_now(), actor=_actor())
    except GatekeeperError as exc:
        _fail(exc)
    _echo_purge_report(report, as_json)
    if report.failures:
        ctx.exit(1)


@people.command("link")
@click.argument("external_id")
@click.pass_context
def people_link(ctx: click.Context, external_id: str) -> None:
    """Issue a withdrawal link for EXTERNAL_ID and print it (earlier links keep working)."""
    from gatekeeper.consent import withdrawals

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        url = withdrawals.issue_link(
            session, external_id, settings=runtime.settings, now=_now(), actor=_actor()
        )
    if not runtime.settings.web.public_url:
        click.echo(
            "warning: GATEKEEPER_PUBLIC_URL is not set: this link assumes the app is reached at "
            f"{runtime.settings.web.public_address}",
            err=True,
        )
    click.echo(url)


@people.command("contacts")
@click.argument("external_id")
@click.option(
    "--add",
    "added",
    multiple=True,
    metavar="[RELATIONSHIP:]EMAIL",
    help="Add a parent's or guardian's address (`mother:jo@example.org`; an address alone: a parent), "
    "or the person's own as `self:EMAIL`. Repeatable.",
)
@click.option("--remove", "removed", multiple=True, metavar="EMAIL", help="Remove an address. Repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the contacts as one JSON object.")
@click.pass_context
def people_contacts(
    ctx: click.Context, external_id: str, added: tuple[str, ...], removed: tuple[str, ...], as_json: bool
) -> None:
    """List, add or remove EXTERNAL_ID's email contacts (who consent forms are sent to)."""
    from gatekeeper.people import contacts as contact_service
    from gatekeeper.people.lookup import find_person

    runtime = _runtime(ctx)
    with cli_unit(runtime) as session:
        person = find_person(session, external_id)
        for email in removed:
            contact = contact_service.find_contact(session, person, email)
            contact_service.remove_contact(session, person, contact, now=_now(), actor=_actor())
        for entry in added:
            contact_service.add_contact(
                session, person, contact_service.parse_contact(entry), now=_now(), actor=_actor()
            )
        rows = [
            {"email": c.email, "role": c.role, "relationship": c.relationship_to_person}
            for c in contact_service.contacts_of(session, person)
        ]
    if as_json:
        _emit({"external_id": external_id, "contacts": rows})
        return
    for row in rows:
        who = "own address" if row["role"] == "self" else f"{row['relationship']} ({row['role']})"
        click.echo(f"{row['email']:<40} {who}")
    if not rows:
        click.echo(f"{external_id} has no contacts", err=True)
