"""Benchmark: the queue end to end, takedown after a withdrawal, and purge on an S3 endpoint.

Prints one JSON object with, for each engine set (the embedded default: SQLite, SqliteHuey and
local folders; and with --scale-out: PostgreSQL, Redis and moto's S3 server on 127.0.0.1):

- `gate`: photos of corpus/faces gated per second by `gatekeeper gate` in-process, and through the
  queue (`gate --queue`, then N `gatekeeper worker --drain` processes started together; from the
  first enqueue to the last worker's exit, start-up included), for 1 and 2 workers, and the
  queue's overhead as a ratio of in-process time;
- `takedown`: seconds from a withdrawal's commit to the last copy deleted, with N live
  publications of photos showing the person (the takedown job run by one worker);
- `purge` (scale-out only): objects and versions deleted per second from the versioned bucket.

    uv run python bench/jobs.py [--publications 1000] [--objects 1000] [--scale-out] \
        [--scale-out-publications 200] > bench/results/jobs.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from click.testing import CliRunner  # noqa: E402

from consent_db.session import unit_of_work  # noqa: E402
from gatekeeper.cli import main  # noqa: E402
from gatekeeper.config import Settings  # noqa: E402
from gatekeeper.runtime import Runtime  # noqa: E402
from helpers import ENROLMENT, add_people, enrolment_csv, seed_gated_photo  # noqa: E402

BIN = Path(sys.executable).parent
POSTGRES = os.environ.get("GATEKEEPER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("GATEKEEPER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def cli(runtime: Runtime, *args: Any) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], obj=runtime, catch_exceptions=False)
    if result.exit_code not in (0, 1):
        raise SystemExit(f"{args}: {result.output}")
    return result.stdout


def env_for(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "GATEKEEPER_HOME": str(settings.home),
        "GATEKEEPER_DATABASE_URL": settings.database_url,
        "GATEKEEPER_ORIGINALS_URL": settings.originals_url,
        "GATEKEEPER_PUBLISHED_URL": settings.published_url,
        "GATEKEEPER_QUEUE_URL": settings.queue_url,
        "GATEKEEPER_QUEUE_NAME": settings.queue_name,
    }


def drain(settings: Settings, workers: int) -> float:
    """Start `workers` drain processes together; seconds until the last exits."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(BIN / "gatekeeper"), "worker", "--drain"], env=env_for(settings), stderr=subprocess.DEVNULL
        )
        for _ in range(workers)
    ]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit("a worker failed")
    return time.perf_counter() - start


def bench_gate(settings: Settings, corpus: Path, tmp: Path) -> dict[str, Any]:
    runtime = Runtime(settings)
    cli(runtime, "people", "import", enrolment_csv(corpus / "faces", tmp))
    enrolled = {corpus / "faces" / rel for rel in ENROLMENT.values()}
    photos = sorted(
        p
        for p in (corpus / "faces").rglob("*")
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and p not in enrolled
    )
    start = time.perf_counter()
    cli(runtime, "gate", "--channel", "website", "--json", *photos)
    in_process = time.perf_counter() - start
    result: dict[str, Any] = {"photos": len(photos), "in_process_seconds": round(in_process, 2)}
    result["in_process_photos_per_second"] = round(len(photos) / in_process, 2)
    for workers in (1, 2):
        start = time.perf_counter()
        cli(runtime, "gate", "--queue", "--channel", "website", "--json", *photos)
        enqueued = time.perf_counter() - start
        total = enqueued + drain(settings, workers)
        result[f"queue_{workers}_workers"] = {
            "seconds": round(total, 2),
            "enqueue_seconds": round(enqueued, 2),
            "photos_per_second": round(len(photos) / total, 2),
            "overhead_ratio_vs_in_process": round(total / in_process, 2),
        }
    runtime.db.dispose()
    return result


def bench_takedown(settings: Settings, corpus: Path, publications: int) -> dict[str, Any]:
    from consent_db.models import Job

    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings)
    now = datetime.now(UTC)
    ids = add_people(runtime, now, "withdrawing")
    data = (corpus / "faces" / "biden" / "biden2.jpg").read_bytes()
    start = time.perf_counter()
    for i in range(publications):
        photo_id = seed_gated_photo(
            runtime, data + i.to_bytes(4, "big"), now=now, person_ids=(ids["withdrawing"],)
        )
        cli(runtime, "publish", photo_id, "--channel", "website")
    setup = time.perf_counter() - start
    withdrawn = time.perf_counter()
    cli(runtime, "consent", "withdraw", "withdrawing")
    drained = drain(settings, 1)
    last_deletion = time.perf_counter() - withdrawn
    with unit_of_work(runtime.sessions) as session:
        job = session.query(Job).filter(Job.task == "takedown").one()
        job_seconds = (job.updated_at - job.enqueued_at).total_seconds()
    remaining = sum(1 for _ in runtime.published.iter_keys())
    runtime.db.dispose()
    return {
        "live_publications": publications,
        "setup_seconds": round(setup, 1),
        "withdrawal_to_last_deletion_seconds": round(last_deletion, 2),
        "takedown_job_seconds": round(job_seconds, 2),
        "worker_seconds_including_start_up": round(drained, 2),
        "copies_left": remaining,
    }


def bench_purge(store_url: str, objects: int) -> dict[str, Any]:
    from gatekeeper.storage import open_store

    store = open_store(store_url)
    start = time.perf_counter()
    for i in range(objects):
        key = f"p/{i:06d}.jpg"
        store.put(key, b"v1", "image/jpeg")
        store.put(key, b"v2", "image/jpeg")
    setup = time.perf_counter() - start
    start = time.perf_counter()
    versions = sum(store.delete(f"p/{i:06d}.jpg") for i in range(objects))
    seconds = time.perf_counter() - start
    return {
        "objects": objects,
        "versions_deleted": versions,
        "setup_seconds": round(setup, 1),
        "seconds": round(seconds, 2),
        "objects_per_second": round(objects / seconds, 1),
        "versions_per_second": round(versions / seconds, 1),
    }


def _cap_memory() -> None:
    # moto keeps every object version in memory and copies generously while listing versions: cap
    # it so a large run fails on its own instead of exhausting a shared machine.
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MOTO_MEMORY, MOTO_MEMORY))


MOTO_MEMORY = 4 * 1024**3


@contextmanager
def scale_out(tmp: Path) -> Iterator[Settings]:
    """A PostgreSQL database, a Redis queue name and moto's S3 server, for the run."""
    from sqlalchemy import text

    from consent_db.session import make_engine

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moto = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_cap_memory,
    )
    name = f"gk_bench_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES).execution_options(isolation_level="AUTOCOMMIT")
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
        )
        import boto3

        client = boto3.client("s3")
        client.create_bucket(Bucket="bench")
        client.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield Settings(
            home=tmp / "scale-out",
            database_url=POSTGRES.rsplit("/", 1)[0] + f"/{name}",
            originals_url="s3://bench/originals",
            published_url="s3://bench/published",
            queue_url=REDIS,
            queue_name=name,
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        moto.terminate()
        moto.wait()


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    parser.add_argument("--publications", type=int, default=1000)
    parser.add_argument(
        "--scale-out-publications",
        type=int,
        default=200,
        help="Live publications for the takedown on moto (it holds every object in memory).",
    )
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument(
        "--scale-out", action="store_true", help="Also run on PostgreSQL + Redis + S3 (moto)."
    )
    parser.add_argument("--skip-gate", action="store_true", help="Leave out the gating comparison.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "in-process gate: every core per photo; a worker: one (GATEKEEPER_WORKER_FACE_CORES)",
    }
    try:
        embedded = Settings(home=tmp / "embedded")
        part: dict[str, Any] = results.setdefault("embedded", {})
        if not args.skip_gate:
            part["gate"] = bench_gate(embedded, args.corpus, tmp)
        takedown_home = Settings(home=tmp / "embedded-takedown")
        part["takedown"] = bench_takedown(takedown_home, args.corpus, args.publications)
        if args.scale_out:
            with scale_out(tmp) as settings:
                part = results.setdefault("scale_out", {})
                if not args.skip_gate:
                    part["gate"] = bench_gate(settings, args.corpus, tmp)
                part["takedown"] = bench_takedown(settings, args.corpus, args.scale_out_publications)
                part["purge"] = bench_purge("s3://bench/purge-bench", args.objects)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(results, indent=2))  # whatever was measured, even if a later part failed


if __name__ == "__main__":
    main_()
