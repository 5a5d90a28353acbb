"""A bounded load test: many clients at once against a running server, then the queue drained.

    uv run python bench/load.py --mode embedded [--clients 20] [--duration 120] [--quick]
    uv run python bench/load.py --mode scale    [--clients 20] [--duration 120] [--quick]

`embedded`: `gatekeeper serve` on a fresh instance (SQLite, local folders, the embedded queue run
by the server itself), as the README's first steps start it. `scale`: gunicorn (`wsgi:app`, 2
processes x 4 threads) on a fresh PostgreSQL database, a Redis queue and Redis rate-limit counts,
and two `gatekeeper worker` processes (one runs the scheduler). Everything listens on 127.0.0.1
and the script sends traffic nowhere else; the PostgreSQL database and the Redis keys it made are
removed at the end.

Each client is a member of staff with an uploader account, its own API token and a signed-in
session, and loops until the time is up, pausing a random 0-2 x `--think` seconds between
requests: API status polls of its photos (50%), staff pages (25%: home, upload page, a batch, a
photo), public withdrawal form views (15%; each view comes from another parent's address, given
through X-Forwarded-For as a reverse proxy would, `GATEKEEPER_PROXY_HOPS=1`) and photo uploads
through the API (10%, at most `--uploads` per client: distinct photos made from the corpus, and
one in three sends the previous photo again, alternately with its Idempotency-Key and without
one, as a client retrying after a lost answer). Default rate limits apply throughout.

A GET sent on a keep-alive connection that the server closed while it was idle (gunicorn's
keep-alive timeout is 2 s) is sent once more, as browsers do, and counted apart; any other
transport error, and any retried POST, counts as an error.

After the load the script waits until every job has left `queued` and `running`, then reads the
database: jobs by state, gate jobs against distinct photos uploaded, decisions per photo. Prints
one JSON object: requests per second, p50/p95/p99 per kind in milliseconds, status counts, the
5xx count (must be 0), and the drain.

A script of its own with httpx and threads rather than locust: the run is small (tens of
clients, minutes), each client needs a session and token prepared through the services before
the clock starts and idempotent re-sends that depend on its own earlier answers, and the whole
report is one JSON object read by people and scripts; locust's gevent workers, web UI and CSV
statistics would add a large dependency and monkey-patching for none of that.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
CSRF = re.compile(r'name="(?:[a-z]+-)?csrf_token"[^>]*value="([^"]+)"')
PASSWORD = "load test password 123"
POSTGRES_ADMIN = os.environ.get("GATEKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = "redis://127.0.0.1:6379"
KINDS = ("api_status", "staff_page", "public_form", "upload")
WEIGHTS = (50, 25, 15, 10)
ENROLMENT = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "rose_leslie": "rose_leslie/rose_leslie_img1.jpg",
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _corpus() -> Path:
    root = Path(os.environ.get("GATEKEEPER_CORPUS", ROOT.parent / "shared" / "corpus"))
    if not (root / "faces" / "manifest.csv").is_file():
        raise SystemExit(f"photo corpus not found at {root} (set GATEKEEPER_CORPUS)")
    return root / "faces"


def _photos(faces: Path, count: int) -> list[bytes]:
    """`count` distinct JPEGs of at most 800 px: corpus photos, each cropped by a different margin."""
    from PIL import Image, ImageOps

    sources = sorted(p for p in faces.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = []
    for path in sources:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
            upright.thumbnail((800, 800))
            images.append(upright)
    out = []
    for i in range(count):
        image = images[i % len(images)]
        cut = i // len(images)
        buffer = io.BytesIO()
        image.crop((cut, cut, image.width - cut, image.height - cut)).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


# --- the clients ----------------------------------------------------------------------------------


@dataclass
class Results:
    """Every request's kind, status and duration, from all clients (appended under a lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    timings: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    statuses: dict[str, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in KINDS})
    uploads: dict[str, int] = field(default_factory=Counter)
    photo_ids: set[int] = field(default_factory=set)
    # GETs sent again once because the server had closed the idle keep-alive connection under them.
    retried: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, status: str, ms: float) -> None:
        with self.lock:
            self.timings[kind].append(ms)
            self.statuses[kind][status] += 1


class LoadClient(threading.Thread):
    """One member of staff: API token, signed-in session, own photos to upload."""

    def __init__(
        self,
        number: int,
        base: str,
        username: str,
        token: str,
        photos: list[bytes],
        args: argparse.Namespace,
        results: Results,
        stop_at: float,
    ) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number, self.username, self.token, self.photos = number, username, token, photos
        self.args, self.results, self.stop_at = args, results, stop_at
        self.random = random.Random(number)
        self.http = httpx.Client(base_url=base, timeout=120.0, follow_redirects=False)
        # A parent's browser: no staff cookies (made once: building an httpx client costs 0.2-0.5 s).
        self.anonymous = httpx.Client(base_url=base, timeout=120.0, follow_redirects=False)
        self.photo_ids: list[int] = []
        self.batches: list[int] = []
        self.sent = 0
        self.last: tuple[bytes, str] | None = None
        self.resends = 0
        self.public = 0

    def sign_in(self) -> None:
        page = self.http.get("/login").text
        match = CSRF.search(page)
        assert match, "no CSRF token on /login"
        answer = self.http.post(
            "/login", data={"username": self.username, "password": PASSWORD, "csrf_token": match.group(1)}
        )
        assert answer.status_code == 302, f"sign-in failed: {answer.status_code}"

    def _timed(self, kind: str, send: Any, *, retry: bool = True) -> httpx.Response | None:
        """Send and record one request. A GET whose reused connection the server had closed while
        idle (its keep-alive timeout) is sent once more, as browsers do, and counted in `retried`."""
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                response: httpx.Response = send()
                break
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                if retry and attempt == 1:
                    with self.results.lock:
                        self.results.retried[kind] += 1
                    continue
                error = exc
            except httpx.HTTPError as exc:
                error = exc
            self.results.add(kind, f"error:{type(error).__name__}", (time.perf_counter() - started) * 1000)
            return None
        self.results.add(kind, str(response.status_code), (time.perf_counter() - started) * 1000)
        return response

    def _api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def api_status(self) -> None:
        if not self.photo_ids:
            return self.upload()
        photo = self.random.choice(self.photo_ids)
        self._timed(
            "api_status", lambda: self.http.get(f"/api/v1/photos/{photo}", headers=self._api_headers())
        )
        return None

    def staff_page(self) -> None:
        pages = ["/", "/upload"]
        if self.batches:
            pages.append(f"/batches/{self.random.choice(self.batches)}")
        if self.photo_ids:
            pages.append(f"/photos/{self.random.choice(self.photo_ids)}")
        page = self.random.choice(pages)
        self._timed("staff_page", lambda: self.http.get(page))

    def public_form(self) -> None:
        # Each view from another parent's address (documentation ranges, never contacted).
        self.public += 1
        n = self.number * 997 + self.public
        forwarded = f"{'198.51.100' if n % 2 else '203.0.113'}.{n % 254 + 1}"
        self._timed(
            "public_form", lambda: self.anonymous.get("/withdraw", headers={"X-Forwarded-For": forwarded})
        )

    def upload(self) -> None:
        resend = self.last is not None and self.random.random() < 1 / 3
        if not resend and self.sent >= len(self.photos):
            return self.api_status() if self.photo_ids else None
        if resend:
            assert self.last is not None
            data, key = self.last
            self.resends += 1
            with_key = (self.resends + self.number) % 2 == 1
        else:
            data, key = self.photos[self.sent], secrets.token_hex(16)
            self.sent += 1
            self.last = (data, key)
            with_key = self.random.random() < 0.5
        headers = self._api_headers()
        if with_key:
            headers["Idempotency-Key"] = key
        response = self._timed(
            "upload",
            lambda: self.http.post(
                "/api/v1/photos",
                data={"channel": "website"},
                files={"file": ("photo.jpg", data, "image/jpeg")},
                headers=headers,
            ),
            retry=False,  # a POST is never sent twice behind the script's back
        )
        if response is not None and response.status_code == 202:
            body = response.json()
            if body["id"] not in self.photo_ids:
                self.photo_ids.append(body["id"])
            if body.get("batch") is not None:
                self.batches.append(body["batch"])
            with self.results.lock:
                self.results.uploads[
                    "resent_with_key" if resend and with_key else "resent" if resend else "new"
                ] += 1
                self.results.photo_ids.add(body["id"])
        return None

    def run(self) -> None:
        actions = {
            "api_status": self.api_status,
            "staff_page": self.staff_page,
            "public_form": self.public_form,
            "upload": self.upload,
        }
        while time.monotonic() < self.stop_at:
            kind = self.random.choices(KINDS, WEIGHTS)[0]
            actions[kind]()
            time.sleep(self.random.uniform(0, 2 * self.args.think))
        self.http.close()
        self.anonymous.close()


# --- the servers ----------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {
            "p50_ms": values[0] if values else 0.0,
            "p95_ms": 0.0,
            "p99_ms": 0.0,
            "max_ms": max(values, default=0.0),
        }
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(values), 1),
    }


def _wait_for(base: str, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before answering")
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the server did not answer /healthz in time")


def _prepare(env: dict[str, str], tmp: Path, clients: int, faces: Path) -> list[tuple[str, str]]:
    """Migrate, record a DPIA, enrol a few corpus people, and make each client's account and token."""

    def cli(*argv: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", *argv],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )

    rows = ["external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by"]
    rows += [
        f"{name},{name.replace('_', ' ').title()},1980-01-01,{faces / rel},yes,website,self"
        for name, rel in ENROLMENT.items()
    ]
    (tmp / "enrol.csv").write_text("\n".join(rows) + "\n")
    cli("dpia", "record", "--ref", "DPIA-LOAD", "--approved-by", "Load test", "--on", "2026-01-05")
    cli("people", "import", str(tmp / "enrol.csv"))

    from consent_db.session import unit_of_work
    from gatekeeper.config import Settings
    from gatekeeper.runtime import Runtime
    from gatekeeper.staff import accounts

    runtime = Runtime(Settings.from_env(env))
    now = datetime.now(UTC)
    made = []
    try:
        for n in range(clients):
            name = f"load-{n:02d}"
            with unit_of_work(runtime.sessions) as session:
                created = accounts.create_user(session, name, "uploader", now=now, actor="load")
                accounts.change_password(session, created.user.id, created.password, PASSWORD, now=now)
                token = accounts.issue_api_token(session, name, now=now, actor="load")
            made.append((name, token))
    finally:
        runtime.db.dispose()
    return made


def _drain(database_url: str, timeout: float) -> dict[str, Any]:
    """Wait until no job is queued or running; then jobs by state and decisions per photo."""
    from sqlalchemy import func, select

    from consent_db.models import Decision, Job
    from consent_db.session import make_engine, make_session_factory, unit_of_work

    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    started = time.monotonic()
    try:
        while True:
            with unit_of_work(sessions) as session:
                waiting = session.scalar(
                    select(func.count()).select_from(Job).where(Job.state.in_(("queued", "running")))
                )
            if not waiting or time.monotonic() - started > timeout:
                break
            time.sleep(1)
        with unit_of_work(sessions) as session:
            states = dict(
                session.execute(
                    select(Job.task + ":" + Job.state, func.count()).group_by(Job.task, Job.state)
                ).all()
            )
            per_photo = Counter(session.scalars(select(Decision.photo_id)))
            gate_jobs = session.scalar(select(func.count()).select_from(Job).where(Job.task == "gate"))
    finally:
        engine.dispose()
    return {
        "drained": not waiting,
        "seconds_after_load": round(time.monotonic() - started, 1),
        "jobs_by_task_and_state": states,
        "gate_jobs": gate_jobs,
        "photos_decided": len(per_photo),
        "most_decisions_of_one_photo": max(per_photo.values(), default=0),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    faces = _corpus()
    tmp = Path(tempfile.mkdtemp(prefix="gatekeeper-load-"))
    port = _port()
    base = f"http://127.0.0.1:{port}"
    home = tmp / "instance"
    run_id = secrets.token_hex(4)
    env = {
        **os.environ,
        "GATEKEEPER_HOME": str(home),
        "GATEKEEPER_PUBLIC_URL": base,
        "GATEKEEPER_PROXY_HOPS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    admin = None
    database = f"gk_load_{run_id}"
    if args.mode == "scale":
        from sqlalchemy import text

        from consent_db.session import make_engine

        admin = make_engine(POSTGRES_ADMIN).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        env.update(
            GATEKEEPER_DATABASE_URL=POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{database}",
            GATEKEEPER_QUEUE_URL=f"{REDIS}/0",
            GATEKEEPER_QUEUE_NAME=f"load-{run_id}",
            GATEKEEPER_RATE_LIMIT_URL=f"{REDIS}/13",
        )
    else:
        env["GATEKEEPER_DATABASE_URL"] = f"sqlite:///{home / 'gatekeeper.db'}"
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        accounts = _prepare(env, tmp, args.clients, faces)
        photos = _photos(faces, args.clients * args.uploads)

        def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
            log = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 (closed at the end)
            logs.append(log)
            process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
            processes.append(process)
            return process

        if args.mode == "scale":
            gunicorn = ["--workers", "2", "--threads", "4", "--worker-class", "gthread", "--timeout", "120"]
            # Its own control socket: gunicorn's default one is shared by every gunicorn of the user.
            gunicorn += ["--control-socket", str(tmp / "gunicorn.ctl")]
            server = start(
                "gunicorn",
                [sys.executable, "-m", "gunicorn", *gunicorn, "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            )
            start("worker-1", [sys.executable, "-m", "gatekeeper.cli", "worker"])
            start("worker-2", [sys.executable, "-m", "gatekeeper.cli", "worker", "--no-periodic"])
        else:
            server = start("serve", [sys.executable, "-m", "gatekeeper.cli", "serve", "--port", str(port)])
        _wait_for(base, server)
        results = Results()
        stop_at = time.monotonic() + args.duration
        clients = [
            LoadClient(
                n,
                base,
                name,
                token,
                photos[n * args.uploads : (n + 1) * args.uploads],
                args,
                results,
                stop_at,
            )
            for n, (name, token) in enumerate(accounts)
        ]
        for client in clients:
            client.sign_in()
        started = time.monotonic()
        stop_at = started + args.duration
        for client in clients:
            client.stop_at = stop_at
            client.start()
        for client in clients:
            client.join()
        elapsed = time.monotonic() - started
        drain = _drain(env["GATEKEEPER_DATABASE_URL"], args.drain_timeout)
        total = sum(len(v) for v in results.timings.values())
        five_xx = sum(n for c in results.statuses.values() for s, n in c.items() if s.startswith("5"))
        errors = sum(n for c in results.statuses.values() for s, n in c.items() if s.startswith("error"))
        return {
            "mode": args.mode,
            "setup": (
                "gunicorn 2 x 4 threads + PostgreSQL + Redis queue and rate limits + 2 workers"
                if args.mode == "scale"
                else "gatekeeper serve (waitress, 8 threads, embedded SQLite queue run in-process) + SQLite"
            ),
            "clients": args.clients,
            "duration_s": round(elapsed, 1),
            "think_s": args.think,
            "requests": total,
            "requests_per_s": round(total / elapsed, 1),
            "per_kind": {
                kind: {
                    "requests": len(results.timings[kind]),
                    "per_s": round(len(results.timings[kind]) / elapsed, 2),
                    **_percentiles(results.timings[kind]),
                    "statuses": dict(results.statuses[kind]),
                }
                for kind in KINDS
            },
            "five_xx": five_xx,
            "transport_errors": errors,
            "gets_retried_after_idle_connection_closed": dict(results.retried),
            "uploads": dict(results.uploads),
            "distinct_photos_uploaded": len(results.photo_ids),
            "drain": drain,
            "cores": os.cpu_count(),
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()
        if args.keep_logs:
            print(f"logs kept in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            from sqlalchemy import text

            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            admin.dispose()
            import redis

            # The queue's keys; rate-limit counts expire by themselves within the minute.
            client = redis.Redis.from_url(f"{REDIS}/0")
            keys = list(client.scan_iter(f"*load-{run_id}*"))
            if keys:
                client.delete(*keys)
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=("embedded", "scale"), default="embedded")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument(
        "--think", type=float, default=0.25, help="mean pause between a client's requests (s)"
    )
    parser.add_argument("--uploads", type=int, default=3, help="distinct photos each client uploads at most")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    parser.add_argument("--quick", action="store_true", help="20 s of load, one photo per client")
    parser.add_argument("--keep-logs", action="store_true", help="keep the instance folder and server logs")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.uploads = 20.0, 1
    report = run(args)
    print(json.dumps(report, indent=2))
    if report["five_xx"] or report["transport_errors"] or not report["drain"]["drained"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
