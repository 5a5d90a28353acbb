"""Benchmark: the queue end to end, takedown after a withdrawal, and purge on an S3 endpoint.

Prints one JSON object with, for each engine set (the embedded default: SQLite, SqliteHuey and
local folders; and with --scale-out: PostgreSQL, Redis and moto's S3 server on 127.0.0.1):

- `gate`: photos of corpus/faces gated per second by `gatekeeper gate` in-process, and through the
  queue (`gate --queue`, then N `gatekeeper worker --drain` processes started together; from the
  first enqueue to the last worker's exit, start-up included), for 1 and 2 workers, and the
  queue's overhead as a ratio of in-process time;
- `takedown`: seconds from a withdrawal's commit to the last copy deleted, with N live
  publications of photos showing the person (the takedown job run by one worker);
- `purge` (scale-out only): objects and versions deleted per second from a versioned bucket by a
  purge run (`workers.run_purge`: the orphan sweep finds objects no record refers to and deletes
  every version), the objects written straight to the bucket with boto3 beforehand.

On moto, photos are small generated JPEGs of a few KB (moto holds every version in memory and
copies them all on each version listing), and originals, published copies and the purge objects
are in three buckets. `--s3-only` runs only the scale-out takedown and purge.

    uv run python bench/jobs.py [--publications 1000] [--objects 10000] [--scale-out] \
        [--scale-out-publications 1000] [--s3-only] > bench/results/jobs.json
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
from gatekeeper.config import PolicySettings, QueueSettings, Settings, StorageSettings  # noqa: E402
from gatekeeper.queueing import JobKind  # noqa: E402
from gatekeeper.runtime import Runtime  # noqa: E402
from helpers import ENROLMENT, add_people, enrolment_csv, seed_gated_photo  # noqa: E402
from workers import JobQueue  # noqa: E402

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
        "GATEKEEPER_ORIGINALS_URL": settings.storage.originals_url,
        "GATEKEEPER_PUBLISHED_URL": settings.storage.published_url,
        "GATEKEEPER_QUEUE_URL": settings.queue.url,
        "GATEKEEPER_QUEUE_NAME": settings.queue.name,
        "GATEKEEPER_DPIA_REQUIRED": "1" if settings.policy.dpia_required else "0",
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
    runtime = Runtime(settings, sender=JobQueue)
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


def small_jpeg() -> bytes:
    """A 96 x 96 JPEG of a few KB (noise, so it does not compress to nothing)."""
    import io

    from PIL import Image

    image = Image.frombytes("RGB", (96, 96), secrets.token_bytes(96 * 96 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


def bench_takedown(
    settings: Settings, corpus: Path, publications: int, *, small: bool = False
) -> dict[str, Any]:
    from consent_db.models import Job

    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, sender=JobQueue)
    now = datetime.now(UTC)
    ids = add_people(runtime, now, "withdrawing")
    data = small_jpeg() if small else (corpus / "faces" / "biden" / "biden2.jpg").read_bytes()
    start = time.perf_counter()
    for i in range(publications):
        photo_id = seed_gated_photo(
            runtime, data + i.to_bytes(4, "big"), now=now, person_ids=(ids["withdrawing"],)
        )
        cli(runtime, "publish", photo_id, "--channel", "website")
    setup = time.perf_counter() - start
    live = sum(1 for _ in runtime.published.iter_keys())
    if live != publications:
        raise SystemExit(f"only {live} of {publications} photos were published: nothing to measure")
    # A worker already running (as in production) takes the takedown the moment it is sent.
    log = settings.home / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [str(BIN / "gatekeeper"), "worker", "--no-periodic"], env=env_for(settings), stderr=out
        )
    try:
        deadline = time.monotonic() + 120
        while "consumer started" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        withdrawn_at = datetime.now(UTC)
        withdrawn = time.perf_counter()
        cli(runtime, "consent", "withdraw", "withdrawing")
        job = None
        while time.monotonic() < deadline + 600:
            with unit_of_work(runtime.sessions) as session:
                job = session.query(Job).filter(Job.task == JobKind.TAKEDOWN).one()
                session.expunge(job)
            if job.state in ("done", "failed"):
                break
            time.sleep(0.05)
        observed = time.perf_counter() - withdrawn
    finally:
        worker.send_signal(signal.SIGINT)
        worker.wait(timeout=60)
    assert job is not None
    remaining = sum(1 for _ in runtime.published.iter_keys())
    runtime.db.dispose()
    return {
        "live_publications": publications,
        "copy_bytes": len(data),
        "setup_seconds": round(setup, 1),
        "takedown_job": {"state": job.state, "attempts": job.attempts, "error": job.error},
        # From just before the withdrawal's commit to the job's end (every copy deleted, recorded).
        "withdrawal_to_last_deletion_seconds": round((job.updated_at - withdrawn_at).total_seconds(), 2),
        "withdrawal_to_job_seen_done_seconds": round(observed, 2),
        "copies_left": remaining,
    }


def bench_purge(settings: Settings, objects: int) -> dict[str, Any]:
    """Objects written straight to a versioned bucket (two versions each, a few KB), then one
    purge run; the bucket must be empty afterwards."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import timedelta

    import boto3

    from workers import run_purge

    bucket, prefix = settings.storage.published_url.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    body = secrets.token_bytes(2048)

    def write(i: int) -> None:
        for version in (b"1", b"2"):
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/{i:06d}.jpg", Body=body + version, ContentType="image/jpeg"
            )

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(objects)))
    setup = time.perf_counter() - start
    settings.home.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings)
    runtime.db  # noqa: B018 (migrated before the clock starts)
    start = time.perf_counter()
    # The objects were just written: purge as of past the orphan sweep's grace period.
    report = run_purge(runtime, now=datetime.now(UTC) + timedelta(hours=2), actor="bench")
    seconds = time.perf_counter() - start
    left = sum(
        len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket)
    )
    runtime.db.dispose()
    versions = int(report.deleted.get("object_versions", 0))
    return {
        "objects": objects,
        "object_bytes": len(body) + 1,
        "orphans_deleted": report.deleted.get("orphans", 0),
        "versions_deleted": versions,
        "failures": len(report.failures),
        "versions_left": left,
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
        for bucket in ("bench-originals", "bench-published"):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield Settings(
            home=tmp / "scale-out",
            database_url=POSTGRES.rsplit("/", 1)[0] + f"/{name}",
            policy=PolicySettings(dpia_required=False),
            storage=StorageSettings(
                originals_url="s3://bench-originals/originals", published_url="s3://bench-published/published"
            ),
            queue=QueueSettings(url=REDIS, name=name),
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
        default=1000,
        help="Live publications for the takedown on moto (small copies: it holds all in memory).",
    )
    parser.add_argument("--objects", type=int, default=10000, help="Objects for the purge on moto.")
    parser.add_argument(
        "--s3-only", action="store_true", help="Only the scale-out takedown and purge (implies --scale-out)."
    )
    parser.add_argument(
        "--scale-out", action="store_true", help="Also run on PostgreSQL + Redis + S3 (moto)."
    )
    parser.add_argument("--skip-gate", action="store_true", help="Leave out the gating comparison.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "note": "in-process gate: every core per photo; a worker: one (GATEKEEPER_WORKER_FACE_CORES); "
        "faces are matched without a recorded DPIA (GATEKEEPER_DPIA_REQUIRED=0), as in the tests",
    }
    try:
        if not args.s3_only:
            embedded = Settings(home=tmp / "embedded", policy=PolicySettings(dpia_required=False))
            part: dict[str, Any] = results.setdefault("embedded", {})
            if not args.skip_gate:
                part["gate"] = bench_gate(embedded, args.corpus, tmp)
            takedown_home = Settings(
                home=tmp / "embedded-takedown", policy=PolicySettings(dpia_required=False)
            )
            part["takedown"] = bench_takedown(takedown_home, args.corpus, args.publications)
        if args.scale_out or args.s3_only:
            with scale_out(tmp) as settings:
                part = results.setdefault("scale_out", {})
                if not args.skip_gate and not args.s3_only:
                    part["gate"] = bench_gate(settings, args.corpus, tmp)
                part["takedown"] = bench_takedown(
                    settings, args.corpus, args.scale_out_publications, small=True
                )
                purging = settings.with_(
                    home=tmp / "purge",
                    storage={
                        "published_url": "s3://bench-purge/published",
                        "originals_url": "s3://bench-purge/originals",
                    },
                )
                part["purge"] = bench_purge(purging, args.objects)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(results, indent=2))  # whatever was measured, even if a later part failed


if __name__ == "__main__":
    main_()
