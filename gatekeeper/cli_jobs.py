"""`gatekeeper` commands for everything after the verdict: publish, placements, takedowns, jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gatekeeper.cli_common import _actor, _emit, _fail, _now, _runtime
from gatekeeper.errors import GatekeeperError

if TYPE_CHECKING:
    from workers import JobQueue


@click.command("publish")
@click.argument("photo_id", type=int)
@click.option("--channel", required=True, help="The channel the photo was gated for.")
@click.option("--store", "store_url", help="Store URL (default: GATEKEEPER_PUBLISHED_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def publish(ctx: click.Context, photo_id: int, channel: str, store_url: str | None, as_json: bool) -> None:
    """Decide PHOTO_ID again now and, if it passes, write its clean copy to the published store.

    A photo already live there on the channel (its copy still in place) is not written again: the
    command says it is already published. Exit code 1 when the photo does not pass today (nothing
    is written).
    """
    from consent_db.session import unit_of_work
    from gatekeeper.services import publish as publish_service
    from gatekeeper.storage import open_store

    runtime = _runtime(ctx)
    try:
        store = open_store(store_url) if store_url else runtime.published
        with unit_of_work(runtime.sessions) as session:
            outcome = publish_service.publish_photo(
                session,
                photo_id,
                channel=channel,
                store=store,
                originals=runtime.originals,
                settings=runtime.settings,
                now=_now(),
                actor=_actor(),
                engine=runtime.faces if _has_covered_faces(session, photo_id) else None,
                once=True,
            )
    except GatekeeperError as exc:
        _fail(exc)
    line = {
        "id": photo_id,
        "published": outcome.published,
        "verdict": outcome.verdict,
        "reasons": list(outcome.reasons),
        "publication": outcome.publication_id,
        "store": outcome.store,
        "key": outcome.key,
        "already_published": outcome.reused,
    }
    if as_json:
        _emit(line)
    elif outcome.reused:
        click.echo(f"already published photo {photo_id}: {outcome.store}/{outcome.key} (nothing new written)")
    elif outcome.published:
        click.echo(f"published photo {photo_id}: {outcome.store}/{outcome.key}")
    else:
        click.echo(f"NOT published photo {photo_id}: {outcome.verdict} ({', '.join(outcome.reasons)})")
    if not outcome.published:
        ctx.exit(1)


def _has_covered_faces(session: Any, photo_id: int) -> bool:
    from gatekeeper.services.publish import latest_decision

    try:
        return any(f.covered for f in latest_decision(session, photo_id).faces)
    except GatekeeperError:
        return False


@click.group("publications")
def publications() -> None:
    """Record and list where clean copies went."""


@publications.command("add")
@click.argument("photo_id", type=int)
@click.option("--channel", required=True, help="The channel the photo was gated for.")
@click.option("--where", required=True, help="Where it was placed: a page URL or a post reference.")
@click.pass_context
def publications_add(ctx: click.Context, photo_id: int, channel: str, where: str) -> None:
    """Record a placement outside our stores (it becomes a takedown task if it must come down)."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import publish as publish_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            publication, task = publish_service.record_external(
                session,
                photo_id,
                channel=channel,
                where=where,
                settings=runtime.settings,
                now=_now(),
                actor=_actor(),
            )
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"recorded publication {publication.id}: photo {photo_id} at {where}")
    if task is not None:
        click.echo(f"the photo does not pass today: takedown task {task.id} opened", err=True)


@publications.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per publication per line.")
@click.pass_context
def publications_list(ctx: click.Context, as_json: bool) -> None:
    """Every publication, live or taken down."""
    from sqlalchemy import select

    from consent_db.models import Publication
    from consent_db.session import unit_of_work

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        rows = list(session.scalars(select(Publication).order_by(Publication.id)))
    for p in rows:
        line = {
            "id": p.id,
            "photo": p.photo_id,
            "channel": p.channel,
            "where": p.target,
            "external": p.external,
            "published_at": p.published_at.isoformat(),
            "taken_down_at": p.taken_down_at.isoformat() if p.taken_down_at else None,
        }
        if as_json:
            _emit(line)
        else:
            state = f"taken down {p.taken_down_at:%Y-%m-%d}" if p.taken_down_at else "live"
            click.echo(f"{p.id:>6} photo {p.photo_id:<6} {p.channel:<16} {state:<22} {p.target}")


@click.group("takedowns")
def takedowns() -> None:
    """External placements that must be taken down by hand."""


@takedowns.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only tasks not yet done.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task per line.")
@click.pass_context
def takedowns_list(ctx: click.Context, open_only: bool, as_json: bool) -> None:
    """Takedown tasks: who, what, where, since when (and when done, with the note)."""
    from consent_db.models import Person
    from consent_db.session import unit_of_work
    from gatekeeper.services import publish as publish_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        lines = []
        for task in publish_service.list_tasks(session, open_only=open_only):
            person = session.get(Person, task.person_id) if task.person_id is not None else None
            lines.append(
                {
                    "id": task.id,
                    "person": person.external_id if person else None,
                    "photo": task.photo_id,
                    "channel": task.channel,
                    "where": task.target,
                    "reasons": task.reasons,
                    "since": task.since.isoformat(),
                    "done_at": task.done_at.isoformat() if task.done_at else None,
                    "note": task.note,
                }
            )
    for line in lines:
        if as_json:
            _emit(line)
        else:
            state = f"done {line['done_at'][:10]}: {line['note']}" if line["done_at"] else "OPEN"
            who = line["person"] or "-"
            click.echo(
                f"{line['id']:>5} since {line['since'][:10]} photo {line['photo']} ({who}) "
                f"{line['where']}  {state}"
            )


@takedowns.command("done")
@click.argument("task_id", type=int)
@click.option("--note", required=True, help="What was done (e.g. 'post deleted by the comms team').")
@click.pass_context
def takedowns_done(ctx: click.Context, task_id: int, note: str) -> None:
    """Mark takedown task TASK_ID done."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import publish as publish_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            publish_service.complete_task(session, task_id, note=note, now=_now(), actor=_actor())
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"takedown task {task_id} done")


# --- the queue ---------------------------------------------------------------------------------


def job_queue(ctx: click.Context) -> JobQueue:
    """This process's job queue (built once, on the command's runtime)."""
    from workers import JobQueue

    return JobQueue.of(_runtime(ctx))


def enqueue_files(
    ctx: click.Context, files: list[Path], channel: str, caption: str | None, as_json: bool
) -> None:
    """`gate --queue`: keep each original privately and queue its gate job (sent after commit)."""
    import hashlib

    from consent_db.session import unit_of_work
    from gatekeeper.services.gate import original_key

    runtime = _runtime(ctx)
    queue = job_queue(ctx)
    failed = 0
    for path in files:
        try:
            data = path.read_bytes()
            if len(data) > runtime.settings.max_bytes:
                raise OSError(f"larger than {runtime.settings.max_bytes} bytes")
            sha256 = hashlib.sha256(data).hexdigest()
            runtime.originals.put(original_key(sha256), data)
            with unit_of_work(runtime.sessions) as session:
                job_id = queue.enqueue_gate(session, sha256, channel, caption)
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


@click.command("worker")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Worker processes.")
@click.option("--drain", is_flag=True, help="Run until the queue is empty, then exit (for cron and scripts).")
@click.option(
    "--periodic/--no-periodic",
    default=True,
    show_default=True,
    help="Run the scheduler (periodic re-check and purge) here.",
)
@click.pass_context
def worker(ctx: click.Context, workers: int, drain: bool, periodic: bool) -> None:
    """Run background jobs: gate, publish, takedown, re-check (and the periodic re-check and purge).

    Also sweeps, at start and every GATEKEEPER_JOB_SWEEP_INTERVAL seconds: jobs a dead process
    took with it, and jobs the queue lost or never got, are sent again.

    Give --no-periodic to all workers but one when several run on one queue. Should two
    schedulers fire anyway, each periodic run is claimed in the database and runs once per tick.
    """
    from gatekeeper.runtime import Runtime
    from workers import JobQueue

    settings = _runtime(ctx).settings
    runtime = Runtime(settings, migrate=False, face_workers=settings.worker_face_cores, sender=JobQueue)
    try:
        runtime.db  # noqa: B018 (checks the schema is current before any job is taken)
    except GatekeeperError as exc:
        _fail(exc)
    ctx.obj = runtime
    queue = job_queue(ctx)
    try:
        if drain:
            if workers > 1:
                from workers import drain_in_processes

                runtime.db.dispose()
                ran = drain_in_processes(settings, workers)
            else:
                ran = queue.drain()
            click.echo(f"{ran} jobs run; queue empty", err=True)
            return
        import logging

        # The consumer logs what it takes and what the scheduler enqueues, for operators.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(message)s")
        consumer = queue.huey.create_consumer(
            workers=workers, worker_type="process" if workers > 1 else "thread", periodic=periodic
        )
        # Jobs a dead process took with it, or that the queue lost or never got, are sent again.
        # Worker processes are forked: the sweeper then runs in a process of its own (spawned),
        # never as a thread of the process they are forked from.
        if workers > 1:
            from workers import start_sweeper_process

            sweeper = start_sweeper_process(settings)
            try:
                consumer.run()
            finally:
                sweeper.terminate()
        else:
            queue.start_sweeper()
            try:
                consumer.run()
            finally:
                queue.stop_sweeper()
    finally:
        runtime.db.dispose()


@click.command("jobs")
@click.option(
    "--retry",
    "retry_id",
    type=int,
    help="Send this failed job (or one a dead worker took with it) again.",
)
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["queued", "running", "done", "failed"]),
    help="Only jobs in this state (repeatable; default: queued, running, failed).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per job per line.")
@click.pass_context
def jobs(ctx: click.Context, retry_id: int | None, states: tuple[str, ...], as_json: bool) -> None:
    """Background jobs: queued, running and failed (newest first), and what waits in the schedule."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import jobs as jobs_service

    runtime = _runtime(ctx)
    queue = job_queue(ctx)
    if retry_id is not None:
        try:
            with unit_of_work(runtime.sessions) as session:
                job = jobs_service.requeue_failed(session, retry_id, now=_now(), actor=_actor())
                task = job.task
                after_send = (task, job.id)
        except GatekeeperError as exc:
            _fail(exc)
        if queue.send(*after_send):
            click.echo(f"job {retry_id} queued again")
        else:
            click.echo(
                f"job {retry_id} is queued; the queue cannot be reached now, so it is sent when it is back"
            )
        return
    with unit_of_work(runtime.sessions) as session:
        rows = jobs_service.list_jobs(session, states or ("queued", "running", "failed"))
    counts = queue.counts()
    for job in rows:
        line = {
            "id": job.id,
            "task": job.task,
            "args": job.args,
            "state": job.state,
            "attempts": job.attempts,
            "error": job.error,
            "enqueued_at": job.enqueued_at.isoformat(),
        }
        if as_json:
            _emit(line)
        else:
            error = f"  {job.error}" if job.error else ""
            click.echo(f"{job.id:>6} {job.state:<8} {job.task:<9} {job.args} attempts={job.attempts}{error}")
    if not as_json:
        click.echo(f"queue: {counts['pending']} waiting, {counts['scheduled']} scheduled (retries)", err=True)


@click.group("db")
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply every pending migration (run once per deploy, before workers start)."""
    from consent_db.schema import upgrade
    from consent_db.session import make_engine

    engine = make_engine(_runtime(ctx).settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    click.echo("database schema is current")


# --- retention ---------------------------------------------------------------------------------


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


def _echo_report(report: Any, as_json: bool) -> None:
    if as_json:
        _emit(_report_json(report))
        return
    deleted = ", ".join(f"{n} {kind}" for kind, n in report.deleted.items()) or "nothing"
    click.echo(f"purge report {report.id} ({report.started_at:%Y-%m-%d %H:%M} UTC): deleted {deleted}")
    for failure in report.failures:
        click.echo(f"  NOT deleted {failure['kind']} {failure['id']}: {failure['why']}")
    for kept in report.held:
        click.echo(f"  held {kept['kind']} {kept['id']}: {kept['reason']}")


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
    from gatekeeper.services import purge as purge_service

    runtime = _runtime(ctx)
    if as_of is not None and not dry_run:
        raise click.UsageError("--as-of plans ahead: use it with --dry-run")
    if dry_run:
        moment = as_of.replace(tzinfo=UTC) if as_of is not None else _now()
        with unit_of_work(runtime.sessions) as session:
            due = purge_service.find_due(session, runtime.settings, moment)
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
    _echo_report(report, as_json)
    if report.failures:
        ctx.exit(1)


@purge.command("reports")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per report per line.")
@click.pass_context
def purge_reports(ctx: click.Context, as_json: bool) -> None:
    """The newest purge reports: what was deleted, by kind and count, and what could not be."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import purge as purge_service

    runtime = _runtime(ctx)
    with unit_of_work(runtime.sessions) as session:
        reports = purge_service.list_reports(session)
    for report in reports:
        _echo_report(report, as_json)


@click.command("leave")
@click.argument("external_id")
@click.option(
    "--on", "on", required=True, type=click.DateTime(["%Y-%m-%d"]), help="The last day (YYYY-MM-DD)."
)
@click.pass_context
def people_leave(ctx: click.Context, external_id: str, on: datetime) -> None:
    """Record that EXTERNAL_ID leaves on a day: it starts their retention clocks."""
    from consent_db.session import unit_of_work
    from gatekeeper.services import leaving as leaving_service

    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            leaving_service.record_leaving(session, external_id, on.date(), now=_now(), actor=_actor())
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"{external_id} leaves on {on.date().isoformat()}")


@click.command("erase")
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
    _echo_report(report, as_json)
    if report.failures:
        ctx.exit(1)


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
    from consent_db.session import unit_of_work
    from gatekeeper.services import purge as purge_service

    if release == (reason is not None):
        raise click.UsageError("give either --reason TEXT (hold) or --release")
    runtime = _runtime(ctx)
    try:
        with unit_of_work(runtime.sessions) as session:
            if release:
                purge_service.release_hold(session, photo_id, now=_now(), actor=_actor())
            else:
                purge_service.hold_photo(session, photo_id, reason or "", now=_now(), actor=_actor())
    except GatekeeperError as exc:
        _fail(exc)
    click.echo(f"photo {photo_id} " + ("released: retention applies again" if release else "held"))


COMMANDS = (publish, publications, takedowns, worker, jobs, db, purge, photos)
PEOPLE_COMMANDS: tuple[click.Command, ...] = (people_leave, people_erase)
