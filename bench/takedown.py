"""Benchmark: a withdrawal's copies gone from our stores although the process running its takedown is
killed with SIGKILL, with the default job lease and sweep interval.

    uv run python bench/takedown.py [--backend embedded|postgres-redis] [--rounds 3] \
        [--idle 70] [--restart-delay 0.1] [--keep-logs]

Every GATEKEEPER_* variable of the caller's environment is left out, so every process runs with the
defaults: a 20 s job lease (`GATEKEEPER_JOB_LEASE`), a sweep every 5 s
(`GATEKEEPER_JOB_SWEEP_INTERVAL`), a re-check every quarter of an hour. Each round is a fresh
instance, set up with the `gatekeeper` command as an operator would: `dpia record`, `people import`
(two adults consenting to the website, one enrolment photo each), `gate --json` of three corpus
photos (one of the withdrawing person, one of both people, one of the other person only), and
`publish` of each to the published store (local folders in the instance). Then:

- `embedded` (SQLite, the embedded SqliteHuey queue): `gatekeeper serve`, which runs the jobs in
  its own threads, is the one process running; it is killed with SIGKILL at its first SQL statement
  that reads `publications` (the takedown has begun, nothing is deleted yet), and `gatekeeper serve`
  is started again `--restart-delay` seconds after its death, as a supervisor (systemd's
  `Restart=always` waits 100 ms by default) restarts it;
- `postgres-redis` (a fresh PostgreSQL database, a `redis-server` of its own without persistence
  on a free port): `gatekeeper serve` (web pages; it sends jobs and sweeps but runs none) runs
  throughout, and one `gatekeeper worker` runs the jobs; that worker is killed the same way and
  `gatekeeper worker` is started again after `--restart-delay` seconds.

The processes first run idle for `--idle` seconds (70), as a running system mostly is: an idle
embedded queue is then polled at its slowest, every 10 s (a worker on Redis waits on the queue).
The withdrawal is `gatekeeper consent withdraw` of the person in a process of its own. A round
measures the seconds from the withdrawal being recorded (the takedown job's `enqueued_at`, written
in the withdrawal's transaction) to the moment no copy of the person's photos is left in the
published store (polled every 50 ms), and checks: the process running the takedown died of SIGKILL
after the withdrawal, the takedown job ended `done` after two attempts, every copy of the person's
photos is recorded taken down, the other person's copy is still there, and no periodic job (the
re-check, the purge: either would also take copies down) ran in the round; rounds are started
clear of the minutes those fire. Prints one JSON object; exits 1 when a round failed or missed 60 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
GATEKEEPER = str(Path(sys.executable).parent / "gatekeeper")
POSTGRES_ADMIN = os.environ.get("GATEKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PROMISE = 60.0  # a withdrawal's copies are gone from our stores within this many seconds
TIMEOUT = 180.0  # a round waits this long for the copies to go before it reports a failure
# Seconds from starting a round's processes to its end, besides --idle, kept clear of the minutes
# the periodic jobs fire in.
ROUND_SPAN = 30.0 + TIMEOUT

WITHDRAWN, OTHER = "biden", "obama"
ENROLMENT = {WITHDRAWN: "biden/biden.jpg", OTHER: "obama/obama.jpg"}
# Published, then: one photo of the withdrawing person, one of both, one of the other person only.
PHOTOS = {"biden/biden2.jpg": True, "group/two_people.jpg": True, "obama/obama_small.jpg": False}

# Run as a process that dies: SIGKILL at the first SQL statement that starts with PREFIX and
# mentions NEEDLE (in the statement or its parameters), otherwise the ordinary `gatekeeper` command
# given by the remaining arguments.
DYING = r"""
import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.engine import Engine

prefix, needle = sys.argv[1:3]


@event.listens_for(Engine, "before_cursor_execute")
def die(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith(prefix) and needle in statement + str(parameters):
        os.kill(os.getpid(), signal.SIGKILL)


from gatekeeper.cli import main

main(sys.argv[3:])
"""
MID_TAKEDOWN = ("SELECT", "FROM publications")  # the takedown has begun, nothing deleted yet


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _corpus() -> Path:
    root = Path(os.environ.get("GATEKEEPER_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (root / "faces" / "manifest.csv").is_file():
        raise SystemExit(f"photo corpus not found at {root} (set GATEKEEPER_CORPUS)")
    return root / "faces"


def _clean_environ() -> dict[str, str]:
    """The caller's environment without any GATEKEEPER_* variable: every setting at its default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Round:
    """One fresh instance and the processes of one round, with their logs."""

    def __init__(self, number: int, folder: Path, env: dict[str, str]) -> None:
        self.number, self.folder, self.env = number, folder, env
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []

    def cli(self, *argv: str) -> str:
        done = subprocess.run(
            [GATEKEEPER, *argv], env=self.env, cwd=ROOT, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise SystemExit(f"gatekeeper {' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def start(self, name: str, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        path = self.folder / f"{name}.log"
        log = open(path, "wb")  # noqa: SIM115 (closed by stop_all)
        self.logs.append(log)
        process = subprocess.Popen(argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process, path

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def _wait_ready(process: subprocess.Popen[bytes], log: Path, marker: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None:
            raise SystemExit(f"{log.name}: exited with {process.returncode} before it was ready")
        if time.monotonic() > deadline:
            raise SystemExit(f"{log.name}: not ready within {seconds:.0f} s")
        time.sleep(0.1)


def _set_up(round_: Round, faces: Path) -> dict[str, Any]:
    """Enrol, gate and publish as an operator would; the published copies by whether they show the
    withdrawing person."""
    round_.cli("dpia", "record", "--ref", "DPIA-BENCH", "--approved-by", "Benchmark", "--on", "2026-01-05")
    rows = ["external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by"]
    rows += [
        f"{who},{who.title()},1980-01-01,{faces / rel},yes,website,self" for who, rel in ENROLMENT.items()
    ]
    enrolment = round_.folder / "enrol.csv"
    enrolment.write_text("\n".join(rows) + "\n")
    round_.cli("people", "import", str(enrolment))
    gated = [
        json.loads(line)
        for line in round_.cli("gate", "--channel", "website", "--json", *(str(faces / p) for p in PHOTOS))
        .strip()
        .splitlines()
    ]
    copies: dict[bool, list[tuple[str, str]]] = {True: [], False: []}
    for line in gated:
        relative = str(Path(line["source"]).relative_to(faces))
        if line["verdict"] != "publishable":
            raise SystemExit(f"{relative} is {line['verdict']} ({line['reasons']}): nothing to take down")
        published = json.loads(round_.cli("publish", str(line["id"]), "--channel", "website", "--json"))
        copies[PHOTOS[relative]].append((published["store"], published["key"]))
    return {"withdrawn": copies[True], "kept": copies[False]}


def _periodic_minutes(settings: Any) -> list[Any]:
    from huey import crontab

    return [
        crontab(*schedule.split())
        for schedule in (settings.queue.recheck_schedule, settings.retention.purge_schedule)
    ]


def _clear_of_periodic_jobs(settings: Any, span: float) -> float:
    """Wait until the next `span` seconds hold no minute a periodic job fires in (a scheduler also
    fires them in the minute it starts); the seconds waited."""
    crons = _periodic_minutes(settings)
    waited = 0.0
    while True:
        now = datetime.now(UTC).replace(tzinfo=None)  # Huey reads its crontabs in naive UTC
        minute = now.replace(second=0, microsecond=0)
        firing = None
        while minute <= now + timedelta(seconds=span):
            if any(cron(minute) for cron in crons):
                firing = minute
                break
            minute += timedelta(minutes=1)
        if firing is None:
            return round(waited, 1)
        pause = (firing + timedelta(seconds=61) - now).total_seconds()
        time.sleep(pause)
        waited += pause


def one_round(
    backend: str, number: int, tmp: Path, faces: Path, queue_url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    from sqlalchemy import select, text

    from consent_db.models import Job, Publication
    from consent_db.session import make_engine, unit_of_work
    from gatekeeper.config import Settings
    from gatekeeper.runtime import Runtime
    from gatekeeper.storage import open_store

    folder = tmp / f"round-{number}"
    folder.mkdir()
    env = {**_clean_environ(), "GATEKEEPER_HOME": str(folder / "instance")}
    admin = None
    database = f"gk_takedown_{secrets.token_hex(4)}"
    if backend == "postgres-redis":
        assert queue_url is not None
        admin = make_engine(POSTGRES_ADMIN).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        env["GATEKEEPER_DATABASE_URL"] = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{database}"
        env["GATEKEEPER_QUEUE_URL"] = queue_url
        env["GATEKEEPER_QUEUE_NAME"] = database
    round_ = Round(number, folder, env)
    runtime = None
    try:
        copies = _set_up(round_, faces)
        settings = Settings.from_env(env)
        runtime = Runtime(settings, migrate=False)
        stores = {url: open_store(url) for url, _ in copies["withdrawn"] + copies["kept"]}

        def left(which: str) -> int:
            return sum(1 for url, key in copies[which] if stores[url].exists(key))

        if left("withdrawn") != len(copies["withdrawn"]) or left("kept") != len(copies["kept"]):
            raise SystemExit("the published copies are not all in the store before the withdrawal")
        waited = _clear_of_periodic_jobs(settings, ROUND_SPAN + args.idle)
        port = str(_port())
        dying_argv = [sys.executable, "-c", DYING, *MID_TAKEDOWN]
        if backend == "embedded":
            # The embedded default: `serve` runs the web app and the jobs, one process in all.
            dying, log = round_.start("serve-killed", [*dying_argv, "serve", "--port", port])
            _wait_ready(dying, log, "serving on")
            restart = ("serve-restarted", [GATEKEEPER, "serve", "--port", port])
        else:
            serve, log = round_.start("serve", [GATEKEEPER, "serve", "--port", port])
            _wait_ready(serve, log, "serving on")
            dying, log = round_.start("worker-killed", [*dying_argv, "worker"])
            _wait_ready(dying, log, "consumer started")
            restart = ("worker-restarted", [GATEKEEPER, "worker"])
        # Idle, as a running system mostly is: the embedded queue is then polled ever less often, at
        # most every 10 s (a worker on Redis waits on the queue and hears of a job at once).
        time.sleep(args.idle)
        withdraw, withdraw_log = round_.start("withdraw", [GATEKEEPER, "consent", "withdraw", WITHDRAWN])
        started = time.monotonic()
        died_at = restarted_at = gone_at = None
        replacement = None
        while time.monotonic() - started < TIMEOUT:
            if replacement is None and dying.poll() is not None:
                died_at = datetime.now(UTC)
                time.sleep(args.restart_delay)
                replacement, _ = round_.start(*restart)  # as a supervisor restarts it
                restarted_at = datetime.now(UTC)
            if not left("withdrawn"):
                gone_at = datetime.now(UTC)
                break
            time.sleep(0.05)
        if withdraw.wait(timeout=60) != 0:
            raise SystemExit(f"consent withdraw failed: {withdraw_log.read_text()}")
        # The takedown job's end is recorded just after the deletions: give it a moment.
        deadline = time.monotonic() + 60
        while True:
            with unit_of_work(runtime.sessions) as session:
                jobs = list(session.scalars(select(Job).order_by(Job.id)))
                for job in jobs:
                    session.expunge(job)
                publications = list(session.scalars(select(Publication)))
                for publication in publications:
                    session.expunge(publication)
            takedown = next(j for j in jobs if j.task == "takedown")
            if takedown.state in ("done", "failed") or gone_at is None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        withdrawn_at = takedown.enqueued_at
        keys = {key for _, key in copies["withdrawn"]}
        taken_down = [p.taken_down_at for p in publications if p.key in keys and p.taken_down_at]
        periodic = sorted({j.task for j in jobs if j.task in ("recheck", "purge")})
        problems = []
        if dying.returncode != -signal.SIGKILL:
            problems.append(f"the process running the takedown ended with {dying.returncode}, not SIGKILL")
        if died_at is not None and died_at < withdrawn_at:
            problems.append("the process running jobs died before the withdrawal")
        if takedown.state != "done" or takedown.attempts != 2:
            problems.append(
                f"takedown job {takedown.state} after {takedown.attempts} attempts (expected done, 2)"
            )
        if gone_at is None:
            problems.append(f"{left('withdrawn')} copies still in the store after {TIMEOUT:.0f} s")
        if len(taken_down) != len(keys):
            problems.append(f"{len(keys) - len(taken_down)} copies not recorded taken down")
        if left("kept") != len(copies["kept"]):
            problems.append("a copy of the other person only was taken down")
        if periodic:
            problems.append(f"periodic jobs ran in the round ({', '.join(periodic)})")

        def since_withdrawal(at: datetime | None) -> float | None:
            return round((at - withdrawn_at).total_seconds(), 2) if at is not None else None

        seconds = since_withdrawal(gone_at)
        return {
            "round": number,
            "seconds": seconds,
            "met_60s": seconds is not None and seconds < PROMISE and not problems,
            "copies_taken_down": len(copies["withdrawn"]),
            "copies_kept": len(copies["kept"]),
            "killed_after_s": since_withdrawal(died_at),
            "replacement_started_after_s": since_withdrawal(restarted_at),
            "last_taken_down_recorded_after_s": since_withdrawal(max(taken_down, default=None)),
            "takedown_job": {"state": takedown.state, "attempts": takedown.attempts},
            "waited_for_periodic_jobs_s": waited,
            "problems": problems,
        }
    finally:
        round_.stop_all()
        if runtime is not None and "db" in runtime.__dict__:
            runtime.db.dispose()
        if not args.keep_logs:
            shutil.rmtree(folder, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()


class OwnRedis:
    """A redis-server of the run's own, without persistence, on a free port of 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        import redis

        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server not found (Debian package redis-server)")
        self.url = f"redis://127.0.0.1:{_port()}/0"
        port = self.url.rsplit(":", 1)[1].split("/")[0]
        self.process = subprocess.Popen(
            ["redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from gatekeeper.config import Settings

    faces = _corpus()
    defaults = Settings.from_env(_clean_environ())
    tmp = Path(tempfile.mkdtemp(prefix="gatekeeper-takedown-"))
    redis_server = OwnRedis(tmp) if args.backend == "postgres-redis" else None
    rounds = []
    try:
        for number in range(1, args.rounds + 1):
            rounds.append(
                one_round(args.backend, number, tmp, faces, redis_server.url if redis_server else None, args)
            )
            print(json.dumps(rounds[-1]), file=sys.stderr)
    finally:
        if redis_server is not None:
            redis_server.stop()
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = [r["seconds"] for r in rounds if r["seconds"] is not None]
    if args.backend == "embedded":
        setup = (
            "SQLite + the embedded SqliteHuey queue + local folders; one `gatekeeper serve` runs the "
            "web app and the jobs; it is killed with SIGKILL as its takedown reads the publications "
            f"and `gatekeeper serve` is started again {args.restart_delay} s after its death"
        )
    else:
        setup = (
            "PostgreSQL + a redis-server of its own (no persistence) + local folders; `gatekeeper serve` "
            "(sends jobs and sweeps, runs none) throughout and one `gatekeeper worker`, killed with "
            "SIGKILL as its takedown reads the publications; `gatekeeper worker` is started again "
            f"{args.restart_delay} s after its death"
        )
    return {
        "backend": args.backend,
        "setup": setup,
        "measured": "seconds from the withdrawal recorded (its takedown job's enqueued_at) to no copy of "
        "the person's photos left in the published store",
        "settings": {
            "job_lease_s": defaults.queue.job_lease,
            "job_sweep_interval_s": defaults.queue.job_sweep_interval,
            "job_max_attempts": defaults.queue.job_max_attempts,
            "recheck_schedule": defaults.queue.recheck_schedule,
            "restart_delay_s": args.restart_delay,
            "idle_before_withdrawal_s": args.idle,
            "note": "every GATEKEEPER_* variable of the caller left out: all settings at their defaults",
        },
        "promise_s": PROMISE,
        "rounds": rounds,
        "seconds": seconds,
        "max_s": max(seconds, default=None),
        "all_met_60s": len(seconds) == len(rounds) and all(r["met_60s"] for r in rounds),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("embedded", "postgres-redis"), default="embedded")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--restart-delay",
        type=float,
        default=0.1,
        help="seconds between the death of the process running jobs and its restart (systemd: 0.1)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=70.0,
        help="seconds the processes run idle before the withdrawal (70: an idle embedded queue is "
        "then polled at its slowest, every 10 s)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the instances and process logs")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.restart_delay < 0 or args.idle < 0:
        parser.error("--restart-delay and --idle must not be negative")
    report = run(args)
    print(json.dumps(report, indent=2))
    if not report["all_met_60s"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
