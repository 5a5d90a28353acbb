"""Purge: what is past its retention time goes from every store (every S3 version) and the database."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from consent_db import audit
from consent_db.models import AuditEvent, ConsentRecord, FaceTemplate, Person, Photo, PurgeReport
from consent_db.session import unit_of_work
from gatekeeper.consent import records as consent_service
from gatekeeper.publishing import publish as publish_service
from gatekeeper.publishing import recheck, takedowns
from gatekeeper.retention.purge import consent_end
from gatekeeper.runtime import Runtime
from helpers import add_people, run, seed_gated_photo
from workers import JobQueue, run_purge


@pytest.fixture
def photo_bytes(corpus: Any) -> bytes:
    return (corpus.faces_dir / "biden/biden2.jpg").read_bytes()


def _on(runtime: Runtime, **changes: Any) -> Iterator[Runtime]:
    other = Runtime(runtime.settings.with_(**changes), sender=JobQueue)
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


def _publish(runtime: Runtime, photo_id: int, now: datetime) -> publish_service.PublishOutcome:
    with unit_of_work(runtime.sessions) as session:
        return publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=runtime.published,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )


def _photo_ids(runtime: Runtime) -> list[int]:
    with unit_of_work(runtime.sessions) as session:
        return list(session.scalars(select(Photo.id).order_by(Photo.id)))


def test_a_dry_run_plans_ahead_and_deletes_nothing(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    blocked = seed_gated_photo(runtime, photo_bytes, now=now, status="blocked")
    seed_gated_photo(runtime, photo_bytes + b"x", now=now, status="review")
    # Decided 15 June 2026 (BST): kept through 15 July, due from local midnight (23:00 UTC).
    before = run(runtime, "purge", "--dry-run", "--as-of", "2026-07-15", "--json")
    assert before.exit_code == 0
    assert json.loads(before.stdout) == {"dry_run": True, "as_of": "2026-07-15T00:00:00+00:00", "due": []}
    human = run(runtime, "purge", "--dry-run", "--as-of", "2026-07-15")
    assert human.exit_code == 0
    assert human.stdout == "nothing is due before 2026-07-15 00:00 UTC (dry run: nothing deleted)\n"
    after = run(runtime, "purge", "--dry-run", "--as-of", "2026-07-16", "--json")
    [line] = json.loads(after.stdout)["due"]
    assert (line["kind"], line["id"], line["state"]) == ("photo", blocked, "blocked")
    assert line["deadline"] == "2026-07-15T23:00:00+00:00"
    assert len(_photo_ids(runtime)) == 2
    assert run(runtime, "purge", "--as-of", "2026-07-16").exit_code == 2  # --as-of only plans


def test_an_upload_whose_check_never_finished_is_purged_as_blocked(
    runtime: Runtime, photo_bytes: bytes
) -> None:
    from gatekeeper.photos import intake as uploads

    uploaded = datetime(2026, 6, 15, 9, tzinfo=UTC)
    # The queue is never drained: the gate job did not run (or failed and was left).
    with unit_of_work(runtime.sessions) as session:
        batch = uploads.submit_batch(
            session,
            [uploads.UploadFile("sports-day.jpg", photo_bytes)],
            channel="website",
            caption=None,
            settings=runtime.settings,
            originals=runtime.originals,
            now=uploaded,
            actor="t",
        )
    [photo_id] = batch.photo_ids
    assert len(list(runtime.originals.iter_keys())) == 1
    # Kept through 15 July (London), due from local midnight starting 16 July.
    planned = run(runtime, "purge", "--dry-run", "--as-of", "2026-07-16", "--json")
    [line] = json.loads(planned.stdout)["due"]
    assert (line["id"], line["state"], line["deadline"]) == (photo_id, "pending", "2026-07-15T23:00:00+00:00")
    assert run_purge(runtime, now=datetime(2026, 7, 15, 22, 59, tzinfo=UTC), actor="t").deleted == {}
    report = run_purge(runtime, now=datetime(2026, 7, 15, 23, 0, tzinfo=UTC), actor="t")
    assert report.deleted == {"object_versions": 1, "originals": 1, "photos": 1} and report.failures == []
    assert _photo_ids(runtime) == [] and list(runtime.originals.iter_keys()) == []
    with unit_of_work(runtime.sessions) as session:
        assert audit.verify(session).ok


def test_purge_deletes_a_due_photo_everywhere_with_one_audited_report(
    runtime: Runtime, photo_bytes: bytes, now: datetime, s3: Any
) -> None:
    prefix = f"purge-{secrets.token_hex(4)}"
    for on_s3 in _on(runtime, storage={"published_url": f"s3://{s3.bucket}/{prefix}"}):
        ids = add_people(on_s3, now, "ann")
        with unit_of_work(on_s3.sessions) as session:
            consent_service.grant_consent(
                session,
                "ann",
                "website",
                settings=on_s3.settings,
                now=now,
                actor="t",
                granted_by="self",
                valid_until=date(2026, 8, 31),
            )
        photo_id = seed_gated_photo(on_s3, photo_bytes, now=now, person_ids=(ids["ann"],))
        kept = seed_gated_photo(on_s3, photo_bytes + b"y", now=now)  # nobody in it: no deadline
        outcome = _publish(on_s3, photo_id, now)
        on_s3.published.put(outcome.key or "", b"a second version")
        assert len(s3.versions(f"{prefix}/")) == 2
        # Consent ends with 31 August (UTC): kept 30 days more in London's calendar.
        not_yet = run_purge(on_s3, now=datetime(2026, 9, 30, 22, 59, tzinfo=UTC), actor="t")
        assert not_yet.deleted == {} and _photo_ids(on_s3) == [photo_id, kept]
        report = run_purge(on_s3, now=datetime(2026, 10, 1, 23, 0, tzinfo=UTC), actor="t")
        assert report.deleted == {"object_versions": 3, "originals": 1, "photos": 1, "published_copies": 1}
        assert report.failures == []
        assert s3.versions(f"{prefix}/") == []
        assert _photo_ids(on_s3) == [kept]
        assert not list(on_s3.originals.iter_keys())[1:]  # only the kept photo's original remains
        with unit_of_work(on_s3.sessions) as session:
            assert audit.verify(session).ok
        listed = run(on_s3, "purge", "reports", "--json")
        newest = json.loads(listed.stdout.splitlines()[0])
        assert newest["deleted"]["photos"] == 1


def test_a_legal_hold_is_reported_keeps_the_photo_due_and_a_later_run_finishes(
    runtime: Runtime, photo_bytes: bytes, now: datetime, s3: Any
) -> None:
    bucket = f"held-{secrets.token_hex(4)}"
    s3.client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    for held in _on(runtime, storage={"published_url": f"s3://{bucket}/p"}):
        photo_id = seed_gated_photo(held, photo_bytes, now=now)
        outcome = _publish(held, photo_id, now)
        with unit_of_work(held.sessions) as session:
            [publication] = recheck.live_publications(session)
            takedowns.take_down(session, publication, reasons=["test"], now=now, actor="t")
        # The copy came down; an older version re-appears under a legal hold (say, restored by hand).
        held.published.put(outcome.key or "", b"restored")
        version = s3.client.list_object_versions(Bucket=bucket)["Versions"][0]["VersionId"]
        s3.client.put_object_legal_hold(
            Bucket=bucket, Key=f"p/{outcome.key}", VersionId=version, LegalHold={"Status": "ON"}
        )
        later = now + timedelta(days=40)
        first = run_purge(held, now=later, actor="t")
        assert first.deleted == {} and [f["id"] for f in first.failures] == [photo_id]
        assert "AccessDenied" in first.failures[0]["why"]
        assert _photo_ids(held) == [photo_id]
        s3.client.put_object_legal_hold(
            Bucket=bucket, Key=f"p/{outcome.key}", VersionId=version, LegalHold={"Status": "OFF"}
        )
        second = run_purge(held, now=later, actor="t")
        assert second.failures == [] and second.deleted["photos"] == 1
        assert s3.client.list_object_versions(Bucket=bucket).get("Versions", []) == []


def test_a_person_who_leaves_has_their_templates_purged_after_their_last_day(
    runtime: Runtime, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    with unit_of_work(runtime.sessions) as session:
        session.add(
            FaceTemplate(
                person_id=ids["ann"], encoding=b"\0" * 1024, model="m", source_sha256="0" * 64, created_at=now
            )
        )
    assert run(runtime, "people", "leave", "ann", "--on", "2026-07-17").exit_code == 0
    kept = run_purge(runtime, now=datetime(2026, 7, 17, 22, 59, tzinfo=UTC), actor="t")
    assert kept.deleted == {}
    gone = run_purge(runtime, now=datetime(2026, 7, 17, 23, 0, tzinfo=UTC), actor="t")
    assert gone.deleted == {"templates": 1}
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(FaceTemplate)).all() == []


def test_erasure_removes_the_person_and_every_photo_showing_them(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann", "bob")
    hers = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"], ids["bob"]))
    his = seed_gated_photo(runtime, photo_bytes + b"z", now=now, person_ids=(ids["bob"],))
    _publish(runtime, hers, now)
    _publish(runtime, his, now)
    result = run(runtime, "people", "erase", "ann", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["deleted"]["photos"] == 1 and report["deleted"]["published_copies"] == 1
    assert _photo_ids(runtime) == [his]
    assert len(list(runtime.published.iter_keys())) == 1
    with unit_of_work(runtime.sessions) as session:
        ann = session.get(Person, ids["ann"])
        assert ann is not None and (ann.status, ann.display_name, ann.date_of_birth) == (
            "erased",
            "(erased)",
            None,
        )
        assert session.scalars(select(ConsentRecord).where(ConsentRecord.person_id == ids["ann"])).all() == []
        assert session.scalars(select(PurgeReport)).one().deleted["photos"] == 1
        assert audit.verify(session).ok
    again = run(runtime, "people", "erase", "ann")
    assert again.exit_code == 1 and "already erased" in again.output


def _request(runtime: Runtime, name: str, email: str, at: datetime) -> str:
    from gatekeeper.consent import withdrawals

    with unit_of_work(runtime.sessions) as session:
        request = withdrawals.request_withdrawal(
            session,
            name=name,
            date_of_birth=date(1980, 1, 1),
            relationship="parent",
            contact_email=email,
            settings=runtime.settings,
            now=at,
        )
    with unit_of_work(runtime.sessions) as session:
        # What the request's job does once it runs.
        withdrawals.match_request(session, request.id, settings=runtime.settings, now=at)
    return request.reference


def _requests(runtime: Runtime) -> dict[str, tuple[str, str | None, str | None, date | None, list[Any]]]:
    from consent_db.models import WithdrawalRequest

    with unit_of_work(runtime.sessions) as session:
        return {
            r.reference: (r.status, r.claimed_name, r.contact_email, r.claimed_date_of_birth, r.person_ids)
            for r in session.scalars(select(WithdrawalRequest))
        }


def test_a_decided_requests_contact_details_are_erased_after_their_time_and_the_record_stays(
    runtime: Runtime, now: datetime
) -> None:
    from gatekeeper.consent import withdrawals

    ids = add_people(runtime, now, "ann", "bob")
    received = datetime(2026, 10, 20, 9, tzinfo=UTC)
    confirmed = _request(runtime, "Ann", "parent.of.ann@example.org", received)
    rejected = _request(runtime, "Bob", "someone@example.org", received)
    waiting = _request(runtime, "Nobody Known", "other@example.org", received)
    decided = datetime(2026, 10, 24, 12, tzinfo=UTC)  # BST; the clocks go back the next night
    with unit_of_work(runtime.sessions) as session:
        withdrawals.confirm_request(session, confirmed, settings=runtime.settings, now=decided, actor="dpo")
        withdrawals.reject_request(
            session, rejected, settings=runtime.settings, now=decided, actor="dpo", note="not the parent"
        )
    # Kept through 23 November (London, GMT by then): due from 00:00 UTC on 24 November.
    planned = run(runtime, "purge", "--dry-run", "--as-of", "2026-11-24", "--json")
    assert sorted((line["kind"], line["state"]) for line in json.loads(planned.stdout)["due"]) == [
        ("request", "confirmed"),
        ("request", "rejected"),
    ]
    assert run_purge(runtime, now=datetime(2026, 11, 23, 23, 59, tzinfo=UTC), actor="t").deleted == {}
    report = run_purge(runtime, now=datetime(2026, 11, 24, 0, 0, tzinfo=UTC), actor="t")
    assert report.deleted == {"request_details": 2} and report.failures == []
    after = _requests(runtime)
    assert after[confirmed] == ("confirmed", None, None, None, [ids["ann"]])
    assert after[rejected] == ("rejected", None, None, None, [ids["bob"]])
    # Undecided: a consent admin still needs what the requester typed.
    assert after[waiting] == ("pending", "Nobody Known", "other@example.org", date(1980, 1, 1), [])
    assert run_purge(runtime, now=datetime(2026, 12, 1, tzinfo=UTC), actor="t").deleted == {}
    with unit_of_work(runtime.sessions) as session:
        erased = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "withdrawal.details_erased")
        ).all()
        assert sorted(e.details["reference"] for e in erased) == sorted([confirmed, rejected])
        assert all("example.org" not in json.dumps(e.details) for e in erased)
        assert audit.verify(session).ok


def test_erasing_a_person_erases_the_details_of_the_requests_that_matched_them(
    runtime: Runtime, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann", "bob")
    hers = _request(runtime, "Ann", "parent.of.ann@example.org", now)
    his = _request(runtime, "Bob", "parent.of.bob@example.org", now)
    assert run(runtime, "people", "erase", "ann").exit_code == 0
    after = _requests(runtime)
    assert after[hers] == ("pending", None, None, None, [ids["ann"]])
    assert after[his] == ("pending", "Bob", "parent.of.bob@example.org", date(1980, 1, 1), [ids["bob"]])


def test_a_left_on_column_in_the_people_csv_records_the_last_day(runtime: Runtime, now: datetime) -> None:
    from helpers import person_row, write_csv

    home = runtime.settings.instance_path
    rows = [person_row("ann", None, home, left_on="2026-07-31"), person_row("bob", None, home)]
    path = write_csv(home / "people.csv", rows)
    assert run(runtime, "people", "import", path).exit_code == 0
    with unit_of_work(runtime.sessions) as session:
        left = {p.external_id: p.left_on for p in session.scalars(select(Person))}
    assert left == {"ann": date(2026, 7, 31), "bob": None}
    bad = write_csv(home / "bad.csv", [person_row("ann", None, home, left_on="31/07/2026")])
    result = run(runtime, "people", "import", bad)
    assert result.exit_code == 1 and "left_on" in result.output


@pytest.mark.parametrize(
    ("action", "survives_leaving", "expected"),
    [
        ("grant", False, datetime(2026, 7, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("grant", True, None),
        ("withdraw", False, datetime(2026, 3, 1, tzinfo=UTC)),
        ("object", False, datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_consent_ends_on_leaving_unless_the_grant_continues_and_at_once_on_an_objection(
    action: str, survives_leaving: bool, expected: datetime | None
) -> None:
    record = ConsentRecord(
        id=1,
        kind="publication",
        channel="website",
        action=action,
        at=datetime(2026, 3, 1, tzinfo=UTC),
        valid_until=None,
        survives_leaving=survives_leaving,
    )
    person = Person(
        external_id="ann",
        status="left",
        left_on=date(2026, 7, 31),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        consents=[record],
    )
    assert consent_end(person, "website") == expected


def test_a_face_a_reviewer_identified_counts_as_that_person_for_erasure_and_retention(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    from consent_db.models import Face
    from gatekeeper.retention.purge import photo_facts, photos_showing

    ids = add_people(runtime, now, "ann", "bob")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["bob"],))
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=runtime.settings, now=now, actor="t")
        face = session.scalars(select(Face)).one()
        face.review_resolution, face.reviewed_person_id = "person", ids["ann"]
    with unit_of_work(runtime.sessions) as session:
        assert photos_showing(session, ids["ann"]) == [photo_id]
        photo = session.get(Photo, photo_id)
        assert photo is not None
        # Ann withdrew at `now`: the photo's consent ends with hers, not with Bob's open consent.
        assert photo_facts(session, photo).consent_ends == (now,)


def test_the_orphan_sweep_deletes_originals_no_photo_refers_to_and_keeps_the_rest(
    runtime: Runtime, photo_bytes: bytes, now: datetime
) -> None:
    from gatekeeper.photos.gate import original_key
    from gatekeeper.retention.purge import sweep_orphans

    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    orphan = original_key("0" * 64)
    legacy = f"originals/{original_key('1' * 64)}"
    runtime.originals.put(orphan, b"left by a crash")
    runtime.originals.put(legacy, b"left by a crash, older layout")
    later = datetime.now(UTC) + timedelta(hours=2)
    with unit_of_work(runtime.sessions) as session:
        photo = session.get(Photo, photo_id)
        assert photo is not None and photo.original_key is not None
        kept = photo.original_key
        result = sweep_orphans(session, runtime.originals, originals=True, now=later, actor="t")
    assert result.deleted["orphans"] == 2 and result.failures == []
    assert sorted(runtime.originals.iter_keys()) == [kept]
