"""Small builders shared by tests: people CSVs and CLI invocations."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from gatekeeper.cli import main
from gatekeeper.services.people_csv import COLUMNS

# One enrolment photo per identity, never from group/.
ENROLMENT = {
    "obama": "obama/obama.jpg",
    "biden": "biden/biden.jpg",
    "alex_lacamoire": "alex_lacamoire/alex_lacamoire_img1.jpg",
    "kit_harington": "kit_harington/kit_harington_john1.jpeg",
    "rose_leslie": "rose_leslie/rose_leslie_img1.jpg",
}


def person_row(external_id: str, photo: Path | None, csv_dir: Path, **overrides: str) -> dict[str, str]:
    """A CSV row for an adult who consented to the website, with one enrolment photo."""
    row = {
        "external_id": external_id,
        "name": external_id.replace("_", " ").title(),
        "date_of_birth": "1980-01-01",
        "photos": os.path.relpath(photo, csv_dir) if photo else "",
        "biometric_consent": "yes" if photo else "no",
        "channels": "website",
        "granted_by": "self",
        "granted_on": "2025-09-01",
        "valid_until": "",
        "named": "no",
    }
    row.update(overrides)
    return row


def write_csv(path: Path, rows: list[dict[str, str]], *, bom: bool = False, extra: bool = False) -> Path:
    """Write a people CSV (optionally with a BOM and an extra column)."""
    columns = list(COLUMNS) + (["homeroom"] if extra else [])
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({**({"homeroom": "7B"} if extra else {}), **row})
    return path


def enrolment_csv(corpus_faces: Path, tmp: Path, **overrides_by_id: dict[str, str]) -> Path:
    """A CSV enrolling one photo per corpus identity, all consenting to the website."""
    rows = [
        person_row(identity, corpus_faces / rel, tmp, **overrides_by_id.get(identity, {}))
        for identity, rel in ENROLMENT.items()
    ]
    return write_csv(tmp / "people.csv", rows)


def run(runtime: Any, *args: str | Path) -> Result:
    """Invoke the `gatekeeper` command in-process against `runtime`."""
    return CliRunner().invoke(main, [str(a) for a in args], obj=runtime, catch_exceptions=False)


def gate_json(runtime: Any, channel: str, *paths: Path, out: Path | None = None) -> list[dict[str, Any]]:
    """Run `gatekeeper gate --json` and parse its lines."""
    args: list[str | Path] = ["gate", "--channel", channel, "--json"]
    if out is not None:
        args += ["--out", out]
    result = run(runtime, *args, *paths)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]
