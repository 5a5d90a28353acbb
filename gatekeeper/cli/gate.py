"""`gatekeeper gate`: check every face against consent, in this process, in a pool, or queued."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatekeeper import policy
from gatekeeper.cli.common import _actor, _emit, _fail, _job_queue, _now, _runtime, plural
from gatekeeper.cli.files import _check_named, _iter_files, _kind, _progress, _say, _show_bar
from gatekeeper.config import Settings
from gatekeeper.errors import FileTooLargeError, GatekeeperError
from gatekeeper.runtime import Runtime

if TYPE_CHECKING:
    from gatekeeper.photos.gate import GateTools

# The database stack (SQLAlchemy, Alembic) and the services load inside the commands that use
# them: a command line should start quickly.


@click.command()
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
    from gatekeeper.photos import gate as gate_service

    _check_named(paths)
    runtime = _runtime(ctx)
    settings = runtime.settings
    try:
        gate_service.check_channel(settings.policy, channel)
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
    from gatekeeper.photos import gate as gate_service

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
    from gatekeeper.photos import gate as gate_service

    now = _now()
    limit = runtime.settings.media.max_bytes
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
            policy.Verdict.BLOCKED,
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
    from gatekeeper.publishing import publish as publish_service
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


def enqueue_files(
    ctx: click.Context, files: list[Path], channel: str, caption: str | None, as_json: bool
) -> None:
    """`gate --queue`: keep each original privately and request its gate job (sent after commit)."""
    from consent_db.session import unit_of_work
    from gatekeeper.photos.gate import original_key
    from gatekeeper.queueing import JobKind, request_job

    runtime = _runtime(ctx)
    failed = 0
    for path in files:
        try:
            data = path.read_bytes()
            if len(data) > runtime.settings.media.max_bytes:
                raise OSError(f"larger than {runtime.settings.media.max_bytes} bytes")
            sha256 = hashlib.sha256(data).hexdigest()
            runtime.originals.put(original_key(sha256), data)
            with unit_of_work(runtime.sessions) as session:
                job_id = request_job(session, JobKind.GATE, [sha256, channel, caption], now=_now()).id
            line: dict[str, Any] = {"source": str(path), "job": job_id, "error": None}
        except (OSError, GatekeeperError) as exc:
            failed += 1
            line = {"source": str(path), "job": None, "error": str(exc)}
        if as_json:
            _emit(line)
        elif line["job"] is not None:
            click.echo(f"queued   {path}: job {line['job']}")
        else:
            click.echo(f"FAILED   {path}: {line['error']}", err=True)
    if failed:
        ctx.exit(1)
