"""Benchmark: our metadata strip vs exiftool, mat2 and a plain byte copy, on the same corpus files.

Every file of corpus/metadata and corpus/faces is processed, in one run, by:

- `ours_in_process`: `gatekeeper.media.sanitise` called in this process;
- `ours_cli`: `gatekeeper strip --out DIR FILE...` as one batch process (start-up included);
- `exiftool`: `exiftool -all= -o OUTDIR/ FILE...` as one batch invocation;
- `mat2`: `mat2 --inplace` on copies, one batch invocation (reported unavailable if missing);
- `copy`: `shutil.copyfile`, the baseline.

Residue: every output is read by `exiftool -j -a -G1 -s -ee`; tags outside the allow-list of
tests/media/test_media_roundtrip.py count as residue (total and per file). Prints one JSON object.

    uv run python bench/strip.py [--corpus ../shared/corpus] > bench/results/strip.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatekeeper.media import sanitise
from tests.media.test_media_roundtrip import _SUFFIXES, _is_allowed

MAX_PIXELS = 50_000_000


def _files(corpus: Path) -> list[Path]:
    return sorted(
        p for d in ("metadata", "faces") for p in (corpus / d).rglob("*") if p.suffix.lower() in _SUFFIXES
    )


def _residue(outputs: list[Path]) -> dict[str, Any]:
    if not outputs:
        return {"total": None, "per_file": {}}
    result = subprocess.run(
        ["exiftool", "-j", "-a", "-G1", "-s", "-ee", *map(str, outputs)], capture_output=True, text=True
    )
    per_file = {}
    for tags in json.loads(result.stdout or "[]"):
        name = Path(tags.pop("SourceFile")).name
        per_file[name] = sorted(k for k in tags if not _is_allowed(k))
    return {
        "total": sum(len(v) for v in per_file.values()),
        "files_with_residue": sum(1 for v in per_file.values() if v),
        "per_file": {k: len(v) for k, v in sorted(per_file.items())},
        "examples": sorted({t for v in per_file.values() for t in v})[:25],
    }


def _timed(run: Callable[[], list[Path]], files: list[Path]) -> dict[str, Any]:
    start = time.perf_counter()
    outputs = run()
    seconds = time.perf_counter() - start
    size = sum(f.stat().st_size for f in files) / 1e6
    return {
        "seconds": round(seconds, 4),
        "files_per_second": round(len(files) / seconds, 1),
        "mb_per_second": round(size / seconds, 2),
        "outputs": len(outputs),
        "residue": _residue(outputs),
    }


def main() -> None:
    """Run every tool on the corpus and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--corpus", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus"
    )
    args = parser.parse_args()
    files = _files(args.corpus)
    # Output names keep the input's name (prefixed by index) so residue per file is readable.
    names = {f: f"{i:03d}_{f.name}" for i, f in enumerate(files)}
    work = Path(tempfile.mkdtemp(prefix="strip-bench-"))
    report: dict[str, Any] = {
        "files": len(files),
        "megabytes": round(sum(f.stat().st_size for f in files) / 1e6, 2),
    }

    def copy() -> list[Path]:
        out = work / "copy"
        out.mkdir()
        for f in files:
            shutil.copyfile(f, out / names[f])
        return sorted(out.iterdir())

    def ours() -> list[Path]:
        out = work / "ours"
        out.mkdir()
        for f in files:
            clean = sanitise(f.read_bytes(), max_pixels=MAX_PIXELS)
            (out / (names[f] + clean.extension)).write_bytes(clean.data)
        return sorted(out.iterdir())

    def ours_cli() -> list[Path]:
        out = work / "ours_cli"
        subprocess.run(
            [sys.executable, "-m", "gatekeeper.cli", "strip", "--out", str(out), *map(str, files)],
            capture_output=True,
            check=False,
        )
        return sorted(out.iterdir()) if out.exists() else []

    def exiftool() -> list[Path]:
        out = work / "exiftool"
        out.mkdir()
        src = work / "exiftool_in"
        src.mkdir()
        for f in files:  # links, so exiftool's output names match ours; no bytes copied
            (src / names[f]).symlink_to(f)
        subprocess.run(["exiftool", "-q", "-q", "-all=", "-o", f"{out}/", str(src)], check=False)
        return sorted(out.iterdir())

    def mat2() -> list[Path]:
        out = work / "mat2"
        out.mkdir()
        for f in files:
            shutil.copyfile(f, out / names[f])
        # Included in its time: mat2 has no output-directory mode, so it works on copies.
        subprocess.run(
            ["mat2", "--inplace", *map(str, sorted(out.iterdir()))], capture_output=True, check=False
        )
        return sorted(out.iterdir())

    report["copy"] = _timed(copy, files)
    report["ours_in_process"] = _timed(ours, files)
    report["ours_cli"] = _timed(ours_cli, files)
    report["ours_cli"]["note"] = "one `gatekeeper strip --out` process, interpreter start-up included"
    if shutil.which("exiftool"):
        report["exiftool"] = _timed(exiftool, files)
        report["exiftool"]["note"] = "one `exiftool -all= -o DIR` invocation"
    else:
        report["exiftool"] = {"available": False, "reason": "exiftool not on PATH (libimage-exiftool-perl)"}
    if shutil.which("mat2"):
        version = subprocess.run(["mat2", "--version"], capture_output=True, text=True).stdout.strip()
        report["mat2"] = _timed(mat2, files)
        report["mat2"]["note"] = f"{version}: one `mat2 --inplace` invocation on copies (copy time included)"
    else:
        report["mat2"] = {"available": False, "reason": "mat2 not on PATH (Debian package mat2)"}
    copy_seconds = report["copy"]["seconds"]
    report["ours_in_process"]["relative_to_copy"] = round(
        report["ours_in_process"]["seconds"] / copy_seconds, 1
    )
    report["ours_cli"]["relative_to_copy"] = round(report["ours_cli"]["seconds"] / copy_seconds, 1)
    shutil.rmtree(work)
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
