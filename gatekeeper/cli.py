"""The `gatekeeper` command: import people, manage consent, gate photos, strip metadata."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gatekeeper import media, policy
from gatekeeper.cli_common import _actor, _emit, _fail, _job_queue, _now, _runtime, plural
from gatekeeper.config import Settings
from gatekeeper.errors import FileTooLargeError, GatekeeperError, InvalidInputError, MediaError
from gatekeeper.media.refusals import explain
from gatekeeper.runtime import Runtime
from gatekeeper.storage import opaque_name, write_atomic

if TYPE_CHECKING:
    from gatekeeper.services.gate import GateTools

# The database stack (SQLAlchemy, Alembic) and the services load inside the commands that use
# them: `strip` needs neither, and a command line should start quickly.

T = TypeVar("T")


def _not_regular(path: Path) -> str | None:
    """None for a regular file (or a link to one); otherwise why it is not read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "not found"
    except OSError as exc:
        return f"cannot read: {exc.strerror}"
    return None if stat.S_ISREG(mode) else _kind(mode)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return f"not a regular file: {name}"
    return "not a regular file"


def _iter_files(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Regular files named directly or below named folders (non-hidden), in a stable order, and
    everything else that was named or found, with the reason it is skipped.

    Only regular files are ever opened: a named pipe would block a read forever, and a device or
    socket is not a photo.
    """
    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if any(part.startswith(".") for part in p.relative_to(path).parts) or p.is_dir():
                    continue
                reason = _not_regular(p)
                if reason is None:
                    found.append(p)
                else:
                    skipped.append((p, reason))
        elif (reason := _not_regular(path)) is None:
            found.append(path)
        else:
            skipped.append((path, reason))
    return found, skipped


def _check_named(paths: Sequence[Path]) -> None:
    """Refuse names that do not exist at all (a typo); a broken link is reported later, per file."""
    missing = [str(p) for p in paths if not os.path.lexists(p)]
    if missing:
        raise click.UsageError(f"not found: {', '.join(missing)}")


def _show_bar(length: int) -> bool:
    return sys.stderr.isatty() and length > 1


def _progress(items: Iterable[T], length: int, label: str) -> AbstractContextManager[Iterable[T]]:
    """A progress bar on stderr when it is a terminal; otherwise the items as they are."""
    if _show_bar(length):
        return click.progressbar(items, length=length, label=label, file=sys.stderr, show_pos=True)
    return nullcontext(items)


def _say(text: str, *, err: bool = False, bar: bool = False) -> None:
    """Print a line; with a progress bar on the terminal, erase the bar's line first.

    The bar is drawn without a newline and redrawn after each item, so a line printed over an
    erased bar stands on its own and the bar reappears below it.
    """
    if bar:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()
    click.echo(text, err=err)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Consent Gatekeeper: no photo leaves without consent for every face in it.

    Settings come from GATEKEEPER_* environment variables (see the README); by default everything
    lives in the repository's instance/ folder (a SQLite file and local folders), wherever the
    command is started. Relative paths are relative to the current folder.
    """


# --- people ----------------------------------------------------------------------------------------


@main.group()
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
    from gatekeeper.services import people_admin, people_csv, people_import

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
        _emit(
            {
                "rows": report.rows,
                "imported": report.imported,
                "unchanged": report.unchanged,
                "people_created": report.people_created,
                "consent_records_added": report.consent_records_added,
                "templates_added": report.templates_added,
                "templates_deleted": report.templates_deleted,
                "changes": [
                    {
                        "line": c.line,
                        "external_id": c.external_id,
                        "action": c.action,
                        "channel": c.channel,
                        "detail": c.detail,
                    }
                    for c in report.changes
                ],
                "warnings": [
                    {"line": w.line, "external_id": w.external_id, "code": w.code, "message": w.message}
                    for w in report.warnings
                ],
                "problems": [{"line": p.line, "reason": p.reason} for p in report.problems],
            }
        )
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
    from consent_db.session import unit_of_work
    from gatekeeper.services import person_summary

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            summary = person_summary.summarise_person(
                session, external_id, settings=runtime.settings, now=_now()
            )
    except GatekeeperError as exc:
        _fail(exc)
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
                    {
                        "channel": c.channel,
                        "publishable": c.publishable,
                        "reasons": list(c.reasons),
                        "granted_by": c.granted_by,
                        "named": c.named,
                        "valid_until": c.valid_until.isoformat() if c.valid_until else None,
                        "last_valid_day": _last_day(c.valid_until),
                    }
                    for c in summary.channels
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
    from gatekeeper.services.consent import last_valid_day

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
    from consent_db.session import unit_of_work
    from gatekeeper.services import people as people_service

    if flag is None:
        raise click.UsageError("give --set or --clear")
    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            changed = people_service.set_safeguarding(
                session, external_id, flag, reason=reason, now=_now(), actor=_actor()
            )
    except GatekeeperError as exc:
        _fail(exc)
    state = "set" if flag else "cleared"
    click.echo(f"safeguarding flag {state}: {external_id}" if changed else f"unchanged: flag already {state}")


# --- consent ---------------------------------------------------------------------------------------


@main.group()
def consent() -> None:
    """Grant or withdraw one person's consent."""


@consent.command("grant")
@click.argument("external_id")
@click.option("--channel", required=True, help="Channel, e.g. website or social_media:instagram.")
@click.option(
    "--granted-by",
    type=click.Choice(policy.GRANTED_BY),
    required=True,
    help="Who gave the consent (for a learner under the age threshold: parent or guardian).",
)
@click.option("--granted-by-name", help="Name of the parent or guardian who gave it.")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Last day the consent is valid.")
@click.option(
    "--named",
    type=click.Choice(policy.NAMED),
    default=None,
    help="Whether the person may be named in captions [default: as the last grant for the channel, else no].",
)
@click.option(
    "--after-leaving", is_flag=True, help="The consent continues after the person leaves (otherwise it ends)."
)
@click.option("--evidence", help="Where the evidence is kept (a form number, a document or email reference).")
@click.option("--wording", help="The version of the consent wording that was agreed to.")
@click.pass_context
def consent_grant(
    ctx: click.Context,
    external_id: str,
    channel: str,
    granted_by: str,
    granted_by_name: str | None,
    until: datetime | None,
    named: str | None,
    after_leaving: bool,
    evidence: str | None,
    wording: str | None,
) -> None:
    """Record that EXTERNAL_ID consents to appear on a channel, from now.

    Warns when the person is still not publishable on the channel (for example a minor's own consent).
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import consent as consent_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            grant = consent_service.grant_consent(
                session,
                external_id,
                channel,
                settings=runtime.settings,
                now=_now(),
                actor=_actor(),
                granted_by=granted_by,
                granted_by_name=granted_by_name,
                valid_until=until.date() if until else None,
                named=named,
                survives_leaving=after_leaving,
                evidence_ref=evidence,
                wording_version=wording,
            )
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"granted: {external_id} on {channel} (named: {grant.record.named})")
    if grant.blockers:
        click.echo(
            f"warning: {external_id} is still NOT publishable on {channel}: {', '.join(grant.blockers)}",
            err=True,
        )


@consent.command("withdraw")
@click.argument("external_id")
@click.option(
    "--channel", "channels", multiple=True, help="Channel to withdraw (repeatable); none: every channel."
)
@click.pass_context
def consent_withdraw(ctx: click.Context, external_id: str, channels: tuple[str, ...]) -> None:
    """Withdraw EXTERNAL_ID's consent for some or all channels, from now."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import consent as consent_service
    from gatekeeper.services import jobs as jobs_service

    runtime = _runtime(ctx)
    job_id = None
    try:
        with unit_of_work(runtime.sessions) as session:
            added = consent_service.withdraw_consent(
                session, external_id, channels, settings=runtime.settings, now=_now(), actor=_actor()
            )
            if added:  # the takedown job, sent after the commit
                job_id = jobs_service.takedown_requested(session, added[0].person_id)
    except GatekeeperError as exc:
        _fail(exc)
    names = ", ".join(r.channel for r in added) or "nothing (already withdrawn)"
    queued = f"; takedown job {job_id} queued" if job_id is not None else ""
    click.echo(f"withdrawn: {external_id} from {names}{queued}")


@consent.command("biometric")
@click.argument("external_id")
@click.argument("action", type=click.Choice(policy.BIOMETRIC_ACTIONS))
@click.option("--by", "by", help="Name of who answered (a parent's name; the person themselves: leave out).")
@click.option(
    "--role",
    type=click.Choice(policy.GRANTED_BY),
    help="Who answered: self, parent or guardian [grant: required; object: parent; refuse: self; "
    "withdraw: every grant in force unless given].",
)
@click.pass_context
def consent_biometric(
    ctx: click.Context, external_id: str, action: str, by: str | None, role: str | None
) -> None:
    """Record EXTERNAL_ID's biometric consent: grant, object (a parent), refuse (the person), withdraw.

    When the answers no longer allow face matching (any objection or refusal; no parent's consent
    for a child under POFA rules), every template is deleted at once and audited.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import consent as consent_service

    if action == "grant" and role is None:
        raise click.UsageError("grant needs --role self, parent or guardian")
    if action == "object" and role is None:
        role = "parent"
    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            done = consent_service.record_biometric_answer(
                session,
                external_id,
                action,
                given_by=role,
                name=by,
                settings=runtime.settings,
                now=_now(),
                actor=_actor(),
            )
    except GatekeeperError as exc:
        _fail(exc)
    if action == "withdraw" and not done.records:
        click.echo(f"biometric consent: nothing to withdraw (no grant in force): {external_id}")
    else:
        click.echo(f"biometric consent {action}: {external_id} ({len(done.records)} record(s))")
    state = f"NOT allowed ({', '.join(done.blockers)})" if done.blockers else "allowed"
    click.echo(f"face matching {state}; {done.templates_deleted} template(s) deleted")


@consent.command("object")
@click.argument("external_id")
@click.option("--channel", required=True, help="The channel objected to.")
@click.pass_context
def consent_object(ctx: click.Context, external_id: str, channel: str) -> None:
    """Record EXTERNAL_ID's objection to publication on a channel, from now.

    On a public-task or legitimate-interests channel it is recorded as an objection; on a consent
    channel as a withdrawal. Either blocks at once.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import consent as consent_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            record = consent_service.object_to_publication(
                session, external_id, channel, settings=runtime.settings, now=_now(), actor=_actor()
            )
    except GatekeeperError as exc:
        _fail(exc)
    recorded = (
        "an objection" if record.action == "object" else "a withdrawal (the channel's basis is consent)"
    )
    click.echo(f"objection recorded as {recorded}: {external_id} on {channel}")


@consent.command("due")
@click.option(
    "--within", "within", type=click.IntRange(0, 3660), default=30, show_default=True, help="Days ahead."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def consent_due(ctx: click.Context, within: int, as_json: bool) -> None:
    """List who needs re-consent (coming of age) or whose consent expires within DAYS, for letters."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import consent_due as due_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        items = due_service.consent_due(session, settings=runtime.settings, now=_now(), within_days=within)
    for item in items:
        if as_json:
            _emit(
                {
                    "external_id": item.external_id,
                    "name": item.name,
                    "channel": item.channel,
                    "why": item.why,
                    "due": item.due.isoformat(),
                    "overdue": item.overdue,
                }
            )
        else:
            late = " (overdue)" if item.overdue else ""
            click.echo(f"{item.due.isoformat()}  {item.external_id:<16} {item.channel:<24} {item.why}{late}")
    if not as_json:
        click.echo(f"{len(items)} due within {within} days", err=True)


# --- gate ------------------------------------------------------------------------------------------


@main.command()
@click.option("--channel", required=True, help="The channel the photos are for, e.g. website.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for clean copies of publishable photos (opaque names).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per photo per line on stdout.")
@click.option(
    "--caption",
    help="Caption or alt text for the photos; every name that may not appear on the channel is removed.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Gate photos in this many parallel processes (each loads the face models once).",
)
@click.option("--queue", "queued", is_flag=True, help="Queue a gate job per photo and return (see `worker`).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def gate(
    ctx: click.Context,
    channel: str,
    out_dir: Path | None,
    as_json: bool,
    caption: str | None,
    workers: int,
    queued: bool,
    paths: tuple[Path, ...],
) -> None:
    """Check every face in PATHS (files or folders) against consent for CHANNEL.

    Each photo is Publishable, Blocked or Review, with reasons. With --out, a clean copy of every
    publishable photo is written there after consent is re-checked; nothing else is written, and a
    photo already published there for the channel is not written again. Only regular files are
    read: named pipes, sockets, devices and broken links are skipped and reported.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import gate as gate_service

    _check_named(paths)
    runtime = _runtime(ctx)
    settings = runtime.settings
    try:
        gate_service.check_channel(settings, channel)
    except GatekeeperError as exc:
        _fail(exc)
    with unit_of_work(runtime.sessions) as session:
        templates = gate_service.count_templates(session)
    if templates == 0:
        click.echo(
            f"warning: no people are enrolled in {_instance_label(settings)}; every face will be unknown "
            "(import people first, or set GATEKEEPER_HOME to the instance that has them)",
            err=True,
        )
    files, skipped = _iter_files(paths)
    if queued:
        from gatekeeper.cli_jobs import enqueue_files

        if out_dir is not None:
            raise click.UsageError("--queue gates in the background: publish afterwards with `publish`")
        for path, reason in skipped:
            _report_skipped(_skipped_line(path, reason), as_json)
        enqueue_files(ctx, files, channel, caption, as_json)
        return
    job = GateJob(channel=channel, out_dir=out_dir, actor=_actor(), caption=caption)
    counts: dict[str, int] = {}
    for path, reason in skipped:
        _report_skipped(_skipped_line(path, reason), as_json)
    bar_shown = _show_bar(len(files))
    with ExitStack() as stack:
        if workers > 1 and len(files) > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    min(workers, len(files)),
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=_start_worker,
                    initargs=(settings, job),
                )
            )
            lines: Iterable[dict[str, Any]] = pool.map(_gate_in_worker, files)
        else:
            with unit_of_work(runtime.sessions) as session:
                tools = gate_service.load_tools(session, settings, runtime.faces, runtime.originals)
            lines = (gate_file(runtime, tools, path, job) for path in files)
        bar = stack.enter_context(_progress(lines, len(files), "gating"))
        for line in bar:
            if line.get("skipped"):
                skipped.append((Path(line["source"]), line["error"]))
                _report_skipped(line, as_json, bar=bar_shown)
                continue
            counts[line["verdict"]] = counts.get(line["verdict"], 0) + 1
            _say(json.dumps(line, ensure_ascii=False) if as_json else _describe(line), bar=bar_shown)
    if not as_json:
        summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        gated = sum(counts.values())
        click.echo(
            f"{plural(gated, 'photo')}: {summary or 'none'}"
            + (f"; {len(skipped)} skipped" if skipped else ""),
            err=True,
        )


def _instance_label(settings: Settings) -> str:
    """The instance as the user knows it: its folder, or the database URL without its password."""
    if settings.database_url.startswith("sqlite"):
        return str(settings.instance_path)
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)


def _skipped_line(path: Path, reason: str) -> dict[str, Any]:
    """The JSON line of something that was not read: no verdict, the reason as `error`."""
    return {
        "source": str(path),
        "verdict": None,
        "reasons": [],
        "faces": [],
        "output": None,
        "error": reason,
        "skipped": True,
    }


def _report_skipped(line: dict[str, Any], as_json: bool, *, bar: bool = False) -> None:
    """A skipped file: one line on stderr, and its JSON line on stdout with --json."""
    _say(f"{'SKIPPED':<12} {line['source']}: {line['error']}", err=True, bar=bar)
    if as_json:
        _say(json.dumps(line, ensure_ascii=False))


@dataclass(frozen=True)
class GateJob:
    """What every photo of one `gate` run shares."""

    channel: str
    out_dir: Path | None
    actor: str
    caption: str | None


def _describe(line: dict[str, Any]) -> str:
    faces = ", ".join(
        f["outcome"] + (f" {f['person']}" if f["person"] else "") + (" (covered)" if f.get("covered") else "")
        for f in line["faces"]
    )
    # An unreadable file has no faces to speak of: the reason it could not be read says more.
    details = "; ".join(
        part for part in (faces or ("" if line["error"] else "no faces"), line["error"]) if part
    )
    reasons = f" ({', '.join(line['reasons'])})" if line["reasons"] else ""
    output = f" -> {line['output']}" if line["output"] else ""
    if line.get("already_published"):
        output += " (already published there)"
    return f"{line['verdict'].upper():<12} {line['source']}{reasons}: {details}{output}"


# Per-process state of a `gate --workers` pool: each worker builds its own runtime once.
_worker: dict[str, Any] = {}


def _start_worker(settings: Settings, job: GateJob) -> None:
    from consent_db.session import unit_of_work
    from gatekeeper.services import gate as gate_service

    runtime = Runtime(settings, sender=_job_queue)
    with unit_of_work(runtime.sessions) as session:
        tools = gate_service.load_tools(session, settings, runtime.faces, runtime.originals)
    _worker.update(runtime=runtime, tools=tools, job=job)


def _gate_in_worker(path: Path) -> dict[str, Any]:
    return gate_file(_worker["runtime"], _worker["tools"], path, _worker["job"])


def gate_file(runtime: Runtime, tools: GateTools, path: Path, job: GateJob) -> dict[str, Any]:
    """Gate one file in its own unit of work and return its JSON line.

    A clean copy appears in the job's folder only after its publication record has committed.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import gate as gate_service

    now = _now()
    limit = runtime.settings.max_bytes
    try:
        # O_NONBLOCK: if the path became a named pipe since it was listed, opening it must not wait
        # for a writer; fstat then shows it is not a regular file. Regular files ignore the flag.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
            status = os.fstat(fh.fileno())
            if not stat.S_ISREG(status.st_mode):
                return _skipped_line(path, _kind(status.st_mode))
            size = status.st_size
            if size > limit:
                # Refused unread, but recorded under its real hash (streamed, never held in memory).
                oversize: str | None = hashlib.file_digest(fh, "sha256").hexdigest()
                data = b""
            else:
                oversize, data = None, fh.read()
    except OSError as exc:
        reason = exc.strerror or "cannot read"
        with unit_of_work(runtime.sessions) as session:
            gate_service.record_unreadable_file(session, job.channel, reason, now=now, actor=job.actor)
        return _line(
            path,
            "blocked",
            [policy.UNREADABLE_IMAGE],
            [],
            None,
            job,
            error=f"cannot read: {reason}",
            error_code="cannot_read",
        )
    published = None
    with unit_of_work(runtime.sessions) as session:
        if oversize is not None:
            too_large = FileTooLargeError(size, limit)
            result = gate_service.record_unreadable(
                session, oversize, job.channel, too_large, tools=tools, now=now, actor=job.actor
            )
        else:
            result = gate_service.gate_photo(
                session, data, channel=job.channel, tools=tools, now=now, actor=job.actor, caption=job.caption
            )
        if job.out_dir is not None and result.clean is not None:
            published = _publish_to_folder(runtime, session, result, job, now)
    output = published.output if published is not None else None
    faces = [
        {
            "box": list(f.box),
            "person": f.person,
            "distance": f.distance,
            "outcome": f.outcome,
            **({"covered": True} if f.covered else {}),
        }
        for f in result.faces
    ]
    line = _line(
        path,
        result.verdict,
        list(result.reasons),
        faces,
        output,
        job,
        result.caption,
        result.photo_id,
        error=result.error,
        error_code=result.error_code,
    )
    if published is not None and published.reused:
        line["already_published"] = True
    return line


@dataclass(frozen=True)
class _FolderCopy:
    """Where `gate --out` put a photo's clean copy, and whether it was already there."""

    output: str | None
    reused: bool


def _publish_to_folder(
    runtime: Runtime, session: Any, result: Any, job: GateJob, now: datetime
) -> _FolderCopy:
    """Publish a gated photo's clean copy into `--out` (a store we control), once per folder and
    channel while its copy is still there."""
    from gatekeeper.services import publish as publish_service
    from gatekeeper.storage import LocalBlobStore

    assert job.out_dir is not None
    folder = LocalBlobStore(job.out_dir)
    outcome = publish_service.publish_photo(
        session,
        result.photo_id,
        channel=job.channel,
        store=folder,
        originals=runtime.originals,
        settings=runtime.settings,
        now=now,
        actor=job.actor,
        clean=result.clean,
        once=True,
    )
    output = str(folder.root / outcome.key) if outcome.key is not None else None
    return _FolderCopy(output, outcome.reused)


def _line(
    path: Path,
    verdict: str,
    reasons: list[str],
    faces: list[dict[str, Any]],
    output: str | None,
    job: GateJob,
    caption: str | None = None,
    photo_id: int | None = None,
    *,
    error: str | None = None,
    error_code: str | None = None,
) -> dict[str, Any]:
    """One photo's JSON line (`caption` only when the job has one; `id` null for an unreadable file)."""
    line: dict[str, Any] = {
        "id": photo_id,
        "source": str(path),
        "verdict": verdict,
        "reasons": reasons,
        "faces": faces,
        "output": output,
        "error": error,
        "error_code": error_code,
    }
    if job.caption is not None:
        line["caption"] = caption
    return line


# --- strip -----------------------------------------------------------------------------------------

# The file name extensions a clean copy of each output format may be written under.
_EXTENSIONS = {"jpeg": (".jpg", ".jpeg"), "png": (".png",), "webp": (".webp",)}


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Batch mode: write clean copies into this folder under opaque names.",
)
@click.option("--json", "as_json", is_flag=True, help="Batch mode: one JSON object per file on stdout.")
@click.option("--force", is_flag=True, help="`strip IN OUT`: replace OUT if it exists (never IN itself).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def strip(
    ctx: click.Context, out_dir: Path | None, as_json: bool, force: bool, paths: tuple[Path, ...]
) -> None:
    """Remove all metadata, with no face check: `strip IN OUT` or `strip --out DIR PATH...`.

    JPEG is cleaned losslessly; HEIC/HEIF and TIFF become JPEG, GIF becomes PNG: OUT's extension
    must name the format written (.jpg or .jpeg, .png, .webp). OUT must not exist unless --force is
    given, and is never IN itself. The clean copy is verified by a strict parser before it is
    written.
    """
    settings = _runtime(ctx).settings
    if out_dir is None:
        if len(paths) != 2 or as_json:
            raise click.UsageError("use `strip IN OUT` for one file, or `strip --out DIR [--json] PATH...`")
        _strip_one(settings, *paths, force=force)
        return
    if force:
        raise click.UsageError("--force is for `strip IN OUT`; with --out every copy gets a new name")
    _check_named(paths)
    files, skipped = _iter_files(paths)
    failures = len(skipped)
    for path, reason in skipped:
        if as_json:
            _emit({"source": str(path), "output": None, "error": reason})
        else:
            click.echo(f"SKIPPED {path}: {reason}", err=True)
    bar_shown = _show_bar(len(files))
    with _progress(files, len(files), "stripping") as bar:
        for path in bar:
            output, error = None, None
            try:
                data = _read_regular(path)
                if len(data) > settings.max_bytes:
                    raise InvalidInputError(f"file is larger than {settings.max_bytes} bytes")
                clean = media.sanitise(
                    data, max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
                )
                target = out_dir / opaque_name(clean.extension)
                write_atomic(target, clean.data)
                output = str(target)
            except (GatekeeperError, OSError) as exc:
                failures += 1
                if isinstance(exc, MediaError):
                    error = explain(exc).words
                else:
                    error = str(exc) if isinstance(exc, InvalidInputError) else f"cannot read: {exc}"
            if as_json:
                _say(json.dumps({"source": str(path), "output": output, "error": error}), bar=bar_shown)
            elif error:
                _say(f"FAILED {path}: {error}", err=True, bar=bar_shown)
            else:
                _say(f"{path} -> {output}", bar=bar_shown)
    if failures:
        ctx.exit(1)


def _read_regular(path: Path) -> bytes:
    """The bytes of a regular file; raises InvalidInputError for anything else (never blocks)."""
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInputError(_kind(mode))
        return fh.read()


def _strip_one(settings: Settings, source: Path, target: Path, *, force: bool) -> None:
    """`strip IN OUT`: refuse anything that would surprise before any work, then write atomically."""
    reason = _not_regular(source)
    if reason is not None:
        raise click.UsageError(f"{source}: {reason}")
    if target.is_dir():
        raise click.UsageError(
            f"{target} is a folder: give OUT as a file name, or use `strip --out {target} {source}` "
            "to write a copy there under an opaque name"
        )
    if target.exists() and os.path.samefile(source, target):
        raise click.UsageError(f"IN and OUT are the same file ({target}): the original is never replaced")
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists: choose another name, or add --force to replace it")
    try:
        clean = media.sanitise(
            _read_regular(source), max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
        )
    except GatekeeperError as exc:
        _fail(exc)
    allowed = _EXTENSIONS[clean.format]
    if target.suffix.lower() not in allowed:
        raise click.ClickException(
            f"the clean copy of {source.name} is {clean.format.upper()}: name OUT with "
            f"{' or '.join(allowed)} (for example {target.with_suffix(allowed[0]).name}); nothing written"
        )
    try:
        write_atomic(target, clean.data, replace=force)
    except FileExistsError:
        raise click.ClickException(
            f"{target} exists: choose another name, or add --force to replace it"
        ) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from exc


# --- audit -----------------------------------------------------------------------------------------

from gatekeeper.cli_audit import audit_group  # noqa: E402  (a command group of its own module)

main.add_command(audit_group)


from gatekeeper.cli_dpia import dpia  # noqa: E402 (registered after `main` exists)

main.add_command(dpia)

from gatekeeper.cli_review import review  # noqa: E402 (registered after `main` exists)

main.add_command(review)

# The web app's commands live in their own module.
from gatekeeper.cli_users import people_link, serve, users  # noqa: E402

main.add_command(serve)
main.add_command(users)
people.add_command(people_link)

from gatekeeper.cli_keys import keys  # noqa: E402 (registered after `main` exists)

main.add_command(keys)


def _register_after_the_verdict() -> None:
    from gatekeeper import cli_jobs

    for command in cli_jobs.COMMANDS:
        main.add_command(command)
    for command in cli_jobs.PEOPLE_COMMANDS:
        people.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    # `python -m gatekeeper.cli`: run the imported module's group, which registers every command, so
    # that the commands and the functions given to worker processes belong to `gatekeeper.cli`.
    from gatekeeper.cli import main as _main

    _main()
else:
    _register_after_the_verdict()
