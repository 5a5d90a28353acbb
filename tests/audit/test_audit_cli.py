"""`gatekeeper audit`: show, export, head, and verify anchored on a head kept outside the database."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from consent_db import audit
from consent_db.models import AuditEvent
from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime
from helpers import run

SUBJECTS = ["photo:1", "person:2", "photo:1", "face:3", "photo:4"]


@pytest.fixture
def logged(runtime: Runtime, now: datetime) -> Runtime:
    """Five events, one day apart, the last at `now`."""
    with unit_of_work(runtime.sessions) as session:
        for days, subject in zip(range(4, -1, -1), SUBJECTS, strict=True):
            audit.append(
                session,
                at=now - timedelta(days=days),
                actor="cli:staff",
                action="test.event",
                subject=subject,
                details={"note": f"day -{days}", "name": "Zoë"},
            )
    return runtime


def rows_in(path: Path) -> int:
    with path.open(newline="", encoding="utf-8") as fh:
        return len(list(csv.DictReader(fh)))


def events_json(runtime: Runtime, *args: str) -> list[dict[str, object]]:
    result = run(runtime, "audit", "show", "--json", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_audit_show_prints_every_event_oldest_first(logged: Runtime, now: datetime) -> None:
    result = run(logged, "audit", "show")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert lines[-1].startswith(f"#5 {now.isoformat()} cli:staff test.event photo:4 ")
    assert lines[0].endswith('{"name": "Zoë", "note": "day -4"}')


def test_audit_show_json_carries_the_hashes_of_the_chain(logged: Runtime) -> None:
    events = events_json(logged)
    assert [e["subject"] for e in events] == SUBJECTS
    assert events[0]["prev_hash"] == audit.GENESIS
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(events))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--subject", "photo:1"], ["photo:1", "photo:1"]),
        (["--since", "2026-06-14"], ["face:3", "photo:4"]),
        (["--since", "2026-06-14T12:00:01"], ["photo:4"]),
        (["--since", "2026-06-13", "--subject", "photo:1"], ["photo:1"]),
        (["--since", "2026-06-14", "--subject", "photo:1"], []),
        (["--subject", "person:99"], []),
    ],
)
def test_audit_show_filters_by_subject_and_date(
    logged: Runtime, args: list[str], expected: list[str]
) -> None:
    assert [e["subject"] for e in events_json(logged, *args)] == expected


def test_audit_show_says_when_nothing_matches(logged: Runtime) -> None:
    result = run(logged, "audit", "show", "--subject", "photo:404")
    assert (result.exit_code, result.stdout) == (0, "")
    assert "no audit events match" in result.stderr


def test_audit_export_csv_lets_anyone_recompute_the_chain(logged: Runtime) -> None:
    result = run(logged, "audit", "export", "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert list(rows[0]) == ["id", "at", "actor", "action", "subject", "details", "prev_hash", "hash"]
    assert [r["subject"] for r in rows] == SUBJECTS
    prev = audit.GENESIS
    for row in rows:
        recomputed = audit.event_hash(
            prev,
            datetime.fromisoformat(row["at"]),
            row["actor"],
            row["action"],
            row["subject"],
            json.loads(row["details"]),
        )
        assert (row["prev_hash"], row["hash"]) == (prev, recomputed)
        prev = row["hash"]


def test_audit_export_writes_a_file_and_never_overwrites_one_silently(
    logged: Runtime, tmp_path: Path
) -> None:
    target = tmp_path / "audit.csv"
    result = run(logged, "audit", "export", "--csv", "--since", "2026-06-15", "--output", target)
    assert result.exit_code == 0, result.output
    assert "1 events written to" in result.stderr
    assert rows_in(target) == 1
    again = run(logged, "audit", "export", "--csv", "--output", target)
    assert again.exit_code == 1 and "exists" in again.output
    assert rows_in(target) == 1
    forced = run(logged, "audit", "export", "--csv", "--output", target, "--force")
    assert forced.exit_code == 0, forced.output
    assert rows_in(target) == 5


def test_audit_export_json_lines(logged: Runtime) -> None:
    result = run(logged, "audit", "export", "--json", "--subject", "photo:4")
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == [5]


def test_audit_head_prints_the_count_and_the_last_hash(logged: Runtime) -> None:
    last = events_json(logged)[-1]["hash"]
    result = run(logged, "audit", "head")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"5 {last}\n"
    assert f"audit verify --head {last}" in result.stderr
    as_json = run(logged, "audit", "head", "--json")
    assert json.loads(as_json.stdout) == {"events": 5, "head": last}


def test_an_empty_chain_has_the_genesis_head_and_verifies_against_it(runtime: Runtime) -> None:
    assert run(runtime, "audit", "head").stdout == f"0 {audit.GENESIS}\n"
    assert run(runtime, "audit", "verify", "--head", audit.GENESIS).exit_code == 0


def test_verify_against_the_recorded_head_notices_that_the_last_events_were_deleted(logged: Runtime) -> None:
    head = run(logged, "audit", "head").stdout.split()[1]
    intact = run(logged, "audit", "verify", "--head", head)
    assert intact.exit_code == 0, intact.output
    assert "audit chain intact: 5 events; the recorded head is event 5 of the chain (0 recorded since)" in (
        intact.stdout
    )
    with unit_of_work(logged.sessions) as session:
        session.execute(delete(AuditEvent).where(AuditEvent.id > 3))
    # The shorter chain is consistent: without the head nothing shows what is missing...
    assert run(logged, "audit", "verify").exit_code == 0
    # ...and against the head kept elsewhere, the deletion is plain.
    truncated = run(logged, "audit", "verify", "--head", head)
    assert truncated.exit_code == 1
    assert f"the recorded head {head} is not in the audit chain (3 events" in truncated.output


def test_verify_counts_events_recorded_after_the_head(logged: Runtime, now: datetime) -> None:
    head = run(logged, "audit", "head").stdout.split()[1]
    with unit_of_work(logged.sessions) as session:
        audit.append(session, at=now, actor="cli:staff", action="test.event", subject="photo:5")
    result = run(logged, "audit", "verify", "--head", head)
    assert result.exit_code == 0, result.output
    assert "6 events; the recorded head is event 5 of the chain (1 recorded since)" in result.stdout


def test_verify_still_finds_an_edited_event(logged: Runtime) -> None:
    head = run(logged, "audit", "head").stdout.split()[1]
    with unit_of_work(logged.sessions) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.id == 2)).one()
        event.details = {"note": "nothing to see"}
    result = run(logged, "audit", "verify", "--head", head)
    assert result.exit_code == 1
    assert "audit chain broken at event 2" in result.output


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "0" * 63])
def test_verify_refuses_a_head_that_is_not_a_hash(runtime: Runtime, bad: str) -> None:
    result = run(runtime, "audit", "verify", "--head", bad)
    assert result.exit_code == 2
    assert "64 hexadecimal characters" in result.output


def test_audit_show_person_gathers_their_record_photos_and_faces(runtime: Runtime, now: datetime) -> None:
    """--person EXTERNAL_ID: the person's own events, and those of every photo and face matched to
    them, and nothing about anyone else's photos."""
    from consent_db.models import Face
    from gatekeeper.consent import records as consent
    from helpers import add_people, seed_gated_photo

    ids = add_people(runtime, now, "P1", "P2")
    mine = seed_gated_photo(runtime, b"photo of P1", now=now, person_ids=(ids["P1"],))
    both = seed_gated_photo(runtime, b"P1 and P2", now=now, person_ids=(ids["P2"], ids["P1"]))
    theirs = seed_gated_photo(runtime, b"photo of P2", now=now, person_ids=(ids["P2"],))
    with unit_of_work(runtime.sessions) as session:
        consent.withdraw_consent(
            session, "P1", ("website",), settings=runtime.settings, now=now, actor="cli:dpo"
        )
        p1_faces = session.scalars(select(Face.id).where(Face.person_id == ids["P1"])).all()
        for photo_id in (mine, both, theirs):
            audit.append(session, at=now, actor="t", action="photo.seen", subject=f"photo:{photo_id}")
        for face_id in p1_faces:
            audit.append(session, at=now, actor="t", action="face.seen", subject=f"face:{face_id}")

    subjects = {e["subject"] for e in events_json(runtime, "--person", "P1")}

    assert subjects == {f"person:{ids['P1']}", f"photo:{mine}", f"photo:{both}"} | {
        f"face:{f}" for f in p1_faces
    }
    assert "consent.withdraw" in {e["action"] for e in events_json(runtime, "--person", "P1")}
    exported = run(runtime, "audit", "export", "--json", "--person", "P2")
    assert exported.exit_code == 0, exported.output
    assert f"photo:{theirs}" in exported.output and f'photo:{mine}"' not in exported.output


def test_audit_show_person_unknown_is_a_clear_error(runtime: Runtime) -> None:
    result = run(runtime, "audit", "show", "--person", "NOBODY")
    assert result.exit_code != 0
    assert "NOBODY" in result.output
