"""Benchmark face finding: our engine against the face_recognition command line, same files, same run.

    uv run python bench/faces.py [--corpus ../shared/corpus] [--skip-tool]

Builds, in a temporary folder (never in the repository), a copy of the corpus face photos plus a
crowd montage of 36 corpus faces (40-120 px) and a 24 MP image tiled from montages (180 faces of
54-162 px); enrols one photo per identity; then times, on the same two cores:
  - ours, one process, engine `workers=1`: one core, the photos one after another;
  - ours, one process, `workers=2`: each photo's tiles and encodings shared between two processes
    (what `gatekeeper gate` does without `--workers`);
  - ours, a 2-process pool over the photos, each engine `workers=2` (`gate --workers 2`), and the
    same searching only for faces of 48 px and more (what the 32 px minimum costs);
  - `face_recognition --cpus 1` and `--cpus 2` (which shrinks photos over 1600 px before detection),
    and the tool's own steps on two cores without that shrink (searching what we search);
  - then, on two cores, each side again on one small faceless photo (its start-up) and on every photo
    but the 24 MP one, for throughput with and without start-up and without the largest photo.
Also: peak RSS of a fresh process analysing the 24 MP image (and of its forked helpers), and
TemplateIndex matching cost at 10,000 enrolled people. Prints JSON to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gatekeeper.config import Settings
from gatekeeper.faces import DlibFaceEngine, TemplateIndex

ENROL = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "alex_lacamoire": "alex_lacamoire/alex_lacamoire_img1.jpg",
    "kit_harington": "kit_harington/kit_harington_john1.jpeg",
    "rose_leslie": "rose_leslie/rose_leslie_img1.jpg",
}
CROWD_SIZES = [40 + (i * 16) % 81 for i in range(36)]
BIG_SIZES = [54 + (i * 22) % 109 for i in range(30)]  # 54-162 px, 30 per montage, 6 montages
SETTINGS = Settings()

_engine: DlibFaceEngine | None = None
_second_look = True
_workers = 1
_min_detect_px = 32  # the engine's default: faces down to 32 px are found


def load_rgb(path: Path) -> np.ndarray:
    """Decode a photo upright as HxWx3 uint8 RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def manifest(corpus: Path) -> list[tuple[str, list[tuple[int, int, int, int]]]]:
    """(file, face boxes) for every row of corpus/faces/manifest.csv."""
    import csv

    with open(corpus / "faces" / "manifest.csv", newline="", encoding="utf-8") as fh:
        return [
            (row["file"], [tuple(int(v) for v in b.split()) for b in row["face_boxes_ltrb"].split(";") if b])  # type: ignore[misc]
            for row in csv.DictReader(fh)
        ]


def montage(corpus: Path, sizes: list[int]) -> np.ndarray:
    """A grid of corpus faces with half a face of context, one per size, on grey."""
    sources = [(corpus / "faces" / file, box) for file, boxes in manifest(corpus) for box in boxes]
    cell = 2 * max(sizes) + 8
    columns = math.ceil(math.sqrt(len(sizes)))
    canvas = np.full((math.ceil(len(sizes) / columns) * cell, columns * cell, 3), 128, dtype=np.uint8)
    for i, face_px in enumerate(sizes):
        path, (left, top, right, bottom) = sources[i % len(sources)]
        pixels = load_rgb(path)
        margin = (right - left) // 2
        crop = pixels[max(top - margin, 0) : bottom + margin, max(left - margin, 0) : right + margin]
        factor = face_px / (right - left)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crop = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.LANCZOS))
        crop = crop[: cell - 8, : cell - 8]
        x, y = (i % columns) * cell + 4, (i // columns) * cell + 4
        canvas[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    return canvas


def build(corpus: Path, work: Path) -> tuple[Path, Path, dict[str, int]]:
    """KNOWN and UNKNOWN folders for both tools; returns them and the expected face count per file."""
    known, unknown = work / "known", work / "unknown"
    known.mkdir()
    unknown.mkdir()
    for name, file in ENROL.items():
        (known / f"{name}{Path(file).suffix}").write_bytes((corpus / "faces" / file).read_bytes())
    expected = {}
    for file, boxes in manifest(corpus):
        target = unknown / file.replace("/", "__")
        target.write_bytes((corpus / "faces" / file).read_bytes())
        expected[target.name] = len(boxes)
    Image.fromarray(montage(corpus, CROWD_SIZES)).save(unknown / "crowd36.png")
    expected["crowd36.png"] = len(CROWD_SIZES)
    tile = Image.fromarray(montage(corpus, BIG_SIZES)).resize((2000, 2000), Image.Resampling.BICUBIC)
    big = Image.new("RGB", (6000, 4000), (128, 128, 128))
    for i in range(6):
        big.paste(tile, ((i % 3) * 2000, (i // 3) * 2000))
    big.save(unknown / "big24mp.jpg", quality=92)
    # Faces scale with the montage: 2000 / its side.
    expected["big24mp.jpg"] = 6 * len(BIG_SIZES)
    return known, unknown, expected


def side_folders(work: Path, unknown: Path) -> tuple[Path, Path]:
    """A folder with one small faceless photo (what start-up costs: models, enrolment, processes)
    and one with every photo but big24mp.jpg (the photos the tool does not shrink much)."""
    tiny, regular = work / "startup", work / "regular"
    tiny.mkdir()
    regular.mkdir()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(tiny / "grey.png")
    for path in unknown.iterdir():
        if path.name != "big24mp.jpg":
            (regular / path.name).symlink_to(path)
    return tiny, regular


def _init() -> None:
    global _engine
    _engine = DlibFaceEngine(
        min_face_px=SETTINGS.faces.min_face_px,
        min_detect_px=_min_detect_px,
        workers=_workers,
        second_look=_second_look,
    )


def _init_with(workers: int, min_detect_px: int, second_look: bool) -> None:
    """A spawned pool process: the run's settings, then its own engine."""
    global _workers, _min_detect_px, _second_look
    _workers, _min_detect_px, _second_look = workers, min_detect_px, second_look
    _init()


def _analyse(path: str) -> dict[str, Any]:
    assert _engine is not None
    pixels = load_rgb(Path(path))
    start = time.perf_counter()
    analysis = _engine.analyse(pixels)
    seconds = time.perf_counter() - start
    return {
        "file": Path(path).name,
        "mp": pixels.shape[0] * pixels.shape[1] / 1e6,
        "seconds": seconds,
        "faces": len(analysis.faces),
        "encoded": [f.encoding.tolist() for f in analysis.faces if f.encoding is not None],
        "too_small": sum(f.too_small for f in analysis.faces),
        "possible": sum(f.possible for f in analysis.faces),
        "limit": analysis.limit,
        "looked": analysis.looked,
        "dismissed": analysis.dismissed,
        "second_look_faces": sum(f.second_look for f in analysis.faces),
    }


def identify(index: TemplateIndex, encoding: list[float]) -> str | None:
    """The person a face is identified as under the §4 rule at the default settings, else None."""
    matches = index.best_matches(np.array(encoding))
    if not matches or matches[0].distance > SETTINGS.policy.accept_distance:
        return None
    if len(matches) > 1 and matches[1].distance - matches[0].distance < SETTINGS.policy.margin:
        return None
    return matches[0].key


def run_ours(
    known: Path,
    unknown: Path,
    processes: int,
    workers: int,
    min_detect_px: int = 32,
    second_look: bool = True,
) -> dict[str, Any]:
    """Enrol, then analyse every photo in `processes` processes whose engines share each photo among
    `workers`; wall time includes loading the models."""
    global _workers, _min_detect_px, _second_look
    _workers, _min_detect_px, _second_look = workers, min_detect_px, second_look
    start = time.perf_counter()
    # Enrolment in this process shares nothing with forked helpers (workers=1): a fork from a
    # process whose pool threads are running can deadlock the child.
    enrol = DlibFaceEngine(min_face_px=SETTINGS.faces.min_face_px, workers=1, second_look=second_look)
    keys, encodings = [], []
    for path in sorted(known.iterdir()):
        keys.append(path.stem)
        encodings.append(enrol.encode_single(load_rgb(path)))
    index = TemplateIndex(keys, np.stack(encodings))
    paths = sorted(str(p) for p in unknown.iterdir())
    if processes == 1:
        _init()
        results = [_analyse(path) for path in paths]
    else:
        # spawn, not fork: the parent has run dlib's CNN (enrolment), and a forked copy of a
        # process whose BLAS threads have started hangs in its first convolution. Each process
        # loads its own models (counted in the wall time).
        with multiprocessing.get_context("spawn").Pool(
            processes, initializer=_init_with, initargs=(workers, min_detect_px, second_look)
        ) as pool:
            results = pool.map(_analyse, paths, chunksize=1)
    wall = time.perf_counter() - start
    per_file = {}
    for r in results:
        names = [identify(index, e) for e in r.pop("encoded")]
        r["identified"] = sorted(n for n in names if n)
        per_file[r["file"]] = r
    return {"wall_s": wall, "files": per_file}


def run_tool(known: Path, unknown: Path, cpus: int, full_size: bool = False) -> dict[str, Any]:
    """The face_recognition command line on the same folders; faces and names per file from its output.

    full_size: the tool's steps without its 1600 px shrink (tool_full_size), in a fresh interpreter.
    """
    tool = Path(sys.executable).with_name("face_recognition")
    command = [str(tool), "--cpus", str(cpus), str(known), str(unknown)]
    if full_size:
        command = [sys.executable, __file__, "--tool-full-size", str(known), str(unknown), str(cpus)]
    start = time.perf_counter()
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wall = time.perf_counter() - start
    per_file: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        path, _, name = line.rpartition(",")
        entry = per_file.setdefault(Path(path).name, {"faces": 0, "identified": []})
        if name != "no_persons_found":
            entry["faces"] += 1
            if name != "unknown_person":
                entry["identified"].append(name)
    return {"wall_s": wall, "files": per_file}


def _tool_encodings(path: Path) -> list[np.ndarray]:
    """face_recognition's encodings of every face in a whole photo (one upsample, its default)."""
    import face_recognition

    encodings: list[np.ndarray] = face_recognition.face_encodings(face_recognition.load_image_file(str(path)))
    return encodings


def tool_full_size(known: str, unknown: str, cpus: int) -> None:
    """The tool's own per-photo steps without its 1600 px shrink; prints lines as the tool does.

    face_recognition_cli.test_image, minus `thumbnail((1600, 1600))`: face_encodings at its default
    one upsample on the whole photo, then the tool's 0.6 tolerance. Run in a fresh interpreter
    (`--tool-full-size`), so start-up is counted as for the tool's command.
    """
    import face_recognition

    names, known_encodings = [], []
    for path in sorted(Path(known).iterdir()):
        found = _tool_encodings(path)
        if found:
            names.append(path.stem)
            known_encodings.append(found[0])
    photos = sorted(Path(unknown).iterdir())
    with multiprocessing.get_context("fork").Pool(cpus) as pool:
        results = pool.map(_tool_encodings, photos, chunksize=1)
    for path, faces in zip(photos, results, strict=True):
        for face in faces:
            distances = face_recognition.face_distance(known_encodings, face)
            matched = [n for n, d in zip(names, distances, strict=True) if d <= 0.6]
            for name in matched or ["unknown_person"]:
                print(f"{path},{name}")
        if not faces:
            print(f"{path},no_persons_found")


def two_cores(known: Path, unknown: Path, tiny: Path, regular: Path, repeats: int = 3) -> dict[str, Any]:
    """`gate --workers 2`'s engine against `face_recognition --cpus 2`, in three ways.

    all photos (wall, start-up included); the same minus the start-up (a run on one small faceless
    photo: loading models, enrolling, starting processes), i.e. the cost of the photos themselves;
    and every photo but the 24 MP one, which the tool shrinks to 1600 px before searching. Each
    measurement is repeated, the two sides alternating, and the median kept: on a shared machine
    one run can be 10-20 % off.
    """
    folders = {"startup": tiny, "all": unknown, "without_big24mp": regular}
    times: dict[str, dict[str, list[float]]] = {label: {"ours": [], "tool": []} for label in folders}
    for _ in range(repeats):
        for label, folder in folders.items():
            times[label]["ours"].append(run_ours(known, folder, 2, 2)["wall_s"])
            times[label]["tool"].append(run_tool(known, folder, 2)["wall_s"])
    median = {
        label: {side: statistics.median(t) for side, t in sides.items()} for label, sides in times.items()
    }
    result: dict[str, Any] = {
        label: {
            "ours_s": round(median[label]["ours"], 2),
            "tool_s": round(median[label]["tool"], 2),
            "runs": {side: [round(t, 2) for t in ts] for side, ts in times[label].items()},
        }
        for label in folders
    }
    for label in ("all", "without_big24mp"):
        row = result[label]
        row["throughput_vs_tool"] = round(median[label]["tool"] / median[label]["ours"], 2)
        ours = median[label]["ours"] - median["startup"]["ours"]
        theirs = median[label]["tool"] - median["startup"]["tool"]
        row["photos_only"] = {
            "ours_s": round(ours, 2),
            "tool_s": round(theirs, 2),
            "throughput_vs_tool": round(theirs / ours, 2),
        }
    return result


def peak_rss_24mp(path: Path) -> dict[str, Any]:
    """Peak RSS (MB) of a fresh process that loads the engine and analyses the 24 MP photo."""
    script = (
        "import resource, sys, time\n"
        "sys.path.insert(0, 'bench')\n"
        "from faces import load_rgb\n"
        "from gatekeeper.faces import DlibFaceEngine\n"
        "e = DlibFaceEngine()\n"
        "t = time.perf_counter()\n"
        f"a = e.analyse(load_rgb(__import__('pathlib').Path({str(path)!r})))\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(len(a.faces), a.limit, time.perf_counter() - t, rss, child)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    faces, limit, seconds, rss_kb, child_kb = out.split()
    return {
        "faces": int(faces),
        "limit": limit,
        "seconds": float(seconds),
        "peak_rss_mb": int(rss_kb) / 1024,
        # The largest forked helper (its pages shared with the parent until written are counted in both).
        "peak_rss_helper_mb": int(child_kb) / 1024,
    }


def matching_cost(people: int = 10_000, per_person: int = 1, probes: int = 500) -> dict[str, Any]:
    """Mean best_matches time per face against `people` x `per_person` random unit-ish templates."""
    rng = np.random.default_rng(0)
    rows = people * per_person
    templates = rng.normal(size=(rows, 128))
    templates /= np.linalg.norm(templates, axis=1, keepdims=True) * 2  # dlib encodings have norm ~0.5
    keys = [f"P{i % people:05d}" for i in range(rows)]
    index = TemplateIndex(keys, templates)
    faces = templates[rng.integers(0, rows, probes)] + rng.normal(scale=0.02, size=(probes, 128))
    start = time.perf_counter()
    for face in faces:
        index.best_matches(face)
    return {"people": people, "templates": rows, "ms_per_face": (time.perf_counter() - start) / probes * 1e3}


def summarise(
    files: dict[str, dict[str, Any]], expected: dict[str, int], wall: float, mp: float
) -> dict[str, Any]:
    """Totals for one tool over the same photos."""
    return {
        "wall_s": round(wall, 2),
        "s_per_photo": round(wall / len(expected), 3),
        "s_per_mp": round(wall / mp, 3),
        "faces_found": sum(files.get(f, {}).get("faces", 0) for f in expected),
        "faces_expected": sum(expected.values()),
        "identifications": sum(len(files.get(f, {}).get("identified", [])) for f in expected),
        "second_look": {
            key: sum(files.get(f, {}).get(key, 0) for f in expected)
            for key in ("looked", "dismissed", "second_look_faces", "possible")
        },
        "per_special_file": {
            f: {
                "faces": files.get(f, {}).get("faces", 0),
                "identified": len(files.get(f, {}).get("identified", [])),
            }
            for f in ("crowd36.png", "big24mp.jpg", "group__obama_and_biden.jpg")
        },
    }


def second_look_cost(
    known: Path, unknown: Path, expected: dict[str, int], *, skip_tool: bool
) -> dict[str, Any]:
    """The same 2-process pool with the second look (the default) and without, and the tool, side by side."""
    report: dict[str, Any] = {}
    walls = {}
    for second_look in (False, True):
        ours = run_ours(known, unknown, 2, 2, second_look=second_look)
        mp = sum(r["mp"] for r in ours["files"].values())
        key = "ours_2_process_2_workers" + ("" if second_look else "_without_second_look")
        report[key] = summarise(ours["files"], expected, ours["wall_s"], mp)
        walls[second_look] = ours["wall_s"]
        report["megapixels"] = round(mp, 1)
    report["second_look_cost"] = {
        "s_per_photo": round((walls[True] - walls[False]) / len(expected), 3),
        "s_per_mp": round((walls[True] - walls[False]) / report["megapixels"], 3),
        "share_of_wall": round(walls[True] / walls[False] - 1, 3),
    }
    if not skip_tool:
        tool = run_tool(known, unknown, 2)
        mp = report["megapixels"]
        report["face_recognition_cpus_2"] = summarise(tool["files"], expected, tool["wall_s"], mp)
    return report


def main() -> None:
    """Build the photo set, run every measurement, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus", type=Path, default=Path(os.environ.get("GATEKEEPER_CORPUS", "../shared/corpus"))
    )
    parser.add_argument("--skip-tool", action="store_true")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the 2-process pool with and without the second look, and the tool with --cpus 2",
    )
    parser.add_argument(
        "--tool-full-size", nargs=3, metavar=("KNOWN", "UNKNOWN", "CPUS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.tool_full_size:
        known, unknown, cpus = args.tool_full_size
        tool_full_size(known, unknown, int(cpus))
        return
    report: dict[str, Any] = {"cores": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        known, unknown, expected = build(args.corpus, Path(tmp))
        report["photos"] = len(expected)
        report["peak_rss_24mp"] = peak_rss_24mp(unknown / "big24mp.jpg")
        mp = 0.0
        if args.quick:
            report.update(second_look_cost(known, unknown, expected, skip_tool=args.skip_tool))
            json.dump(report, sys.stdout, indent=1)
            print()
            return
        for processes, workers in ((1, 1), (1, 2), (2, 2)):
            ours = run_ours(known, unknown, processes, workers)
            mp = sum(r["mp"] for r in ours["files"].values())
            key = f"ours_{processes}_process_{workers}_workers"
            report[key] = summarise(ours["files"], expected, ours["wall_s"], mp)
            if workers == 1:
                report[key]["analyse_s_per_mp_one_core"] = round(
                    sum(r["seconds"] for r in ours["files"].values()) / mp, 3
                )
                report["ours_per_file_one_core"] = {
                    name: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                    for name, r in sorted(ours["files"].items())
                }
        report["megapixels"] = round(mp, 1)
        # What the 32 px minimum costs: the same pool searching only for faces of 48 px and more.
        coarser = run_ours(known, unknown, 2, 2, min_detect_px=48)
        report["ours_2_process_2_workers_min_detect_48"] = summarise(
            coarser["files"], expected, coarser["wall_s"], mp
        )
        if not args.skip_tool:
            for cpus in (1, 2):
                tool = run_tool(known, unknown, cpus)
                report[f"face_recognition_cpus_{cpus}"] = summarise(
                    tool["files"], expected, tool["wall_s"], mp
                )
            report["tool_per_file"] = {n: tool["files"].get(n) for n in sorted(expected)}
            # The tool searching what we search: whole photos, not a 1600 px copy.
            full = run_tool(known, unknown, 2, full_size=True)
            report["face_recognition_full_size_cpus_2"] = summarise(
                full["files"], expected, full["wall_s"], mp
            )
            report["two_cores"] = two_cores(known, unknown, *side_folders(Path(tmp), unknown))
    report["matching"] = [matching_cost(), matching_cost(per_person=3)]
    report["engine_settings"] = {
        k: DlibFaceEngine.__init__.__kwdefaults__[k] for k in DlibFaceEngine.__init__.__kwdefaults__
    }
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
