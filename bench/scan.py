"""Benchmark: scanning a website, images per second, and the share of time fetching versus deciding.

A fixture site is built from corpus photos (tests/scan_helpers.py serves it from 127.0.0.1): each
distinct picture (a corpus photo, mirrored, or cropped) is published in several WordPress-style
renditions, spread over pages linked from the home page and listed in a sitemap. `gatekeeper scan`'s
own runner scans it into a fresh instance (SQLite, local folders, the real face engine, nobody
enrolled), so every picture is decided by the gate's engine.

Reported (one JSON object): images fetched, pictures after grouping renditions, pages, requests,
the scan's wall time, images per second, seconds and share spent reading the site (fetching and
hashing) and deciding (the face engine and the records), and how long the default polite rate
(GATEKEEPER_SCAN_RATE=2) would add for the same requests.

Beside it (`peer`), the peer tool on the same files: the face_recognition command line (`--cpus 1`,
nobody known) over every image file the site shows, as a crawl-then-check script would run it. It
looks for upright faces only and decides every rendition, where the scan groups renditions and
searches every angle; it records nothing.

    uv run python bench/scan.py [--corpus ../shared/corpus] [--pictures 60] [--renditions 5] \
        [--pages 20] [--rate 100] > bench/results/scan.json
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from PIL import Image, ImageOps

from consent_db.session import unit_of_work
from gatekeeper.config import FaceSettings, PolicySettings, Settings
from gatekeeper.runtime import Runtime
from gatekeeper.scan import runner, scanning
from tests.scan_helpers import SiteServer, page

SIZES = ((1600, ""), (1024, "-1024x683"), (768, "-768x512"), (300, "-300x200"), (150, "-150x150"))


def _variants(corpus: Path, count: int) -> list[Image.Image]:
    photos = sorted(p for p in (corpus / "faces").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    made: list[Image.Image] = []
    for making in ("as_is", "mirror", "crop"):
        for path in photos:
            if len(made) >= count:
                return made
            image = Image.open(path).convert("RGB")
            if making == "mirror":
                image = ImageOps.mirror(image)
            elif making == "crop":
                width, height = image.size
                image = image.crop((width // 10, height // 10, width - width // 10, height - height // 10))
            made.append(image)
    return made


def build(root: Path, corpus: Path, pictures: int, renditions: int, pages: int) -> int:
    """Write the site; how many image files it shows."""
    uploads = root / "wp-content" / "uploads"
    uploads.mkdir(parents=True)
    shown: list[list[str]] = [[] for _ in range(pages)]
    files = 0
    for number, image in enumerate(_variants(corpus, pictures)):
        for edge, suffix in SIZES[:renditions]:
            copy = image.copy()
            copy.thumbnail((edge, edge))
            out = io.BytesIO()
            copy.save(out, "JPEG", quality=85)
            name = f"picture-{number}{suffix}.jpg"
            (uploads / name).write_bytes(out.getvalue())
            shown[(number + len(suffix)) % pages].append(f"/wp-content/uploads/{name}")
            files += 1
    for number, images in enumerate(shown):
        body = "".join(f'<img src="{src}" alt="">' for src in images)
        (root / f"page-{number}.html").write_text(page(body))
    links = "".join(f'<a href="/page-{n}.html">Page {n}</a>' for n in range(pages))
    (root / "index.html").write_text(page(links))
    return files


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "site"
        root.mkdir()
        files = build(root, args.corpus, args.pictures, args.renditions, args.pages)
        settings = Settings(
            home=Path(folder) / "instance",
            policy=PolicySettings(dpia_required=False),
            faces=FaceSettings(probe_step=args.probe_step),
        ).with_(scan={"rate": args.rate, "max_images": 100_000, "max_pages": 10_000})
        (Path(folder) / "instance").mkdir()
        runtime = Runtime(settings)
        with SiteServer(root) as server:
            server.sitemap_paths = ("/",)
            with unit_of_work(runtime.sessions) as session:
                run_id = runner.start_scan(
                    session,
                    server.url + "/",
                    channel="website",
                    settings=settings,
                    now=datetime.now(UTC),
                    actor="bench",
                )
            started = time.monotonic()
            timing = runner.run_scan(
                runtime.sessions,
                run_id,
                settings=settings,
                engine=runtime.faces,
                originals=runtime.originals,
                actor="bench",
            )
            wall = time.monotonic() - started
            requests = len(server.requests.paths())
        with unit_of_work(runtime.sessions) as session:
            totals = dict(scanning.get_run(session, run_id).totals)
        runtime.db.dispose()
        peer = _peer(root, args.peer_cpus) if args.peer else None
    busy = timing.reading + timing.deciding
    return {
        "site": {
            "pictures": args.pictures,
            "renditions": args.renditions,
            "pages": args.pages,
            "files": files,
        },
        "rate": args.rate,
        "probe_step": args.probe_step,
        "images": timing.images,
        "pictures": timing.pictures,
        "requests": requests,
        "seconds": round(wall, 3),
        "images_per_second": round(timing.images / wall, 3) if wall else None,
        "reading_seconds": round(timing.reading, 3),
        "deciding_seconds": round(timing.deciding, 3),
        "share_fetching": round(timing.reading / busy, 3) if busy else None,
        "share_deciding": round(timing.deciding / busy, 3) if busy else None,
        "seconds_per_picture_decided": round(timing.deciding / timing.pictures, 3)
        if timing.pictures
        else None,
        "polite_rate_seconds_at_2_per_second": round(requests / 2.0, 1),
        "totals": totals,
        "peer": peer,
    }


def _peer(site: Path, cpus: int) -> dict[str, Any]:
    """The face_recognition command line over every image file of the site (no one known)."""
    tool = Path(sys.executable).with_name("face_recognition")
    with tempfile.TemporaryDirectory() as folder:
        known, unknown = Path(folder) / "known", Path(folder) / "unknown"
        known.mkdir()
        unknown.mkdir()
        files = sorted((site / "wp-content" / "uploads").glob("*.jpg"))
        for path in files:
            shutil.copyfile(path, unknown / path.name)
        started = time.perf_counter()
        out = subprocess.run(
            [str(tool), "--cpus", str(cpus), str(known), str(unknown)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        wall = time.perf_counter() - started
    faces = sum(1 for line in out.splitlines() if not line.endswith(",no_persons_found"))
    return {
        "tool": f"face_recognition --cpus {cpus}",
        "files": len(files),
        "seconds": round(wall, 3),
        "images_per_second": round(len(files) / wall, 3) if wall else None,
        "faces_found": faces,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus"
    )
    parser.add_argument("--pictures", type=int, default=60, help="distinct pictures on the site")
    parser.add_argument("--renditions", type=int, default=5, choices=range(1, len(SIZES) + 1))
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="requests per second (the setting's maximum)"
    )
    parser.add_argument("--probe-step", type=int, default=45, help="the face search's angle step (degrees)")
    parser.add_argument("--no-peer", dest="peer", action="store_false", help="skip the peer tool's run")
    parser.add_argument("--peer-cpus", type=int, default=1, help="the peer tool's --cpus")
    print(json.dumps(run(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
