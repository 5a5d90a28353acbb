"""The `gatekeeper` command: import people, manage consent, gate photos, strip metadata."""

from __future__ import annotations

import getpass
import hashlib
import json
import multiprocessing
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import GatekeeperError, ImageTooLargeError, InvalidInputError, MediaError
from gatekeeper.runtime import Runtime
from gatekeeper.storage import opaque_name, write_atomic

if TYPE_CHECKING:
    from gatekeeper.services.gate import GateTools

# The database stack (SQLAlchemy, Alembic) and the services load inside the commands that use
# them: `strip` needs neither, and a command line should start quickly.

T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _fail(exc: GatekeeperError) -> NoReturn:
    """The one place where gatekeeper errors become command-line failures."""
    raise click.ClickException(str(exc)) from exc


def _runtime(ctx: click.Context) -> Runtime:
    runtime = ctx.find_object(Runtime)
    if runtime is None:
        try:
            runtime = Runtime(Settings.from_env())
        except GatekeeperError as exc:
            _fail(exc)
        ctx.obj = runtime
    return runtime


def _iter_files(paths: Sequence[Path]) -> list[Path]:
    """Files named directly, and every non-hidden file below named folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


def _progress(items: Iterable[T], length: int, label: str) -> AbstractContextManager[Iterable[T]]:
    """A progress bar on stderr when it is a terminal; otherwise the items as they are."""
    if sys.stderr.isatty() and length > 1:
        return click.progressbar(items, length=length, label=label, file=sys.stderr, show_pos=True)
    return nullcontext(items)


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Consent Gatekeeper: no photo leaves without consent for every face in it.

    Settings come from GATEKEEPER_* environment variables (see the README); by default everything
    lives in ./instance (a SQLite file and local folders).
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
    """Import people, consent and enrolment photos from CSV_FILE.

    Columns: external_id, name, date_of_birth, photos, biometric_consent, channels, granted_by,
    granted_on, valid_until, named. Re-importing the same file changes nothing. Rows that fail are
    reported with their line number; the others still import; the exit code is 1 if any failed.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import people as people_service

    runtime = _runtime(ctx)
    settings = runtime.settings
    try:
        rows, problems = people_service.parse_people_csv(csv_file.read_bytes(), csv_file.parent, settings)
    except GatekeeperError as exc:
        _fail(exc)
    engine = runtime.faces if any(r.biometric and r.photos for r in rows) else None
    with unit_of_work(runtime.sessions) as session:
        report = people_service.import_people(
            session,
            rows,
            engine=engine,
            settings=settings,
            now=_now(),
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
                "problems": [{"line": p.line, "reason": p.reason} for p in report.problems],
            }
        )
    else:
        click.echo(
            f"{report.rows} rows: {report.imported} imported, {report.unchanged} unchanged, "
            f"{len(report.problems)} failed; {report.people_created} people created, "
            f"{report.consent_records_added} consent records added, {report.templates_added} templates added"
            + (f", {report.templates_deleted} deleted" if report.templates_deleted else "")
        )
        for problem in report.problems:
            click.echo(f"line {problem.line}: {problem.reason}", err=True)
    if report.problems:
        ctx.exit(1)


@people.command("show")
@click.argument("external_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def people_show(ctx: click.Context, external_id: str, as_json: bool) -> None:
    """Show a person's current consent per channel, template count and consent history."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import people as people_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            summary = people_service.summarise_person(
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
                "templates": summary.templates,
                "biometric_consent": summary.biometric_consent,
                "channels": [
                    {
                        "channel": c.channel,
                        "publishable": c.publishable,
                        "reasons": list(c.reasons),
                        "granted_by": c.granted_by,
                        "named": c.named,
                        "valid_until": c.valid_until.isoformat() if c.valid_until else None,
                    }
                    for c in summary.channels
                ],
                "history": [_record_json(r) for r in summary.history],
            }
        )
        return
    dob = summary.date_of_birth.isoformat() if summary.date_of_birth else "unknown"
    click.echo(f"{summary.name} ({summary.external_id}), born {dob}, {summary.status}")
    click.echo(
        f"biometric consent: {'yes' if summary.biometric_consent else 'no'}; templates: {summary.templates}"
    )
    click.echo("consent now:")
    for c in summary.channels:
        if c.publishable:
            until = f" until {c.valid_until.date().isoformat()}" if c.valid_until else ""
            click.echo(f"  {c.channel:<24} granted by {c.granted_by}{until}, named: {c.named}")
        else:
            click.echo(f"  {c.channel:<24} NOT publishable: {', '.join(c.reasons)}")
    click.echo("history:")
    for r in summary.history:
        click.echo("  " + " ".join(f"{k}={v}" for k, v in _record_json(r).items() if v is not None))


def _record_json(record: Any) -> dict[str, Any]:
    return {
        "at": record.at.isoformat(),
        "kind": record.kind,
        "channel": record.channel,
        "action": record.action,
        "granted_by": record.granted_by,
        "named": record.named if record.action == "grant" else None,
        "valid_until": record.valid_until.isoformat() if record.valid_until else None,
        "how": record.how,
        "recorded_by": record.recorded_by,
    }


# --- consent ---------------------------------------------------------------------------------------


@main.group()
def consent() -> None:
    """Grant or withdraw one person's consent."""


@consent.command("grant")
@click.argument("external_id")
@click.option("--channel", required=True, help="Channel, e.g. website or social_media:instagram.")
@click.option(
    "--granted-by",
    type=click.Choice(["self", "parent", "guardian"]),
    default="self",
    show_default=True,
    help="Who gave the consent.",
)
@click.option("--granted-by-name", help="Name of the parent or guardian who gave it.")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), help="Last day the consent is valid.")
@click.option(
    "--named",
    type=click.Choice(["yes", "first_name", "no"]),
    default="no",
    show_default=True,
    help="Whether the person may be named in captions.",
)
@click.pass_context
def consent_grant(
    ctx: click.Context,
    external_id: str,
    channel: str,
    granted_by: str,
    granted_by_name: str | None,
    until: datetime | None,
    named: str,
) -> None:
    """Record that EXTERNAL_ID consents to appear on a channel, from now."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import people as people_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            people_service.grant_consent(
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
            )
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"granted: {external_id} on {channel}")


@consent.command("withdraw")
@click.argument("external_id")
@click.option(
    "--channel", "channels", multiple=True, help="Channel to withdraw (repeatable); none: every channel."
)
@click.pass_context
def consent_withdraw(ctx: click.Context, external_id: str, channels: tuple[str, ...]) -> None:
    """Withdraw EXTERNAL_ID's consent for some or all channels, from now."""
    from consent_db.session import unit_of_work
    from gatekeeper.cli_jobs import job_queue
    from gatekeeper.services import people as people_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            added = people_service.withdraw_consent(
                session, external_id, channels, settings=runtime.settings, now=_now(), actor=_actor()
            )
            job_id = job_queue(ctx).enqueue_takedown(
                session, people_service.find_person(session, external_id).id
            )
    except GatekeeperError as exc:
        _fail(exc)
    names = ", ".join(r.channel for r in added) or "nothing (already withdrawn)"
    click.echo(f"withdrawn: {external_id} from {names}; takedown job {job_id} queued")


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
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
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
    publishable photo is written there after consent is re-checked; nothing else is written.
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import gate as gate_service

    runtime = _runtime(ctx)
    settings = runtime.settings
    try:
        gate_service.check_channel(settings, channel)
    except GatekeeperError as exc:
        _fail(exc)
    files = _iter_files(paths)
    if queued:
        from gatekeeper.cli_jobs import enqueue_files

        if out_dir is not None:
            raise click.UsageError("--queue gates in the background: publish afterwards with `publish`")
        enqueue_files(ctx, files, channel, caption, as_json)
        return
    job = GateJob(channel=channel, out_dir=out_dir, actor=_actor(), caption=caption)
    counts: dict[str, int] = {}
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
            counts[line["verdict"]] = counts.get(line["verdict"], 0) + 1
            if as_json:
                _emit(line)
            else:
                click.echo(_describe(line))
    if not as_json:
        summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        click.echo(f"{len(files)} photos: {summary or 'none'}", err=True)


@dataclass(frozen=True)
class GateJob:
    """What every photo of one `gate` run shares."""

    channel: str
    out_dir: Path | None
    actor: str
    caption: str | None


def _describe(line: dict[str, Any]) -> str:
    faces = (
        ", ".join(
            f["outcome"]
            + (f" {f['person']}" if f["person"] else "")
            + (" (covered)" if f.get("covered") else "")
            for f in line["faces"]
        )
        or "no faces"
    )
    reasons = f" ({', '.join(line['reasons'])})" if line["reasons"] else ""
    output = f" -> {line['output']}" if line["output"] else ""
    return f"{line['verdict'].upper():<12} {line['source']}{reasons}: {faces}{output}"


# Per-process state of a `gate --workers` pool: each worker builds its own runtime once.
_worker: dict[str, Any] = {}


def _start_worker(settings: Settings, job: GateJob) -> None:
    from consent_db.session import unit_of_work
    from gatekeeper.services import gate as gate_service

    runtime = Runtime(settings)
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
        size = path.stat().st_size
        if size > limit:
            # Refused unread, but recorded under its real hash (streamed, never held in memory).
            with open(path, "rb") as fh:
                oversize: str | None = hashlib.file_digest(fh, "sha256").hexdigest()
            data = b""
        else:
            oversize, data = None, path.read_bytes()
    except OSError as exc:
        with unit_of_work(runtime.sessions) as session:
            gate_service.record_unreadable_file(
                session, job.channel, exc.strerror or "cannot read", now=now, actor=job.actor
            )
        return _line(path, "blocked", [policy.UNREADABLE_IMAGE], [], None, job)
    output = None
    with unit_of_work(runtime.sessions) as session:
        if oversize is not None:
            too_large = ImageTooLargeError(f"file is {size} bytes; the limit is {limit}")
            result = gate_service.record_unreadable(
                session, oversize, job.channel, too_large, tools=tools, now=now, actor=job.actor
            )
        else:
            result = gate_service.gate_photo(
                session, data, channel=job.channel, tools=tools, now=now, actor=job.actor, caption=job.caption
            )
        if job.out_dir is not None and result.clean is not None:
            output = _publish_to_folder(runtime, session, result, job, now)
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
    return _line(
        path, result.verdict, list(result.reasons), faces, output, job, result.caption, result.photo_id
    )


def _publish_to_folder(
    runtime: Runtime, session: Any, result: Any, job: GateJob, now: datetime
) -> str | None:
    """Publish a gated photo's clean copy into `--out` (a store we control); its path, or None."""
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
    )
    return str(folder.root / outcome.key) if outcome.key is not None else None


def _line(
    path: Path,
    verdict: str,
    reasons: list[str],
    faces: list[dict[str, Any]],
    output: str | None,
    job: GateJob,
    caption: str | None = None,
    photo_id: int | None = None,
) -> dict[str, Any]:
    """One photo's JSON line (`caption` only when the job has one; `id` null for an unreadable file)."""
    line: dict[str, Any] = {
        "id": photo_id,
        "source": str(path),
        "verdict": verdict,
        "reasons": reasons,
        "faces": faces,
        "output": output,
    }
    if job.caption is not None:
        line["caption"] = caption
    return line


# --- strip -----------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Batch mode: write clean copies into this folder under opaque names.",
)
@click.option("--json", "as_json", is_flag=True, help="Batch mode: one JSON object per file on stdout.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def strip(ctx: click.Context, out_dir: Path | None, as_json: bool, paths: tuple[Path, ...]) -> None:
    """Remove all metadata, with no face check: `strip IN OUT` or `strip --out DIR PATH...`.

    JPEG is cleaned losslessly; HEIC/HEIF and TIFF become JPEG. The clean copy is verified by a
    strict parser before it is written.
    """
    settings = _runtime(ctx).settings
    if out_dir is None:
        if len(paths) != 2 or as_json:
            raise click.UsageError("use `strip IN OUT` for one file, or `strip --out DIR [--json] PATH...`")
        source, target = paths
        if not source.is_file():
            raise click.UsageError(f"{source} is not a file")
        try:
            clean = media.sanitise(
                source.read_bytes(), max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality
            )
        except GatekeeperError as exc:
            _fail(exc)
        write_atomic(target, clean.data)
        return
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise click.UsageError(f"not found: {', '.join(missing)}")
    files = _iter_files(paths)
    failures = 0
    with _progress(files, len(files), "stripping") as bar:
        for path in bar:
            output, error = None, None
            try:
                data = path.read_bytes()
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
                error = str(exc) if isinstance(exc, MediaError | InvalidInputError) else f"cannot read: {exc}"
            if as_json:
                _emit({"source": str(path), "output": output, "error": error})
            elif error:
                click.echo(f"FAILED {path}: {error}", err=True)
            else:
                click.echo(f"{path} -> {output}")
    if failures:
        ctx.exit(1)


# --- audit -----------------------------------------------------------------------------------------


@main.group("audit")
def audit_group() -> None:
    """Read and check the audit trail."""


@audit_group.command("verify")
@click.pass_context
def audit_verify(ctx: click.Context) -> None:
    """Re-compute the audit hash chain; exit 1 if any event was altered or removed."""
    from consent_db import audit
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        check = audit.verify(session)
    if not check.ok:
        raise click.ClickException(
            f"audit chain broken at event {check.first_bad_id} ({check.events} checked)"
        )
    click.echo(f"audit chain intact: {check.events} events")


def _register_after_the_verdict() -> None:
    from gatekeeper import cli_jobs

    for command in cli_jobs.COMMANDS:
        main.add_command(command)
    for command in cli_jobs.PEOPLE_COMMANDS:
        people.add_command(command)


_register_after_the_verdict()

if __name__ == "__main__":  # pragma: no cover
    main()
