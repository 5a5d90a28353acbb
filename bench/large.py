"""Benchmark large photos: the gate's face path per channel against the face_recognition tool.

    uv run python bench/large.py [--corpus ../shared/corpus] [--photos 8] [--skip-tool] [--skip-print]

Builds, in a temporary folder (never in the repository), 12 MP and 24 MP camera-sized JPEGs from
corpus material: a faceless corpus camera photo stretched as the background, and 10-40 corpus
faces pasted on it, a quarter of them turned by a random angle, some at the minimum published size
(just above 32 px in a 2048 px website copy). Then, on the same two cores and the same files:
  - ours for `website` (copies of 2048 px): decode at the published size (JPEG DCT scaling), search
    every angle for faces from 32 published px, encode, match; a 2-process pool (`gate --workers 2`);
  - the same turned in 90° steps only (GATEKEEPER_PROBE_STEP=90), and upright only (the cost of
    the all-angle search on its own);
  - ours for `print` (full size), which the face time limit may cut short on the largest photos;
  - `face_recognition --cpus 2` on the same folder (it shrinks photos to 1600 px and searches upright).
Faces found are counted against where faces were placed (a hit is a box centred within half a
face of a placed face); the tool reports no boxes, so for it the count is its number of faces.
Peak RSS of one fresh process analysing a 24 MP photo for each channel. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from faces import ENROL, SETTINGS, identify, load_rgb, manifest

from gatekeeper import media
from gatekeeper.faces import DlibFaceEngine, TemplateIndex

BACKGROUND = "metadata/apple_iphone6_gps.jpg"
SIZES = {"12mp": (4000, 3000), "24mp": (6000, 4000)}
WEBSITE_EDGE = 2048

_engine: DlibFaceEngine | None = None
_long_edge: int | None = None
_probe_step = 45
_second_look = True


def build(
    corpus: Path, folder: Path, count: int, seed: int = 7
) -> dict[str, list[tuple[float, float, float]]]:
    """Write `count` photos (half 12 MP, half 24 MP); returns each file's placed faces (cx, cy, width)."""
    rng = random.Random(seed)
    sources = [(corpus / "faces" / f, box) for f, boxes in manifest(corpus) for box in boxes]
    decoded: dict[Path, np.ndarray] = {}
    with Image.open(corpus / BACKGROUND) as bg:
        background = bg.convert("RGB")
    placed: dict[str, list[tuple[float, float, float]]] = {}
    for n in range(count):
        label = "12mp" if n % 2 == 0 else "24mp"
        width, height = SIZES[label]
        canvas = background.resize((width, height), Image.Resampling.BICUBIC)
        smallest = math.ceil(34 * max(width, height) / WEBSITE_EDGE)  # 34 px in the website copy
        faces: list[tuple[float, float, float]] = []
        occupied: list[tuple[int, int, int, int]] = []
        for i in range(rng.randint(10, 40)):
            path, (left, top, right, bottom) = sources[rng.randrange(len(sources))]
            if path not in decoded:
                decoded[path] = load_rgb(path)
            face_px = smallest if i % 5 == 0 else rng.randint(smallest, 3 * smallest)
            angle = rng.uniform(0, 360) if i % 4 == 1 else 0.0
            margin = (right - left) // 2
            pixels = decoded[path]
            crop = Image.fromarray(
                np.ascontiguousarray(
                    pixels[max(top - margin, 0) : bottom + margin, max(left - margin, 0) : right + margin]
                )
            )
            factor = face_px / (right - left)
            crop = crop.resize(
                (max(1, round(crop.width * factor)), max(1, round(crop.height * factor))),
                Image.Resampling.LANCZOS,
            )
            if angle:
                crop = crop.rotate(
                    angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128)
                )
            for _ in range(50):  # a free spot, faces never overlapping
                x, y = rng.randrange(0, width - crop.width), rng.randrange(0, height - crop.height)
                spot = (x, y, x + crop.width, y + crop.height)
                if not any(
                    spot[0] < o[2] and o[0] < spot[2] and spot[1] < o[3] and o[1] < spot[3] for o in occupied
                ):
                    break
            else:
                continue
            occupied.append(spot)
            canvas.paste(crop, (x, y))
            faces.append((x + crop.width / 2, y + crop.height / 2, face_px))
        name = f"{n:02d}_{label}.jpg"
        canvas.save(folder / name, quality=90)
        placed[name] = faces
    return placed


def _init() -> None:
    global _engine
    _engine = DlibFaceEngine(
        min_face_px=SETTINGS.faces.min_face_px, workers=1, probe_step=_probe_step, second_look=_second_look
    )


def _init_with(long_edge: int | None, probe_step: int, second_look: bool) -> None:
    """A spawned pool process: the run's settings, then its own engine."""
    global _long_edge, _probe_step, _second_look
    _long_edge, _probe_step, _second_look = long_edge, probe_step, second_look
    _init()


def _analyse(path: str) -> dict[str, Any]:
    assert _engine is not None
    start = time.perf_counter()
    source = media.decode_source(
        Path(path).read_bytes(), max_pixels=SETTINGS.media.max_pixels, long_edge=_long_edge
    )
    decoded = time.perf_counter()
    analysis = _engine.analyse(source.image.pixels)
    scale = source.scale
    return {
        "file": Path(path).name,
        "decode_s": decoded - start,
        "analyse_s": time.perf_counter() - decoded,
        "limit": analysis.limit,
        "boxes": [[v / scale for v in f.box] for f in analysis.faces],
        "encoded": [f.encoding.tolist() for f in analysis.faces if f.encoding is not None],
        "possible": sum(f.possible for f in analysis.faces),
        "looked": analysis.looked,
        "dismissed": analysis.dismissed,
        "second_look_faces": sum(f.second_look for f in analysis.faces),
    }


def run_ours(
    known: Path, photos: Path, long_edge: int | None, probe_step: int, second_look: bool = True
) -> dict[str, Any]:
    """Enrol, then gate-analyse every photo in a 2-process pool; wall time includes loading models."""
    global _long_edge, _probe_step, _second_look
    _long_edge, _probe_step, _second_look = long_edge, probe_step, second_look
    start = time.perf_counter()
    _init()
    assert _engine is not None
    keys = [p.stem for p in sorted(known.iterdir())]
    index = TemplateIndex(
        keys, np.stack([_engine.encode_single(load_rgb(p)) for p in sorted(known.iterdir())])
    )
    # spawn, not fork: the parent has run dlib's CNN (enrolment), and a forked copy of a process
    # whose BLAS threads have started hangs in its first convolution.
    with multiprocessing.get_context("spawn").Pool(
        2, initializer=_init_with, initargs=(long_edge, probe_step, second_look)
    ) as pool:
        results = pool.map(_analyse, sorted(str(p) for p in photos.iterdir()), chunksize=1)
    wall = time.perf_counter() - start
    for r in results:
        r["identified"] = sorted(n for n in (identify(index, e) for e in r.pop("encoded")) if n)
    return {"wall_s": wall, "files": {r["file"]: r for r in results}}


def run_tool(known: Path, photos: Path) -> dict[str, Any]:
    """`face_recognition --cpus 2`: faces and names per file from its output."""
    tool = Path(sys.executable).with_name("face_recognition")
    start = time.perf_counter()
    out = subprocess.run(
        [str(tool), "--cpus", "2", str(known), str(photos)], capture_output=True, text=True, check=True
    ).stdout
    wall = time.perf_counter() - start
    files: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        path, _, name = line.rpartition(",")
        entry = files.setdefault(Path(path).name, {"faces": 0, "identified": []})
        if name != "no_persons_found":
            entry["faces"] += 1
            if name != "unknown_person":
                entry["identified"].append(name)
    return {"wall_s": wall, "files": files}


def found(boxes: list[list[float]], placed: list[tuple[float, float, float]]) -> int:
    """How many placed faces have a box centred within half a face of them."""
    return sum(
        any(math.hypot((b[0] + b[2]) / 2 - cx, (b[1] + b[3]) / 2 - cy) <= width for b in boxes)
        for cx, cy, width in placed
    )


def summarise(
    run: dict[str, Any], placed: dict[str, list[tuple[float, float, float]]], mp: float
) -> dict[str, Any]:
    files = run["files"]
    photos = len(placed)
    summary: dict[str, Any] = {
        "wall_s": round(run["wall_s"], 2),
        "s_per_photo": round(run["wall_s"] / photos, 2),
        "photos_per_s": round(photos / run["wall_s"], 3),
        "s_per_mp": round(run["wall_s"] / mp, 3),
        "faces_placed": sum(len(p) for p in placed.values()),
        "faces_reported": sum(len(f["boxes"]) if "boxes" in f else f["faces"] for f in files.values()),
        "identifications": sum(len(f["identified"]) for f in files.values()),
    }
    if all("looked" in f for f in files.values()):
        summary["second_look"] = {
            key: sum(f[key] for f in files.values()) for key in ("looked", "dismissed", "second_look_faces")
        }
    if all("boxes" in f for f in files.values()):
        summary["placed_faces_found"] = sum(found(files[n]["boxes"], p) for n, p in placed.items())
        summary["possible_faces"] = sum(f["possible"] for f in files.values())
        summary["photos_cut_short"] = sum(f["limit"] is not None for f in files.values())
        summary["decode_cpu_s"] = round(sum(f["decode_s"] for f in files.values()), 2)
        summary["analyse_cpu_s"] = round(sum(f["analyse_s"] for f in files.values()), 2)
    return summary


def peak_rss(path: Path, long_edge: int | None) -> dict[str, Any]:
    """Peak RSS (MB) of a fresh process that gate-analyses one photo for a channel's size."""
    script = (
        "import resource, sys, time\n"
        "from pathlib import Path\n"
        "from gatekeeper import media\n"
        "from gatekeeper.faces import DlibFaceEngine\n"
        "e = DlibFaceEngine()\n"
        "t = time.perf_counter()\n"
        f"data = Path({str(path)!r}).read_bytes()\n"
        f"s = media.decode_source(data, max_pixels=50_000_000, long_edge={long_edge!r})\n"
        "a = e.analyse(s.image.pixels)\n"
        "usage = resource.getrusage\n"
        "print(len(a.faces), a.limit, time.perf_counter() - t,\n"
        "      usage(resource.RUSAGE_SELF).ru_maxrss, usage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    faces, limit, seconds, rss_kb, child_kb = out.split()
    return {
        "faces": int(faces),
        "limit": None if limit == "None" else limit,
        "seconds": round(float(seconds), 2),
        "peak_rss_mb": round(int(rss_kb) / 1024),
        "peak_rss_helper_mb": round(int(child_kb) / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("GATEKEEPER_CORPUS", "../shared/corpus"))
    )
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--skip-tool", action="store_true")
    parser.add_argument("--skip-print", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="website with and without the second look, the tool, peak RSS (website and print)",
    )
    args = parser.parse_args()
    report: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        known, photos = work / "known", work / "photos"
        known.mkdir()
        photos.mkdir()
        for name, file in ENROL.items():
            (known / f"{name}{Path(file).suffix}").write_bytes((args.corpus / "faces" / file).read_bytes())
        placed = build(args.corpus, photos, args.photos)
        mp = sum(SIZES[n.split("_")[1][:4]][0] * SIZES[n.split("_")[1][:4]][1] for n in placed) / 1e6
        report["photos"] = {
            "count": len(placed),
            "megapixels": mp,
            "faces": sum(len(p) for p in placed.values()),
        }
        report["website"] = summarise(run_ours(known, photos, WEBSITE_EDGE, 45), placed, mp)
        report["website_without_second_look"] = summarise(
            run_ours(known, photos, WEBSITE_EDGE, 45, second_look=False), placed, mp
        )
        extra = report["website"]["wall_s"] - report["website_without_second_look"]["wall_s"]
        report["second_look_cost_website"] = {
            "s_per_photo": round(extra / len(placed), 3),
            "s_per_mp": round(extra / mp, 4),
        }
        if args.quick:
            big = next(photos / n for n in sorted(placed) if "24mp" in n)
            report["peak_rss_24mp_website"] = peak_rss(big, WEBSITE_EDGE)
            report["peak_rss_24mp_print"] = peak_rss(big, None)
            if not args.skip_tool:
                report["face_recognition_cpus_2"] = summarise(run_tool(known, photos), placed, mp)
            json.dump(report, sys.stdout, indent=1)
            print()
            return
        report["website_probe_step_90"] = summarise(run_ours(known, photos, WEBSITE_EDGE, 90), placed, mp)
        report["website_upright_only"] = summarise(run_ours(known, photos, WEBSITE_EDGE, 0), placed, mp)
        if not args.skip_tool:
            report["face_recognition_cpus_2"] = summarise(run_tool(known, photos), placed, mp)
            tool = report["face_recognition_cpus_2"]["photos_per_s"]
            for key in ("website", "website_probe_step_90", "website_upright_only"):
                report[f"{key}_vs_tool_throughput"] = round(report[key]["photos_per_s"] / tool, 2)
        if not args.skip_print:
            report["print"] = summarise(run_ours(known, photos, None, 45), placed, mp)
        big = next(photos / n for n in sorted(placed) if "24mp" in n)
        report["peak_rss_24mp_website"] = peak_rss(big, WEBSITE_EDGE)
        if not args.skip_print:
            report["peak_rss_24mp_print"] = peak_rss(big, None)
    report["rusage_children_max_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    )
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
