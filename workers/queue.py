"""The Huey binding: `JobQueue`, one per process, which sends, runs, leases and sweeps jobs.

A `gatekeeper.queueing.JobSender`: entry points compose the `Runtime` with it
(`Runtime(settings, sender=JobQueue)`), and use cases request jobs through `gatekeeper.queueing`;
each job row is written in the caller's transaction and its id sent after the commit (a rollback
sends nothing). Embedded default: `SqliteHuey` in the instance folder;
`GATEKEEPER_QUEUE_URL=redis://...`: `PriorityRedisHuey`, any number of workers.

Only transient backend errors are retried, with exponential backoff; any other failure marks the
job failed (audited, visible in `gatekeeper jobs`) at once.

The database, not the queue, is the record of every job. A running job holds a lease (its row's
`updated_at`, renewed every quarter of `GATEKEEPER_JOB_LEASE` while it runs); `JobQueue.sweep`,
run when `serve` and `worker` start and every `GATEKEEPER_JOB_SWEEP_INTERVAL` seconds, sends
again the jobs a dead process took with it and those whose message the queue lost or never got.
A job's work and its `done` commit together, so a job run twice leaves its effects once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey
from redis import ConnectionPool
from redis.exceptions import ResponseError
from sqlalchemy.exc import OperationalError

from consent_db.session import after_commit, create_private_sqlite, unit_of_work
from gatekeeper.config import QueueSettings, Settings
from gatekeeper.errors import BackendError
from gatekeeper.queueing import JobKind, record_job
from gatekeeper.queueing import rows as jobs_service
from gatekeeper.runtime import Runtime
from workers.periodic import PERIODIC, Periodic, claim_tick
from workers.tasks import PRIORITY, TASKS

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, BackendError):
        return exc.transient
    # A database that went away or is locked may come back; a constraint violation will not.
    return isinstance(exc, OperationalError)


# How long the answer to "can jobs be sent?" is reused (the staff banner, /readyz), in seconds.
_REACHABLE_TTL = 5.0


class _NotDone(Exception):
    """Another run of this job recorded its work first: this run's work is rolled back."""


class _Lease:
    """Renews a running job's lease from a thread of its own until stopped."""

    def __init__(self, queue: JobQueue, job_id: int) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew, args=(queue, job_id), name=f"lease-{job_id}", daemon=True
        )
        self._thread.start()

    def _renew(self, queue: JobQueue, job_id: int) -> None:
        every = queue.runtime.settings.queue.job_lease / 4
        while not self._stop.wait(every):
            try:
                with unit_of_work(queue.runtime.sessions) as session:
                    jobs_service.renew_lease(session, job_id, now=_now())
            except Exception:  # a database that is away now may be back at the next renewal
                log.warning("could not renew the lease of job %s", job_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def open_huey(settings: QueueSettings, instance: Path, *, immediate: bool = False) -> Huey:
    """The Huey queue `settings` name: on Redis, or the embedded SQLite queue in the `instance` folder."""
    if settings.url:
        # Timeouts, so that a queue that does not answer is reported instead of waited for.
        pool = ConnectionPool.from_url(settings.url, socket_connect_timeout=3, socket_timeout=10)
        return PriorityRedisHuey(settings.name, connection_pool=pool, immediate=immediate)
    path = instance / "queue.db"
    create_private_sqlite(path)
    return SqliteHuey(settings.name, filename=str(path), immediate=immediate)


class JobQueue:
    """The Huey queue of one process, with every task registered on it.

    A `gatekeeper.queueing.JobSender`: a runtime composed with it (`Runtime(settings,
    sender=JobQueue)`) sends the jobs that use cases request (a takedown after a withdrawal) through it.
    """

    def __init__(self, runtime: Runtime, *, immediate: bool = False) -> None:
        self.runtime = runtime
        settings = runtime.settings
        self.huey = open_huey(settings.queue, settings.instance_path, immediate=immediate)
        # (monotonic time, reachable) of the last send or check: see `reachable`.
        self._reachable: tuple[float, bool] | None = None
        # Jobs this process has started (duplicates of running or done jobs are not).
        self.started = 0
        self._sweeper: threading.Thread | None = None
        self._stop_sweeper = threading.Event()
        self._tasks: dict[str, Any] = {}
        # The periodic tasks by job kind (recheck, purge), as Huey's scheduler fires them.
        self.periodic: dict[str, Any] = {}
        for kind in TASKS:
            self._tasks[kind] = self.huey.task(
                retries=settings.queue.job_retries,
                retry_delay=settings.queue.job_retry_delay,
                retry_backoff=2,
                priority=PRIORITY[kind],
                context=True,
                name=kind.value,
            )(self._runner(kind))
        for entry in PERIODIC:
            cron = entry.cron(settings)
            self.periodic[entry.kind] = self.huey.periodic_task(cron, name=f"periodic-{entry.kind.value}")(
                self._periodic(entry, cron)
            )

    @classmethod
    def of(cls, runtime: Runtime) -> JobQueue:
        """The job queue `runtime` was composed with, built on first use.

        Raises RuntimeError when the runtime has no queue, TypeError when its sender is not a JobQueue.
        """
        queue = runtime.queue()
        if not isinstance(queue, cls):
            raise TypeError(f"the runtime's job sender is a {type(queue).__name__}, not a JobQueue")
        return queue

    # --- sending -----------------------------------------------------------------------------

    # The application requests its jobs through `gatekeeper.queueing.request_job` (the runtime
    # sends them); these record and send a job on this queue for whoever holds it (tests, tools).

    def enqueue(self, session: Any, kind: JobKind, *args: Any) -> int:
        """Record a job of `kind` in the caller's transaction; send it after the commit."""
        job = record_job(session, kind, args, now=_now())
        job_id = job.id

        def send() -> None:
            # A queue that cannot be reached leaves the job queued: the sweeper sends it later.
            self.send(kind, job_id)

        after_commit(session, send)
        return job_id

    def enqueue_gate(self, session: Any, sha256: str, channel: str, caption: str | None = None) -> int:
        """Gate an original already in the private store."""
        return self.enqueue(session, JobKind.GATE, sha256, channel, caption)

    def enqueue_publish(
        self, session: Any, photo_id: int, channel: str, requested_by: str | None = None
    ) -> int:
        """Publish a gated photo to the published store (on behalf of `requested_by`)."""
        if requested_by is None:
            return self.enqueue(session, JobKind.PUBLISH, photo_id, channel)
        return self.enqueue(session, JobKind.PUBLISH, photo_id, channel, requested_by)

    def enqueue_recheck(self, session: Any) -> int:
        """Re-decide every live publication."""
        return self.enqueue(session, JobKind.RECHECK)

    def enqueue_purge(self, session: Any) -> int:
        """Purge everything past its retention deadline."""
        return self.enqueue(session, JobKind.PURGE)

    def send(self, kind: str, job_id: int) -> bool:
        """Put a recorded (committed) job's id on the queue; False when the queue cannot be reached.

        A job that could not be sent stays `queued` in the database: the sweeper sends it once
        the queue is back, so whoever caused it (a parent withdrawing, an upload) is not refused.
        """
        try:
            self._tasks[kind](job_id)
        except Exception as exc:  # the queue's backend (Redis, SQLite) is down or refusing
            if self.huey.immediate:
                raise
            self._reachable = (time.monotonic(), False)
            log.warning(
                "job %s is recorded but could not be sent (%s): it is sent when the queue is back",
                job_id,
                exc,
            )
            return False
        self._reachable = (time.monotonic(), True)
        return True

    def reachable(self) -> bool:
        """True when jobs can be sent now (checked at most every few seconds)."""
        checked = self._reachable
        if checked is not None and time.monotonic() - checked[0] < _REACHABLE_TTL:
            return checked[1]
        try:
            self.huey.pending_count()
            ok = True
        except Exception:
            ok = False
        self._reachable = (time.monotonic(), ok)
        return ok

    # --- the sweeper -------------------------------------------------------------------------

    def _queued_ids(self) -> set[int]:
        try:
            tasks = self.huey.pending() + self.huey.scheduled()
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            # A queue left by a version without priorities (a Redis list): its jobs are in the
            # database, so the key is dropped and the jobs sent again into the new queue.
            self.huey.storage.conn.delete(self.huey.storage.queue_key)
            return set()
        return {task.args[0] for task in tasks if task.args and isinstance(task.args[0], int)}

    def sweep(self) -> int:
        """Send again every job no worker will hear of (see `queueing.rows.find_stranded`); how many.

        Does nothing while the queue cannot be reached (the jobs stay queued for the next sweep).
        """
        settings = self.runtime.settings
        sessions = self.runtime.sessions
        with unit_of_work(sessions) as session:
            if not jobs_service.has_stranded(session, now=_now(), lease=settings.queue.job_lease):
                return 0
        try:
            in_queue = self._queued_ids()
        except Exception as exc:
            self._reachable = (time.monotonic(), False)
            log.warning("the queue cannot be reached (%s): jobs are sent when it is back", exc)
            return 0
        with unit_of_work(sessions) as session:
            stranded = jobs_service.find_stranded(
                session,
                now=_now(),
                lease=settings.queue.job_lease,
                max_attempts=settings.queue.job_max_attempts,
                in_queue=in_queue,
                actor=f"sweeper:{os.getpid()}",
            )
        sent = sum(1 for task, job_id in stranded.resend if self.send(task, job_id))
        if stranded.resend or stranded.failed:
            log.info("sweep: %d jobs sent again, %d failed", sent, len(stranded.failed))
        return sent

    def start_sweeper(self) -> None:
        """Sweep now and every `GATEKEEPER_JOB_SWEEP_INTERVAL` seconds, in a thread, until stopped."""
        if self._sweeper is not None:
            return
        self._stop_sweeper.clear()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="job-sweeper", daemon=True)
        self._sweeper.start()

    def stop_sweeper(self) -> None:
        """Stop the sweeper thread (after the sweep it is in, if any)."""
        self._stop_sweeper.set()
        if self._sweeper is not None:
            self._sweeper.join()
            self._sweeper = None

    def _sweep_forever(self) -> None:
        interval = self.runtime.settings.queue.job_sweep_interval
        while True:
            try:
                self.sweep()
            except Exception:  # the database may be away: the next sweep tries again
                log.warning("job sweep failed", exc_info=True)
            if self._stop_sweeper.wait(interval):
                return

    # --- running -----------------------------------------------------------------------------

    def _runner(self, kind: JobKind) -> Callable[..., None]:
        def run(job_id: int, task: Any = None) -> None:
            self.execute(kind, job_id, retries_left=task.retries if task is not None else 0)

        run.__name__ = kind.value
        return run

    def _periodic(self, entry: Periodic, cron: Callable[[datetime], bool]) -> Callable[[], None]:
        kind = entry.kind

        def periodic() -> None:
            if not entry.wanted(self.runtime.settings):
                return
            # Every scheduler that fires this tick gets here; the first to claim it runs the job.
            job_id = claim_tick(self.runtime.sessions, kind, cron, now=_now())
            if job_id is not None:
                self.execute(kind, job_id, retries_left=0)

        periodic.__name__ = f"periodic_{kind.value}"
        return periodic

    def execute(self, name: str, job_id: int, *, retries_left: int) -> None:
        """Run one job in its own unit of work and record how it ended.

        A transient backend error with retries left is raised again, so Huey retries it after a
        growing delay; any other error marks the job failed and is not retried.
        """
        sessions = self.runtime.sessions
        with unit_of_work(sessions) as session:
            job = jobs_service.start_job(
                session, job_id, now=_now(), lease=self.runtime.settings.queue.job_lease
            )
            args = list(job.args) if job is not None else None
        if args is None:
            return
        self.run_started(name, job_id, args, retries_left=retries_left)

    def run_started(self, name: str, job_id: int, args: list[Any], *, retries_left: int) -> None:
        """Run a job already marked running (by `execute`) under a renewed lease, and record its end.

        The work and the job's `done` commit together; if another run of the job was recorded
        done first (a lease lapsed while this one was slow), this run's work is rolled back.
        """
        sessions = self.runtime.sessions
        actor = f"worker:{os.getpid()}"
        self.started += 1
        lease = self.holding_lease(job_id)
        try:
            with unit_of_work(sessions) as session:
                TASKS[JobKind(name)](self.runtime, session, actor, *args)
                if not jobs_service.complete_job(session, job_id, now=_now()):
                    raise _NotDone
        except _NotDone:
            log.info("job %s was done by another run: this run's work is rolled back", job_id)
            return
        except Exception as exc:
            retrying = _is_transient(exc) and retries_left > 0
            with unit_of_work(sessions) as session:
                jobs_service.finish_job(
                    session, job_id, now=_now(), error=f"{type(exc).__name__}: {exc}", retrying=retrying
                )
            if retrying:
                raise
            return
        finally:
            lease.stop()

    def holding_lease(self, job_id: int) -> _Lease:
        """Renew running job `job_id`'s lease from a thread until `.stop()` is called."""
        return _Lease(self, job_id)

    def drain(self, *, max_wait: float = 60.0) -> int:
        """Sweep, then run queued jobs (and retries as they fall due) until none is left; how many ran.

        Messages for jobs already done or running elsewhere (duplicates) are taken but not counted.
        """
        self.sweep()
        started = self.started
        idle_since: float | None = None
        while True:
            for due in self.huey.read_schedule(datetime.now(UTC).replace(tzinfo=None)):
                self.huey.enqueue(due)
            task = self.huey.dequeue()
            if task is not None:
                idle_since = None
                self.huey.execute(task)
                continue
            if self.huey.scheduled_count() == 0:
                return self.started - started
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > max_wait:
                return self.started - started
            time.sleep(0.1)

    def counts(self) -> dict[str, int]:
        """Messages waiting in the queue and in the schedule (retries not yet due)."""
        return {"pending": self.huey.pending_count(), "scheduled": self.huey.scheduled_count()}


def _drain_one(settings: Settings) -> int:
    runtime = Runtime(settings, migrate=False, face_workers=settings.faces.worker_cores, sender=JobQueue)
    try:
        return JobQueue.of(runtime).drain()
    finally:
        if "db" in runtime.__dict__:
            runtime.db.dispose()


def drain_in_processes(settings: Settings, processes: int) -> int:
    """Drain the queue with `processes` worker processes at once; how many jobs ran in all.

    Each process is started fresh (spawned, not forked: no database connection or face model is
    shared) and exits when the queue is empty.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        return sum(pool.map(_drain_one, [settings] * processes))


def _sweep_until_orphaned(settings: Settings, parent: int) -> None:
    runtime = Runtime(settings, migrate=False, sender=JobQueue)
    queue = JobQueue.of(runtime)
    queue.start_sweeper()
    # Ends with the worker that started it, even one killed with SIGKILL (this process is then
    # re-parented).
    while os.getppid() == parent:
        time.sleep(1.0)


def start_sweeper_process(settings: Settings) -> multiprocessing.process.BaseProcess:
    """The sweeper in a process of its own (spawned), which ends when this process does."""
    context = multiprocessing.get_context("spawn")
    process = context.Process(
        target=_sweep_until_orphaned, args=(settings, os.getpid()), name="job-sweeper", daemon=True
    )
    process.start()
    return process
