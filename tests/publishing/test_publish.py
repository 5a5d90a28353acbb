"""Publishing as a service: decide again, write under an opaque key, record store and key; take down."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from consent_db import audit
from consent_db.models import AuditEvent, Publication, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper import media
from gatekeeper.consent import records as consent_service
from gatekeeper.errors import InvalidInputError, RecordNotFoundError
from gatekeeper.photos import gate
from gatekeeper.publishing import placements, recheck
from gatekeeper.publishing import publish as publish_service
from gatekeeper.storage import LocalBlobStore, open_store
from helpers import add_people, gate_json, run, seed_gated_photo


@pytest.fixture
def photo_bytes(corpus: Any) -> bytes:
    return (corpus.faces_dir / "biden/biden2.jpg").read_bytes()


def _publish(runtime: Any, photo_id: int, store: Any, now: datetime) -> publish_service.PublishOutcome:
    with unit_of_work(runtime.sessions) as session:
        return publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=store,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )


def test_publishing_writes_the_rebuilt_clean_copy_under_an_opaque_key_and_records_it(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    outcome = _publish(runtime, photo_id, runtime.published, now)
    assert outcome.published and outcome.store == runtime.published.url
    assert outcome.key is not None and "ann" not in outcome.key and outcome.key.endswith(".jpg")
    expected = media.sanitise(photo_bytes, max_pixels=runtime.settings.media.max_pixels)
    assert runtime.published.get(outcome.key) == expected.data
    with unit_of_work(runtime.sessions) as session:
        publication = session.get(Publication, outcome.publication_id)
        assert publication is not None
        assert (publication.store, publication.key, publication.external) == (
            outcome.store,
            outcome.key,
            False,
        )
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "photo.published")).one()
        assert event.details["key"] == outcome.key
        assert audit.verify(session).ok


def test_a_rebuilt_copy_is_made_at_the_size_published_on_its_channel(runtime: Any, now: datetime) -> None:
    import io

    from PIL import Image

    from gatekeeper.runtime import Runtime
    from workers import JobQueue

    small = Runtime(runtime.settings.with_(media={"output_sizes": (("website", 512),)}), sender=JobQueue)
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (90, 140, 60)).save(buffer, "JPEG", quality=90)
    photo_id = seed_gated_photo(small, buffer.getvalue(), now=now)
    outcome = _publish(small, photo_id, small.published, now)
    assert outcome.published and outcome.key is not None
    copy = media.decode(small.published.get(outcome.key), max_pixels=small.settings.media.max_pixels)
    assert (copy.width, copy.height) == (512, 384)
    if "db" in small.__dict__:
        small.db.dispose()


def test_a_withdrawal_before_publishing_writes_nothing_and_audits_the_refusal(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(
            session, "ann", ["website"], settings=runtime.settings, now=now, actor="t"
        )
    outcome = _publish(runtime, photo_id, runtime.published, now + timedelta(seconds=1))
    assert not outcome.published and outcome.reasons == ("consent_withdrawn",)
    assert list(runtime.published.iter_keys()) == []
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Publication)).all() == []
        refusal = session.scalars(select(AuditEvent).where(AuditEvent.action == "publication.refused")).one()
        assert refusal.details["reasons"] == ["consent_withdrawn"]


def test_a_copy_is_visible_only_after_its_record_commits_and_a_rollback_leaves_nothing(
    runtime: Any, photo_bytes: bytes, now: datetime, tmp_path: Path
) -> None:
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    folder = LocalBlobStore(tmp_path / "out")
    with pytest.raises(RuntimeError), unit_of_work(runtime.sessions) as session:
        outcome = publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=folder,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )
        assert outcome.published and list(folder.iter_keys()) == []  # staged, hidden
        raise RuntimeError("the commit never happens")
    assert list((tmp_path / "out").iterdir()) == []
    with unit_of_work(runtime.sessions) as session:
        assert session.scalars(select(Publication)).all() == []
    outcome = _publish(runtime, photo_id, folder, now)
    assert list(folder.iter_keys()) == [outcome.key]


def test_a_rollback_deletes_an_object_already_uploaded_to_s3(
    runtime: Any, photo_bytes: bytes, now: datetime, s3: Any
) -> None:
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    store = open_store(f"s3://{s3.bucket}/rollback-{secrets.token_hex(4)}")
    with pytest.raises(RuntimeError), unit_of_work(runtime.sessions) as session:
        outcome = publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=store,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )
        assert outcome.key is not None and store.exists(outcome.key)
        raise RuntimeError("the commit never happens")
    assert s3.versions(store.url.removeprefix(f"s3://{s3.bucket}/")) == []


def test_publishing_refuses_a_channel_the_photo_was_not_gated_for_and_unknown_ids(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now)
    with (
        pytest.raises(InvalidInputError, match="gated for 'website'"),
        unit_of_work(runtime.sessions) as session,
    ):
        publish_service.publish_photo(
            session,
            photo_id,
            channel="print",
            store=runtime.published,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )
    with pytest.raises(RecordNotFoundError), unit_of_work(runtime.sessions) as session:
        gate.latest_decision(session, photo_id + 1000)


def test_a_withdrawal_takes_down_every_copy_we_control_and_opens_tasks_for_external_ones(
    runtime: Any, photo_bytes: bytes, now: datetime, s3: Any, tmp_path: Path
) -> None:
    ids = add_people(runtime, now, "ann", "bob")
    shared = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"], ids["bob"]))
    bobs = seed_gated_photo(runtime, photo_bytes + b"\0", now=now, person_ids=(ids["bob"],))
    prefix = f"takedown-{secrets.token_hex(4)}/"
    bucket_store = open_store(f"s3://{s3.bucket}/{prefix}")
    folder = LocalBlobStore(tmp_path / "out")
    on_s3 = _publish(runtime, shared, bucket_store, now)
    in_folder = _publish(runtime, shared, folder, now)
    kept = _publish(runtime, bobs, bucket_store, now)
    bucket_store.put(on_s3.key or "", b"a second version of the same key")
    with unit_of_work(runtime.sessions) as session:
        external, task = placements.record_external(
            session,
            shared,
            channel="website",
            where="https://example.org/post/1",
            settings=runtime.settings,
            now=now,
            actor="t",
        )
        assert task is None
    later = now + timedelta(hours=1)
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=runtime.settings, now=later, actor="t")
    with unit_of_work(runtime.sessions) as session:
        report = recheck.recheck_publications(
            session, settings=runtime.settings, now=later, actor="t", person_id=ids["ann"]
        )
    assert report.checked == 3 and sorted(report.deleted) == sorted(
        [on_s3.publication_id, in_folder.publication_id]
    )
    assert [k for k, _ in s3.versions(prefix)] == [prefix + (kept.key or "")]
    assert list(folder.iter_keys()) == []
    with unit_of_work(runtime.sessions) as session:
        tasks = session.scalars(select(TakedownTask)).all()
        assert [(t.publication_id, t.target, t.person_id) for t in tasks] == [
            (external.id, "https://example.org/post/1", ids["ann"])
        ]
        assert tasks[0].reasons == ["consent_withdrawn"]
    # Running it again changes nothing: every copy is already gone, the task is already open.
    with unit_of_work(runtime.sessions) as session:
        again = recheck.recheck_publications(
            session, settings=runtime.settings, now=later, actor="t", person_id=ids["ann"]
        )
    assert (again.deleted, again.tasks) == ([], [])


def test_staff_list_and_close_takedown_tasks_from_the_command_line(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=runtime.settings, now=now, actor="t")
    added = run(runtime, "publications", "add", photo_id, "--channel", "website", "--where", "insta:post/42")
    assert added.exit_code == 0 and "takedown task" in added.stderr
    listed = run(runtime, "takedowns", "list", "--open", "--json")
    [task] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (task["photo"], task["where"], task["done_at"]) == (photo_id, "insta:post/42", None)
    assert run(runtime, "takedowns", "done", task["id"], "--note", "post deleted").exit_code == 0
    assert run(runtime, "takedowns", "list", "--open", "--json").stdout == ""
    again = run(runtime, "takedowns", "done", task["id"], "--note", "again")
    assert again.exit_code == 1 and "already done" in again.output


def test_the_publish_command_publishes_or_exits_1_with_the_reasons(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    done = run(runtime, "publish", photo_id, "--channel", "website", "--json")
    line = json.loads(done.stdout)
    assert done.exit_code == 0 and line["published"] and runtime.published.exists(line["key"])
    assert line["already_published"] is False
    # A second publish on the same channel writes nothing new and says so.
    again = run(runtime, "publish", photo_id, "--channel", "website")
    assert again.exit_code == 0
    assert again.stdout == (
        f"already published photo {photo_id}: {line['store']}/{line['key']} (nothing new written)\n"
    )
    assert list(runtime.published.iter_keys()) == [line["key"]]
    run(runtime, "consent", "withdraw", "ann")
    refused = run(runtime, "publish", photo_id, "--channel", "website", "--json")
    assert refused.exit_code == 1 and json.loads(refused.stdout)["reasons"] == ["consent_withdrawn"]
    missing = run(runtime, "publish", photo_id + 99, "--channel", "website")
    assert missing.exit_code == 1 and f"no photo with id {photo_id + 99}" in missing.output


def test_gate_json_lines_carry_the_photo_id(runtime: Any, tmp_path: Path) -> None:
    junk = tmp_path / "not-a-photo.jpg"
    junk.write_bytes(b"plain text, not an image")
    [line] = gate_json(runtime, "website", junk)
    assert line["verdict"] == "blocked" and isinstance(line["id"], int)
    with unit_of_work(runtime.sessions) as session:
        assert gate.latest_decision(session, line["id"]).reasons == ["unreadable_image"]


def test_a_withdrawal_while_a_publish_is_deciding_leaves_nothing_of_the_person_published(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    import threading
    import time

    ids = add_people(runtime, now, "ann")
    photo_id = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    later = now + timedelta(minutes=1)
    errors: list[BaseException] = []

    def withdraw_then_take_down() -> None:
        try:
            with unit_of_work(runtime.sessions) as session:
                consent_service.withdraw_consent(
                    session, "ann", [], settings=runtime.settings, now=later, actor="t"
                )
            with unit_of_work(runtime.sessions) as session:
                recheck.recheck_publications(
                    session, settings=runtime.settings, now=later, actor="t", person_id=ids["ann"]
                )
        except BaseException as exc:
            errors.append(exc)

    other = threading.Thread(target=withdraw_then_take_down)
    with unit_of_work(runtime.sessions) as session:
        outcome = publish_service.publish_photo(
            session,
            photo_id,
            channel="website",
            store=runtime.published,
            originals=runtime.originals,
            settings=runtime.settings,
            now=now,
            actor="t",
        )
        assert outcome.published  # decided before the withdrawal; not yet committed
        other.start()
        time.sleep(0.5)
        assert other.is_alive()  # the withdrawal (SQLite) or the takedown (PostgreSQL) waits for us
    other.join(timeout=60)
    assert errors == [] and not other.is_alive()
    assert list(runtime.published.iter_keys()) == []
    with unit_of_work(runtime.sessions) as session:
        [publication] = session.scalars(select(Publication)).all()
        assert publication.taken_down_at == later


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no row locks
def test_locking_people_to_publish_never_waits_for_a_transaction_that_only_refers_to_them(
    runtime: Any, now: datetime
) -> None:
    from sqlalchemy import text

    from gatekeeper.publishing.publish import lock_people

    ids = add_people(runtime, now, "ann")
    with runtime.sessions() as recording, recording.begin():
        # Still open: a consent record for Ann (its foreign key holds a key-share lock on her row),
        # as a gate recording her face would hold while it waits for the audit chain's lock.
        consent_service.grant_consent(
            recording, "ann", "print", settings=runtime.settings, now=now, actor="t", granted_by="self"
        )
        with unit_of_work(runtime.sessions) as publishing:
            publishing.execute(text("SET LOCAL lock_timeout = '5s'"))
            lock_people(publishing, [ids["ann"]])  # a lock that waited here could close a deadlock


def test_the_periodic_recheck_names_the_person_in_the_task_it_opens(
    runtime: Any, photo_bytes: bytes, now: datetime
) -> None:
    # The safety net: the re-check of every live publication (no person given) opens a task for an
    # outside placement that names whose consent ended, as a withdrawal's own takedown does.
    ids = add_people(runtime, now, "ann", "bob")
    shared = seed_gated_photo(runtime, photo_bytes, now=now, person_ids=(ids["ann"],))
    other = seed_gated_photo(runtime, photo_bytes + b"b", now=now, person_ids=(ids["bob"],))
    with unit_of_work(runtime.sessions) as session:
        for photo_id, where in ((shared, "https://example.org/a"), (other, "https://example.org/b")):
            placements.record_external(
                session,
                photo_id,
                channel="website",
                where=where,
                settings=runtime.settings,
                now=now,
                actor="t",
            )
    later = now + timedelta(hours=1)
    with unit_of_work(runtime.sessions) as session:
        consent_service.withdraw_consent(session, "ann", [], settings=runtime.settings, now=later, actor="t")
    with unit_of_work(runtime.sessions) as session:
        report = recheck.recheck_publications(session, settings=runtime.settings, now=later, actor="t")
    assert report.checked == 2 and report.kept == 1
    with unit_of_work(runtime.sessions) as session:
        tasks = session.scalars(select(TakedownTask)).all()
        assert [(t.target, t.person_id, t.reasons) for t in tasks] == [
            ("https://example.org/a", ids["ann"], ["consent_withdrawn"])
        ]
    listed = run(runtime, "takedowns", "list", "--json")
    assert [(t["where"], t["person"]) for t in map(json.loads, listed.stdout.splitlines())] == [
        ("https://example.org/a", "ann")
    ]
