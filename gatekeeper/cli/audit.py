"""`gatekeeper audit`: read, export and check the hash-chained audit trail."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from gatekeeper.cli.common import _fail, _runtime
from gatekeeper.errors import GatekeeperError

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
_CSV_COLUMNS = ("id", "at", "actor", "action", "subject", "details", "prev_hash", "hash")

_since_option = click.option(
    "--since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]),
    help="Only events at or after this UTC date (YYYY-MM-DD) or moment (YYYY-MM-DDTHH:MM:SS).",
)
_subject_option = click.option(
    "--subject",
    help="Only events about this subject, e.g. photo:12, person:3, face:40, channel:website.",
)
_person_option = click.option(
    "--person",
    metavar="EXTERNAL_ID",
    help="Only events about this person: their record and every photo and face matched to them.",
)


def _person_subjects(session: Any, external_id: str | None) -> set[str] | None:
    from gatekeeper.audit.log import person_subjects

    if external_id is None:
        return None
    try:
        return person_subjects(session, external_id)
    except GatekeeperError as exc:
        _fail(exc)


@click.group("audit")
def audit_group() -> None:
    """Read, export and check the audit trail."""


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def _event_json(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": event.at.isoformat(),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "details": event.details,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


@audit_group.command("show")
@_since_option
@_subject_option
@_person_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event per line, hashes included.")
@click.pass_context
def audit_show(
    ctx: click.Context, since: datetime | None, subject: str | None, person: str | None, as_json: bool
) -> None:
    """Print audit events, oldest first."""
    from consent_db import audit
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    shown = 0
    with unit_of_work(runtime.sessions) as session:
        for event in audit.events(
            session, since=_utc(since), subject=subject, subjects=_person_subjects(session, person)
        ):
            shown += 1
            if as_json:
                click.echo(json.dumps(_event_json(event), ensure_ascii=False))
            else:
                details = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
                when = event.at.isoformat()
                click.echo(f"#{event.id} {when} {event.actor} {event.action} {event.subject} {details}")
    if not as_json and shown == 0:
        click.echo("no audit events match", err=True)


@audit_group.command("export")
@click.option("--csv", "fmt", flag_value="csv", default=True, help="CSV with a header row (the default).")
@click.option("--json", "fmt", flag_value="json", help="One JSON object per event per line.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option("--force", is_flag=True, help="Replace --output if it exists.")
@_since_option
@_subject_option
@_person_option
@click.pass_context
def audit_export(
    ctx: click.Context,
    fmt: str,
    output: Path | None,
    force: bool,
    since: datetime | None,
    subject: str | None,
    person: str | None,
) -> None:
    """Export audit events, oldest first, with their hashes (so the chain can be checked elsewhere).

    CSV columns: id, at, actor, action, subject, details (JSON), prev_hash, hash.
    """
    from consent_db import audit
    from consent_db.session import unit_of_work
    from gatekeeper.storage import write_atomic

    if output is not None and output.exists() and not force:
        raise click.ClickException(f"{output} exists: choose another name, or add --force to replace it")
    runtime = _runtime(ctx)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(_CSV_COLUMNS)
    count = 0
    with unit_of_work(runtime.sessions) as session:
        for event in audit.events(
            session, since=_utc(since), subject=subject, subjects=_person_subjects(session, person)
        ):
            count += 1
            row = _event_json(event)
            if writer is not None:
                row["details"] = json.dumps(row["details"], ensure_ascii=False, sort_keys=True)
                writer.writerow([row[c] for c in _CSV_COLUMNS])
            else:
                buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
    if output is None:
        click.echo(buffer.getvalue(), nl=False)
        return
    try:
        write_atomic(output, buffer.getvalue().encode("utf-8"), replace=force)
    except FileExistsError:
        raise click.ClickException(
            f"{output} exists: choose another name, or add --force to replace it"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from exc
    click.echo(f"{count} events written to {output}", err=True)


@audit_group.command("head")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def audit_head(ctx: click.Context, as_json: bool) -> None:
    """Print the number of events and the hash of the last one: keep it outside the database.

    Later, `audit verify --head HASH` proves that every event up to that one is still there,
    unchanged. Without it nothing shows that the last events were deleted.
    """
    from consent_db import audit
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        current = audit.head(session)
    if as_json:
        click.echo(json.dumps({"events": current.events, "head": current.hash}))
        return
    click.echo(f"{current.events} {current.hash}")
    click.echo(
        f"keep this outside the database; check later with `gatekeeper audit verify --head {current.hash}`",
        err=True,
    )


@audit_group.command("verify")
@click.option(
    "--head",
    "anchor",
    metavar="HASH",
    help="A head printed earlier by `audit head`: also check that it is still in the chain.",
)
@click.pass_context
def audit_verify(ctx: click.Context, anchor: str | None) -> None:
    """Re-compute the audit hash chain; exit 1 if any event was altered or removed.

    Removing the last events leaves a shorter chain that is still consistent: only --head, a head
    kept outside the database, shows that.
    """
    from consent_db import audit
    from consent_db.session import unit_of_work

    if anchor is not None:
        anchor = anchor.strip().lower()
        if not _HASH_RE.match(anchor):
            raise click.BadParameter("a head is 64 hexadecimal characters, as printed by `audit head`")
    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        check = audit.verify(session, anchor)
    if check.first_bad_id is not None:
        raise click.ClickException(
            f"audit chain broken at event {check.first_bad_id} ({check.events} checked)"
        )
    if anchor is None:
        click.echo(
            f"audit chain intact: {check.events} events (give --head to check none were removed from the end)"
        )
        return
    if check.anchor_position is None:
        raise click.ClickException(
            f"the recorded head {anchor} is not in the audit chain ({check.events} events, consistent "
            "among themselves): events at or before it were deleted or rewritten, or this is another "
            "instance's database"
        )
    since = check.events - check.anchor_position
    click.echo(
        f"audit chain intact: {check.events} events; the recorded head is event {check.anchor_position} "
        f"of the chain ({since} recorded since)"
    )
