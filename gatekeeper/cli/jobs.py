"""`gatekeeper worker` and `gatekeeper jobs`: run the background jobs, and list or retry them."""

from __future__ import annotations

import click

from gatekeeper.cli.common import _actor, _emit, _fail, _now, _runtime, cli_unit, job_queue
from gatekeeper.errors import GatekeeperError


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
    runtime = Runtime(settings, migrate=False, face_workers=settings.faces.worker_cores, sender=JobQueue)
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
    from gatekeeper.queueing import rows as jobs_service

    runtime = _runtime(ctx)
    queue = job_queue(ctx)
    if retry_id is not None:
        with cli_unit(runtime) as session:
            job = jobs_service.requeue_failed(session, retry_id, now=_now(), actor=_actor())
            task = job.task
            after_send = (task, job.id)
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
