"""A re-sent upload queues nothing new: with an Idempotency-Key the first answer comes back; without
one, a photo whose gate job is waiting or done shares it. Counted in the database after the real
gate jobs have run from the embedded queue."""

from __future__ import annotations

import io
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from web_helpers import api_token, csrf, make_account, sign_in

from consent_db.models import AuditEvent, Decision, IdempotencyKey, Job, Photo, UploadItem
from consent_db.session import unit_of_work

pytestmark = pytest.mark.slow

BATCH = ("obama/obama-240p.jpg", "biden/biden.jpg", "rose_leslie/rose_leslie_img1.jpg")


@pytest.fixture
def photos(corpus: Any) -> list[tuple[str, bytes]]:
    """Three real photos of faces, as a client's batch."""
    return [(name.rsplit("/", 1)[1], (corpus.faces_dir / name).read_bytes()) for name in BATCH]


def _drain(app: Flask) -> int:
    from gatekeeper.web.photos import job_queue

    with app.app_context():
        return int(job_queue().drain())


def _post(
    client: FlaskClient, token: str, photo: tuple[str, bytes], key: str | None = None, **form: str
) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    data: dict[str, Any] = {"channel": "website", "file": (io.BytesIO(photo[1]), photo[0]), **form}
    return _multipart(client, "/api/v1/photos", data, headers)


def _multipart(client: FlaskClient, url: str, data: dict[str, Any], headers: Any = None) -> Any:
    """POST multipart data, closing the temporary file werkzeug spools a large body to."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=url, method="POST", data=data, headers=headers)
    environ = builder.get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()


def _counts(rt: Any) -> dict[str, Any]:
    """Gate jobs, decisions per photo and `photo.gated` audit entries per photo, as stored."""
    with unit_of_work(rt.sessions) as session:
        jobs = session.scalar(select(func.count()).select_from(Job).where(Job.task == "gate"))
        decisions = Counter(session.scalars(select(Decision.photo_id)))
        gated = Counter(session.scalars(select(AuditEvent.subject).where(AuditEvent.action == "photo.gated")))
        photos = session.scalar(select(func.count()).select_from(Photo))
    return {"jobs": jobs, "decisions": decisions, "gated": gated, "photos": photos}


def _one_each(counts: dict[str, Any], photo_ids: list[int]) -> None:
    assert counts["decisions"] == dict.fromkeys(photo_ids, 1)
    assert counts["gated"] == {f"photo:{i}": 1 for i in photo_ids}


def test_a_batch_re_sent_without_a_key_queues_one_gate_job_and_makes_one_decision_per_photo(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    token = api_token(rt, make_account(rt, "uploader"))
    first = [_post(client, token, photo) for photo in photos]
    assert [r.status_code for r in first] == [202, 202, 202]
    ids = [r.get_json()["id"] for r in first]
    # The client crashed before it saw the answers and sends the batch again, twice.
    for _ in range(2):
        again = [_post(client, token, photo) for photo in photos]
        assert [r.status_code for r in again] == [202, 202, 202]
        assert [r.get_json()["id"] for r in again] == ids
    assert _counts(rt)["jobs"] == 3
    assert _drain(app) == 3
    # Once decided, a re-send still queues nothing: the photo's answer is the decision it has.
    late = [_post(client, token, photo) for photo in photos]
    assert [r.get_json()["id"] for r in late] == ids
    assert _drain(app) == 0
    counts = _counts(rt)
    assert counts["jobs"] == 3 and counts["photos"] == 3
    _one_each(counts, ids)
    status = [client.get(f"/api/v1/photos/{i}", headers={"Authorization": f"Bearer {token}"}) for i in ids]
    assert [s.get_json()["status"] for s in status] == ["done", "done", "done"]


def test_a_batch_re_sent_with_the_same_keys_gets_the_first_answers_and_one_decision_per_photo(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    token = api_token(rt, make_account(rt, "uploader"))
    keys = [f"batch-7-photo-{n}" for n in range(len(photos))]
    first = [_post(client, token, photo, key) for photo, key in zip(photos, keys, strict=True)]
    assert [r.status_code for r in first] == [202, 202, 202]
    assert all("Idempotent-Replayed" not in r.headers for r in first)
    assert _drain(app) == 3
    again = [_post(client, token, photo, key) for photo, key in zip(photos, keys, strict=True)]
    assert [(r.status_code, r.get_data()) for r in again] == [(r.status_code, r.get_data()) for r in first]
    assert [r.headers["Idempotent-Replayed"] for r in again] == ["true"] * 3
    assert _drain(app) == 0
    counts = _counts(rt)
    ids = [r.get_json()["id"] for r in first]
    assert counts["jobs"] == 3
    _one_each(counts, ids)
    with unit_of_work(rt.sessions) as session:
        # The replayed answers made no batch of their own: three uploads, three batches.
        assert session.scalar(select(func.count()).select_from(UploadItem)) == 3
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 3


def test_a_key_used_again_for_another_photo_is_refused_with_422_and_queues_nothing(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    token = api_token(rt, make_account(rt, "uploader"))
    assert _post(client, token, photos[0], "k-1").status_code == 202
    other = _post(client, token, photos[1], "k-1")
    assert other.status_code == 422
    assert other.get_json()["error"] == "idempotency_key_reused"
    assert "different request" in other.get_json()["message"]
    caption = _post(client, token, photos[0], "k-1", caption="Sports day")
    assert caption.status_code == 422
    assert _counts(rt)["jobs"] == 1 and _counts(rt)["photos"] == 1


def test_a_key_belongs_to_its_token_and_a_malformed_key_is_a_clear_400(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    mine = api_token(rt, make_account(rt, "uploader"))
    theirs = api_token(rt, make_account(rt, "uploader", username="another-uploader"))
    assert _post(client, mine, photos[0], "same-key").status_code == 202
    # Another credential's same key is its own: its request runs (and is told apart as new).
    second = _post(client, theirs, photos[1], "same-key")
    assert second.status_code == 202 and "Idempotent-Replayed" not in second.headers
    bad = _post(client, mine, photos[2], "has spaces in it")
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_input"
    assert "Idempotency-Key" in bad.get_json()["message"]
    assert _counts(rt)["jobs"] == 2


def test_a_request_that_fails_records_no_answer_so_its_repeat_runs(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    token = api_token(rt, make_account(rt, "uploader"))
    refused = _post(client, token, photos[0], "k-2", channel="fax")
    assert refused.status_code == 400 and refused.get_json()["error"] == "unknown_channel"
    assert _post(client, token, photos[0], "k-2", channel="fax").status_code == 400
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_a_web_batch_that_repeats_files_and_is_sent_again_gates_each_photo_once(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    sign_in(client, make_account(rt, "uploader"))
    files = [photos[0], photos[1], photos[0], photos[1], photos[2]]
    for _ in range(2):
        data: dict[str, Any] = {
            "csrf_token": csrf(client, "/upload"),
            "channel": "website",
            "photos": [(io.BytesIO(content), name) for name, content in files],
        }
        assert _multipart(client, "/upload", data).status_code == 302
    with unit_of_work(rt.sessions) as session:
        items = list(session.scalars(select(UploadItem).order_by(UploadItem.id)))
    # Every file keeps its place in its batch; the repeats share the first copy's job.
    assert len(items) == 10 and len({i.job_id for i in items}) == 3
    assert _drain(app) == 3
    counts = _counts(rt)
    _one_each(counts, sorted({i.photo_id for i in items if i.photo_id is not None}))


def test_the_same_key_sent_at_once_from_several_threads_runs_the_upload_once(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    token = api_token(rt, make_account(rt, "uploader"))
    answers: list[Any] = []
    start = threading.Barrier(4)

    def send() -> None:
        client = app.test_client()
        start.wait()
        answers.append(_post(client, token, photos[0], "race-1"))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.get_data() for a in answers}) == 1
    assert sum(1 for a in answers if "Idempotent-Replayed" in a.headers) == 3
    assert _counts(rt)["jobs"] == 1


def test_a_key_is_forgotten_after_the_configured_hours(
    app: Flask, rt: Any, photos: list[tuple[str, bytes]]
) -> None:
    client = app.test_client()
    token = api_token(rt, make_account(rt, "uploader"))
    first = _post(client, token, photos[0], "k-old")
    assert first.status_code == 202
    with unit_of_work(rt.sessions) as session:
        row = session.scalars(select(IdempotencyKey)).one()
        # Stored a day and an hour ago: past the default 24 hours.
        row.created_at = row.created_at - timedelta(hours=rt.settings.web.idempotency_hours + 1)
    fresh = _post(client, token, photos[1], "k-old")
    assert fresh.status_code == 202 and "Idempotent-Replayed" not in fresh.headers
    assert fresh.get_json()["id"] != first.get_json()["id"]
    with unit_of_work(rt.sessions) as session:
        # The old answer is gone; the key now holds the new one.
        assert [r.body for r in session.scalars(select(IdempotencyKey))] == [fresh.get_data(as_text=True)]
    assert _counts(rt)["jobs"] == 2
