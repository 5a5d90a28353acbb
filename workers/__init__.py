"""Background jobs on Huey: thin tasks, each calling one service; payloads are job ids.

    queue.py     JobQueue: the Huey binding (SqliteHuey or PriorityRedisHuey), sending after
                 commit, running a job under a lease, the sweeper, draining in processes
    tasks.py     the tasks as plain functions `(runtime, session, actor, *ids)`, TASKS and PRIORITY
    periodic.py  the periodic jobs as data (PERIODIC), the tick a scheduler claims (last_tick)
    purge.py     run_purge and run_erasure: one unit of work per item, one report

The entry point composes the `Runtime` with the queue, which is built on first use; use cases
request jobs through `gatekeeper.queueing.request_job`, and the runtime sends them after commit:

    runtime = Runtime(settings, sender=JobQueue)
    with unit_of_work(runtime.sessions) as session:
        ...change something...
        request_job(session, JobKind.PUBLISH, [photo_id, "website"], now=now)  # sent only if this commits
"""

from workers.periodic import PERIODIC, Periodic, last_tick
from workers.purge import run_erasure, run_purge
from workers.queue import JobQueue, drain_in_processes, start_sweeper_process
from workers.tasks import (
    PRIORITY,
    TASKS,
    run_gate,
    run_publish,
    run_purge_job,
    run_recheck,
    run_takedown,
    run_withdrawal_match,
)

__all__ = [
    "PERIODIC",
    "PRIORITY",
    "TASKS",
    "JobQueue",
    "Periodic",
    "drain_in_processes",
    "last_tick",
    "run_erasure",
    "run_gate",
    "run_publish",
    "run_purge",
    "run_purge_job",
    "run_recheck",
    "run_takedown",
    "run_withdrawal_match",
    "start_sweeper_process",
]
