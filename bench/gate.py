"""Benchmark: gate corpus/faces vs the face_recognition command line on the same split.

Enrols one photo per identity (as the tests do), gates every other photo through the same code path
as `gatekeeper gate --out` (decode, detect, match, decide, record, strip, verify, re-check,
publish), and runs `face_recognition --cpus 1 KNOWN UNKNOWN` on the same files. Prints one JSON
object: photos, faces, seconds per photo (median, p95, mean) for both, and whether their
identifications agree.

    uv run python bench/gate.py [--corpus ../shared/corpus] [--repeat 3] > bench/results/gate.json

Per-photo times for the face_recognition tool come from its own per-image CLI function
(`face_recognition_cli.test_image`) timed in-process, so model loading is not counted against it;
the real command is also run once over all photos (`command_seconds_all_photos`, start-up
included). Our side is timed the same way: per photo, in-process, models already loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gatekeeper.cli import main  # noqa: E402
from gatekeeper.cli.gate import GateJob, gate_file  # noqa: E402
from gatekeeper.config import Settings  # noqa: E402
from gatekeeper.photos import gate as gate_service  # noqa: E402
from gatekeeper.runtime import Runtime  # noqa: E402
from helpers import ENROLMENT, enrolment_csv  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 4),
        "p95": round(percentile(values, 0.95), 4),
        "mean": round(statistics.fmean(values), 4),
    }


def split(corpus: Path) -> tuple[dict[str, Path], list[tuple[Path, list[str]]]]:
    import csv

    known = {identity: corpus / "faces" / rel for identity, rel in ENROLMENT.items()}
    enrolled = {str(p) for p in known.values()}
    unknown = []
    with open(corpus / "faces" / "manifest.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            path = corpus / "faces" / row["file"]
            if str(path) not in enrolled:
                unknown.append((path, row["identity"].split(";")))
    return known, unknown


def run_ours(corpus: Path, work: Path, unknown: list[tuple[Path, list[str]]], repeat: int) -> dict[str, Any]:
    from click.testing import CliRunner

    settings = Settings(home=work / "instance")
    runtime = Runtime(settings)
    result = CliRunner().invoke(
        main, ["people", "import", str(enrolment_csv(corpus / "faces", work))], obj=runtime
    )
    if result.exit_code != 0:
        raise SystemExit(f"enrolment failed: {result.output}")
    with runtime.sessions() as session:
        tools = gate_service.load_tools(session, settings, runtime.faces, runtime.originals)
    job = GateJob(channel="website", out_dir=work / "out", actor="bench", caption=None)
    times: list[float] = []
    lines: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for path, _ids in unknown:
            start = time.perf_counter()
            line = gate_file(runtime, tools, path, job)
            times.append(time.perf_counter() - start)
            lines[str(path)] = line
    runtime.db.dispose()
    # The real command on the same instance, start-up and model loading included.
    command = [
        sys.executable,
        "-m",
        "gatekeeper.cli",
        "gate",
        "--channel",
        "website",
        "--json",
        "--out",
        str(work / "out_command"),
        *(str(p) for p, _ in unknown),
    ]
    start = time.perf_counter()
    subprocess.run(
        command,
        check=True,
        capture_output=True,
        env={**os.environ, "GATEKEEPER_HOME": str(work / "instance")},
    )
    return {"times": times, "lines": lines, "command_seconds": time.perf_counter() - start}


def parse_fr(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for raw in stdout.splitlines():
        if "," not in raw:
            continue
        file, name = raw.rsplit(",", 1)
        found.setdefault(Path(file).name, []).append(name.strip())
    return found


def run_face_recognition(
    work: Path, known: dict[str, Path], unknown: list[tuple[Path, list[str]]], repeat: int
) -> dict[str, Any]:
    """Per photo: the tool's own per-image function, timed in-process. In total: the real command."""
    import contextlib
    import io

    from face_recognition import face_recognition_cli as cli

    known_dir = work / "fr_known"
    known_dir.mkdir()
    for identity, path in known.items():
        os.symlink(path, known_dir / f"{identity}{path.suffix}")
    names_known, encodings_known = cli.scan_known_people(str(known_dir))
    times: list[float] = []
    names: dict[str, list[str]] = {}
    for _ in range(repeat):
        for path, _ids in unknown:
            buffer = io.StringIO()
            start = time.perf_counter()
            with contextlib.redirect_stdout(buffer):
                cli.test_image(str(path), names_known, encodings_known, tolerance=0.6)
            times.append(time.perf_counter() - start)
            names[str(path)] = parse_fr(buffer.getvalue()).get(path.name, [])
    tool = shutil.which("face_recognition") or str(Path(sys.executable).parent / "face_recognition")
    all_dir = work / "fr_all"
    all_dir.mkdir()
    for i, (path, _ids) in enumerate(unknown):
        os.symlink(path, all_dir / f"photo{i}{path.suffix}")
    start = time.perf_counter()
    subprocess.run([tool, "--cpus", "1", str(known_dir), str(all_dir)], capture_output=True, check=True)
    batch_seconds = time.perf_counter() - start
    return {"times": times, "names": names, "batch_seconds": batch_seconds}


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--corpus",
        type=Path,
        default=Path(os.environ.get("GATEKEEPER_CORPUS", ROOT.parent / "shared" / "corpus")),
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    known, unknown = split(args.corpus)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ours = run_ours(args.corpus, work, unknown, args.repeat)
        theirs = run_face_recognition(work, known, unknown, args.repeat)
    agreement = []
    for path, expected in unknown:
        line = ours["lines"][str(path)]
        our_ids = sorted(f["person"] for f in line["faces"] if f["person"] and f["outcome"] != "uncertain")
        their_ids = sorted(
            n for n in theirs["names"][str(path)] if n not in ("unknown_person", "no_persons_found")
        )
        agreement.append(
            {
                "photo": str(path.relative_to(args.corpus)),
                "expected": expected,
                "gatekeeper": our_ids,
                "face_recognition": their_ids,
                "gatekeeper_verdict": line["verdict"],
                "agree": our_ids == their_ids,
            }
        )
    faces = sum(len(ours["lines"][str(p)]["faces"]) for p, _ in unknown)
    print(
        json.dumps(
            {
                "benchmark": "gate",
                "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                "photos": len(unknown),
                "faces": faces,
                "repeat": args.repeat,
                "gatekeeper": {
                    "seconds_per_photo": summary(ours["times"]),
                    "command_seconds_all_photos": round(ours["command_seconds"], 3),
                    "does": "decode, detect, encode, match, decide, record, strip, verify, re-check, publish",
                },
                "face_recognition_cli": {
                    "seconds_per_photo": summary(theirs["times"]),
                    "command_seconds_all_photos": round(theirs["batch_seconds"], 3),
                    "does": "decode, detect, encode, compare at tolerance 0.6",
                },
                "identifications_agree": all(a["agree"] for a in agreement),
                "per_photo": agreement,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main_bench()
