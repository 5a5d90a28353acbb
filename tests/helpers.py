"""Small builders shared by tests: people CSVs, enrolled people and CLI invocations."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import factories
from click.testing import CliRunner, Result

from gatekeeper.cli import main
from gatekeeper.consent.mis_csv import COLUMNS

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


def add_person(runtime: Any, external_id: str, **arguments: Any) -> int:
    """factories.person in a unit of work of its own, enrolling any photos with the runtime's face
    engine (by default an adult consenting to the website); the person's database id."""
    from consent_db.session import unit_of_work

    with unit_of_work(runtime.sessions) as session:
        made = factories.person(
            session, external_id, **{"engine": runtime.faces, "settings": runtime.settings, **arguments}
        )
        return made.id


def enrol_corpus(runtime: Any, corpus_faces: Path, **overrides_by_id: dict[str, Any]) -> None:
    """One enrolment photo per corpus identity, each an adult consenting to the website and to face
    matching, as an import of enrolment_csv makes them; the overrides are factories.person's
    arguments for an identity."""
    for identity, rel in ENROLMENT.items():
        add_person(runtime, identity, **{"photos": [corpus_faces / rel], **overrides_by_id.get(identity, {})})


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


def add_people(runtime: Any, now: Any, *external_ids: str, channels: str = "website") -> dict[str, int]:
    """Adults without templates who consented to `channels` (";"-separated) and to face matching;
    their database ids by external id."""
    from consent_db.session import unit_of_work

    with unit_of_work(runtime.sessions) as session:
        chosen = [c for c in channels.split(";") if c]
        made = [
            factories.person(session, e, channels=chosen, biometric=True, now=now, actor="t", source="t")
            for e in external_ids
        ]
        return {p.external_id: p.id for p in made}


def seed_gated_photo(
    runtime: Any,
    data: bytes,
    *,
    now: Any,
    person_ids: tuple[int, ...] = (),
    channel: str = "website",
    status: str = "publishable",
) -> int:
    """A photo recorded as the gate records it: original kept, one decision, one face per person.

    Stands in for the face engine (which these tests do not exercise): each face is an accepted
    match at distance 0.3, so the verdict depends only on the people's consent.
    """
    import hashlib

    from consent_db.models import Decision, Face, Photo
    from consent_db.session import unit_of_work
    from gatekeeper.photos.gate import original_key

    sha = hashlib.sha256(data + channel.encode()).hexdigest()
    runtime.originals.put(original_key(sha), data)
    with unit_of_work(runtime.sessions) as session:
        photo = Photo(
            sha256=sha,
            channel=channel,
            original_key=original_key(sha),
            media_format="jpeg",
            status=status,
            reasons=[],
            uploaded_by="t",
            created_at=now,
            decided_at=now,
        )
        decision = Decision(photo=photo, verdict=status, reasons=[], decided_at=now, decided_by="t")
        for position, person_id in enumerate(person_ids):
            decision.faces.append(
                Face(
                    position=position,
                    left=10 + 100 * position,
                    top=10,
                    right=90 + 100 * position,
                    bottom=90,
                    outcome="consented",
                    reasons=[],
                    person_id=person_id,
                    distance=0.3,
                )
            )
        session.add(decision)
        session.flush()
        return photo.id
