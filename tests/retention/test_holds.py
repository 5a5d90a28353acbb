"""Holds: another lawful reason keeps a photo from erasure and retention purge, audited and reported."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import select

from consent_db import audit
from consent_db.models import AuditEvent, Photo, PurgeReport
from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime
from helpers import add_people, run, seed_gated_photo
from workers import JobQueue


@pytest.fixture
def photo_bytes(corpus: Any) -> bytes:
    return (corpus.faces_dir / "biden/biden2.jpg").read_bytes()


def _photo_ids(runtime: Runtime) -> list[int]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(Photo.id).order_by(Photo.id)))


def _actions(runtime: Runtime, action: str) -> list[AuditEvent]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_erasure_keeps_a_held_photo_reports_it_and_still_takes_its_copy_down(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    held = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    other = seed_gated_photo(runtime, photo_bytes + b"z", now=now, person_ids=(ids["ann"],))
    for photo_id in (held, other):
        assert run(runtime, "publish", photo_id, "--channel", "website").exit_code == 0
    assert len(list(runtime.published.iter_keys())) == 2
    result = run(runtime, "photos", "hold", held, "--reason", "evidence in a safeguarding case")
    assert result.exit_code == 0, result.output
    erased = run(runtime, "people", "erase", "ann", "--json")
    assert erased.exit_code == 0, erased.output
    report = json.loads(erased.stdout)
    assert report["deleted"]["photos"] == 1
    assert report["held"] == [{"kind": "photo", "id": held, "reason": "evidence in a safeguarding case"}]
    assert _photo_ids(runtime) == [held]
    # Her consent is gone, so the held photo's published copy goes; the photo itself is kept.
    assert len(list(runtime.published.iter_keys())) == 1
    JobQueue.of(runtime).drain(max_wait=5)
    assert list(runtime.published.iter_keys()) == []
    assert _photo_ids(runtime) == [held]
    [event] = _actions(runtime, "photo.held")
    assert event.details["reason"] == "evidence in a safeguarding case"
    with unit_of_work(runtime.sessions) as session:
        assert audit.verify(session).ok


def test_a_held_photo_stays_out_of_the_purge_until_released(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    blocked = seed_gated_photo(runtime, photo_bytes, now=now, status="blocked")
    assert run(runtime, "photos", "hold", blocked, "--reason", "legal claim").exit_code == 0
    planned = run(runtime, "purge", "--dry-run", "--as-of", "2026-07-16", "--json")
    [line] = json.loads(planned.stdout)["due"]
    assert (line["id"], line["held"]) == (blocked, "legal claim")
    # Purge runs on today's clock; the photo is due long after `now`, so purge as if later.
    from workers import run_purge

    later = datetime.fromisoformat("2026-07-16T00:00:00+00:00")
    kept = run_purge(runtime, now=later, actor="t")
    assert kept.deleted.get("photos", 0) == 0
    assert kept.held == [{"kind": "photo", "id": blocked, "reason": "legal claim"}]
    assert _photo_ids(runtime) == [blocked]
    released = run(runtime, "photos", "hold", blocked, "--release")
    assert released.exit_code == 0, released.output
    gone = run_purge(runtime, now=later, actor="t")
    assert gone.deleted["photos"] == 1 and gone.held == []
    assert _photo_ids(runtime) == []
    assert len(_actions(runtime, "photo.released")) == 1
    with unit_of_work(runtime.sessions) as session:
        assert [r.held for r in session.scalars(select(PurgeReport).order_by(PurgeReport.id))] == [
            [{"kind": "photo", "id": blocked, "reason": "legal claim"}],
            [],
        ]


def test_holds_refuse_bad_input_with_a_clear_error(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    assert run(runtime, "photos", "hold", photo_id).exit_code == 2  # neither --reason nor --release
    assert run(runtime, "photos", "hold", photo_id, "--reason", "x", "--release").exit_code == 2
    blank = run(runtime, "photos", "hold", photo_id, "--reason", "  ")
    assert blank.exit_code == 1 and "lawful reason" in blank.output
    missing = run(runtime, "photos", "hold", 999999, "--reason", "legal claim")
    assert missing.exit_code == 1 and "no photo with id 999999" in missing.output
    not_held = run(runtime, "photos", "hold", photo_id, "--release")
    assert not_held.exit_code == 1 and "not held" in not_held.output
    assert run(runtime, "photos", "hold", photo_id, "--reason", "legal claim").exit_code == 0
    twice = run(runtime, "photos", "hold", photo_id, "--reason", "again")
    assert twice.exit_code == 1 and "already held" in twice.output
    assert len(_actions(runtime, "photo.held")) == 1
