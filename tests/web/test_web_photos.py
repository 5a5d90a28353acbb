"""Photo upload in the web app and the API, on real corpus photos and the real gate job.

Uploads return before any face is matched: the gate jobs wait in the embedded queue and run when
the test drains it (the same code `gatekeeper worker` and `gatekeeper serve` run). Boxes, colours
and reasons on the pages are checked against the decision the gate recorded.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from web_helpers import api_token, csrf, make_account, sign_in

from consent_db.models import AuditEvent, ConsentRecord, Decision, Job, Person, Photo, Publication, UploadItem
from consent_db.session import unit_of_work
from gatekeeper import media
from gatekeeper.photos import views
from gatekeeper.publishing import downloads
from helpers import enrol_corpus, run

pytestmark = pytest.mark.slow

COLOURS = {"consented": "green", "no_consent": "red", "unknown": "red", "uncertain": "amber"}


@pytest.fixture
def enrolled(app: Flask, rt: Any, corpus: Any) -> Any:
    """Corpus identities enrolled: Obama and Rose Leslie consent to the website, Biden only to
    social media, Kit Harington consented to the website and withdrew."""
    enrol_corpus(rt, corpus.faces_dir, biden={"channels": ("social_media",)}, obama={"name": "Barack Obama"})
    result = run(rt, "consent", "withdraw", "kit_harington", "--channel", "website")
    assert result.exit_code == 0, result.output
    _drain(app)  # the withdrawal's takedown job
    return rt


def _client(app: Flask, rt: Any, role: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, role))
    return client


def _upload(
    client: FlaskClient, files: list[tuple[bytes, str]], channel: str = "website", **extra: str
) -> Any:
    data: dict[str, Any] = {
        "csrf_token": csrf(client, "/upload"),
        "channel": channel,
        "photos": [(io.BytesIO(content), name) for content, name in files],
        **extra,
    }
    return post_multipart(client, "/upload", data)


def post_multipart(client: FlaskClient, url: str, data: dict[str, Any], headers: Any = None) -> Any:
    """POST multipart data, closing the temporary file werkzeug spools a large body to."""
    from werkzeug.test import EnvironBuilder

    builder = EnvironBuilder(path=url, method="POST", data=data, headers=headers)
    environ = builder.get_environ()
    try:
        return client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()


def _drain(app: Flask) -> int:
    from gatekeeper.web.photos import job_queue

    with app.app_context():
        return int(job_queue().drain())


def _batch_id(response: Any) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    match = re.search(r"/batches/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _photo_ids(rt: Any, batch_id: int) -> list[int]:
    with unit_of_work(rt.sessions) as session:
        items = session.scalars(
            select(UploadItem).where(UploadItem.batch_id == batch_id).order_by(UploadItem.position)
        )
        return [i.photo_id for i in items if i.photo_id is not None]


def _decision(rt: Any, photo_id: int) -> Decision:
    with unit_of_work(rt.sessions) as session:
        decision = session.scalar(
            select(Decision).where(Decision.photo_id == photo_id).order_by(Decision.id.desc()).limit(1)
        )
        assert decision is not None
        _ = [f.reasons for f in decision.faces]
        return decision


def test_an_upload_keeps_the_originals_queues_one_gate_job_each_and_refuses_bad_files_clearly(
    app: Flask, rt: Any, corpus: Any
) -> None:
    client = _client(app, rt, "uploader")
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.write(corpus.faces_dir / "biden" / "biden.jpg", "day/biden.jpg")
        archive.writestr("../escape.jpg", (corpus.faces_dir / "obama" / "obama.jpg").read_bytes())
        archive.writestr("notes.txt", b"not a photo")
    obama = (corpus.faces_dir / "obama" / "obama2.jpg").read_bytes()
    response = _upload(
        client,
        [(obama, "obama2.jpg"), (bundle.getvalue(), "day.zip"), (b"%PDF-1.4 nothing", "form.pdf")],
    )
    batch_id = _batch_id(response)
    page = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "2 photos uploaded" in page
    assert "Not uploaded: form.pdf: not an accepted image format (JPEG, PNG, WebP, HEIC/HEIF, GIF" in page
    assert "Not uploaded: day.zip: ../escape.jpg: unsafe name in the zip" in page
    assert "Not uploaded: day.zip: notes.txt: not an accepted image format" in page
    assert page.count(">Waiting<") == 2
    assert '<meta http-equiv="refresh"' in page  # refreshes itself without JavaScript
    ids = _photo_ids(rt, batch_id)
    assert len(ids) == 2
    with unit_of_work(rt.sessions) as session:
        photos = [session.get(Photo, i) for i in ids]
        assert [p.status for p in photos if p] == ["pending", "pending"]
        assert session.scalar(select(func.count()).select_from(Decision)) == 0  # nothing gated in the request
        jobs = list(session.scalars(select(Job).where(Job.task == "gate")))
        assert [j.state for j in jobs] == ["queued", "queued"]
        keys = [p.original_key for p in photos if p and p.original_key]
    assert rt.originals.get(keys[0]) == obama
    # Nothing of the file names is kept.
    with unit_of_work(rt.sessions) as session:
        assert all("obama2" not in (p.caption or "") for p in session.scalars(select(Photo)))
    state = client.get(f"/batches/{batch_id}.json").get_json()
    assert [p["status"] for p in state["photos"]] == ["queued", "queued"]
    assert state["finished"] is False

    assert _drain(app) == 2
    state = client.get(f"/batches/{batch_id}.json").get_json()
    assert state["finished"] is True
    # Nobody is enrolled: each face is unknown, which blocks.
    assert [p["verdict"] for p in state["photos"]] == ["blocked", "blocked"]
    assert [p["reasons"] for p in state["photos"]] == [
        ["not recognised: nobody enrolled matches this face"]
    ] * 2
    page = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "http-equiv" not in page
    assert "Every photo has been checked" in page


def test_nothing_uploads_without_a_photo_or_with_an_unknown_channel(app: Flask, rt: Any) -> None:
    client = _client(app, rt, "uploader")
    response = _upload(client, [])
    assert response.status_code == 400
    assert "Choose at least one photo or zip" in response.get_data(as_text=True)
    response = _upload(client, [(b"hello", "a.txt")])
    assert response.status_code == 422
    assert "Not uploaded: a.txt: not an accepted image format" in response.get_data(as_text=True)
    response = _upload(client, [(b"hello", "a.txt")], channel="billboard")
    assert response.status_code == 400
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Photo)) == 0
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_boxes_colours_and_reasons_follow_the_recorded_decision(
    app: Flask, enrolled: Any, corpus: Any
) -> None:
    rt = enrolled
    client = _client(app, rt, "uploader")
    files = [
        ((corpus.faces_dir / "group" / name).read_bytes(), name)
        for name in ("two_people.jpg", "kit_with_rose.jpg")
    ]
    batch_id = _batch_id(_upload(client, files, caption="Barack Obama and Joe at the fair"))
    assert _drain(app) == 2
    two, kit = _photo_ids(rt, batch_id)

    with unit_of_work(rt.sessions) as session:
        withdrawn = session.scalar(
            select(ConsentRecord.at)
            .join(Person)
            .where(Person.external_id == "kit_harington", ConsentRecord.action == "withdraw")
        )
    assert isinstance(withdrawn, datetime)
    for photo_id in (two, kit):
        decision = _decision(rt, photo_id)
        assert decision.verdict == "blocked"
        page = client.get(f"/photos/{photo_id}").get_data(as_text=True)
        assert 'For website: <span class="verdict blocked">Blocked</span>' in page
        boxes = re.findall(
            r'<g class="face (\w+)">\s*<rect x="(\d+)" y="(\d+)" width="(\d+)" height="(\d+)"', page
        )
        assert len(boxes) == len(decision.faces) == 2
        for face, (colour, x, y, w, h) in zip(decision.faces, boxes, strict=True):
            assert colour == COLOURS[face.outcome]
            assert (int(x), int(y), int(x) + int(w), int(y) + int(h)) == (
                face.left,
                face.top,
                face.right,
                face.bottom,
            )
        items = re.findall(
            r'<li class="face-item (\w+)">.*?</span> (.*?) <span class="colour-word">', page, re.S
        )
        assert [c for c, _ in items] == [COLOURS[f.outcome] for f in decision.faces]
        texts = [t for _, t in items]
        if photo_id == two:
            assert texts == [
                "Face 1: Barack Obama (obama), consented for website",
                "Face 2: Biden (biden), no consent for website",
            ]
            # Only the name of someone who may be named stays in the caption.
            assert "Joe" in page and "Barack Obama and" not in page
        else:
            day = f"{withdrawn.day} {withdrawn:%B %Y}"
            assert texts == [
                "Face 1: Rose Leslie (rose_leslie), consented for website",
                f"Face 2: Kit Harington (kit_harington), no consent for website (withdrawn on {day})",
            ]
        # Blocked: nothing to download or publish.
        assert "Download the clean copy" not in page and "Publish to" not in page

    state = client.get(f"/api/v1/photos/{two}", headers={})  # no token: the API never uses the session
    assert state.status_code == 401

    page = client.get(f"/batches/{batch_id}?verdict=blocked&reason=consent_withdrawn").get_data(as_text=True)
    assert f'/photos/{kit}"' in page and f'/photos/{two}"' not in page
    assert "1 of 2 photos shown" in page
    assert "Blocked: <strong>2</strong>" in page


def test_a_small_face_goes_to_review_in_amber_with_its_reason(
    app: Flask, enrolled: Any, corpus: Any, settings: Any
) -> None:
    from engines import compose_app, recorded

    # The same instance with a minimum face size of 80 px: the 240p frame's face (about 62 px) is
    # then too small to identify.
    strict_settings = settings.with_(faces={"min_face_px": 80})
    strict = compose_app(strict_settings, recorded(strict_settings))
    strict.config["TESTING"] = True
    try:
        rt = strict.extensions["gatekeeper"]
        client = _client(strict, rt, "uploader")
        small = (corpus.faces_dir / "obama" / "obama-240p.jpg").read_bytes()
        batch_id = _batch_id(_upload(client, [(small, "small.jpg")]))
        assert _drain(strict) == 1
        (photo_id,) = _photo_ids(rt, batch_id)
        decision = _decision(rt, photo_id)
        assert decision.verdict == "review"
        assert [f.reasons for f in decision.faces] == [["face_too_small"]]
        page = client.get(f"/photos/{photo_id}").get_data(as_text=True)
        assert '<g class="face amber">' in page
        assert "Face 1: too small to identify, a reviewer must check it" in page
        assert "Needs review" in page
    finally:
        strict.extensions["gatekeeper"].db.dispose()


def test_a_safeguarding_block_reads_only_cannot_be_published_except_to_consent_admins(
    app: Flask, enrolled: Any, corpus: Any
) -> None:
    rt = enrolled
    result = run(rt, "people", "safeguarding", "rose_leslie", "--set", "--reason", "DSL decision")
    assert result.exit_code == 0, result.output
    uploader = _client(app, rt, "uploader")
    photo = (corpus.faces_dir / "group" / "kit_with_rose.jpg").read_bytes()
    batch_id = _batch_id(_upload(uploader, [(photo, "kit_with_rose.jpg")]))
    _drain(app)
    (photo_id,) = _photo_ids(rt, batch_id)
    decision = _decision(rt, photo_id)
    assert "safeguarding" in decision.faces[0].reasons

    seen = {
        "page": uploader.get(f"/photos/{photo_id}").get_data(as_text=True),
        "batch": uploader.get(f"/batches/{batch_id}").get_data(as_text=True),
        "json": uploader.get(f"/batches/{batch_id}.json").get_data(as_text=True),
    }
    token = api_token(rt, make_account(rt, "uploader", username="uploader-api"))
    seen["api"] = (
        app.test_client()
        .get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"})
        .get_data(as_text=True)
    )
    for where, text in seen.items():
        assert "safeguard" not in text.lower(), where
    assert "Face 1: cannot be published" in seen["page"]
    assert "Rose Leslie" not in seen["page"]

    admin = _client(app, rt, "consent_admin")
    page = admin.get(f"/photos/{photo_id}").get_data(as_text=True)
    assert "Face 1: Rose Leslie (rose_leslie), safeguarding flag: never published" in page


def test_the_preview_is_private_downscaled_stripped_and_never_cached(
    app: Flask, rt: Any, corpus: Any
) -> None:
    client = _client(app, rt, "uploader")
    original = (corpus.faces_dir / "group" / "obama_and_biden.jpg").read_bytes()
    batch_id = _batch_id(_upload(client, [(original, "o.jpg")]))
    (photo_id,) = _photo_ids(rt, batch_id)
    # Before the gate job has run: the preview is made from the original all the same.
    response = client.get(f"/photos/{photo_id}/preview.jpg")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert "no-store" in response.headers["Cache-Control"]
    data = response.get_data()
    image = Image.open(io.BytesIO(data))
    assert max(image.size) == views.PREVIEW_EDGE
    assert len(image.getexif()) == 0 and "icc_profile" not in image.info
    assert not any(
        marker in data for marker in (b"Exif\x00", b"http://ns.adobe.com", b"Photoshop", b"ICC_PROFILE")
    )
    assert app.test_client().get(f"/photos/{photo_id}/preview.jpg").status_code == 302
    assert _client(app, rt, "auditor").get(f"/photos/{photo_id}/preview.jpg").status_code == 403


def test_the_clean_copy_and_the_batch_zip_are_decided_again_at_download(
    app: Flask, enrolled: Any, corpus: Any
) -> None:
    rt = enrolled
    client = _client(app, rt, "uploader")
    files = [
        ((corpus.faces_dir / "obama" / name).read_bytes(), name) for name in ("obama2.jpg", "obama3.jpg")
    ]
    files.append(((corpus.faces_dir / "biden" / "biden2.jpg").read_bytes(), "biden2.jpg"))
    batch_id = _batch_id(_upload(client, files))
    _drain(app)
    first, second, biden = _photo_ids(rt, batch_id)
    page = client.get(f"/photos/{first}").get_data(as_text=True)
    assert "Download the clean copy" in page and "Publish to website" in page
    token = csrf(client, f"/photos/{first}")

    response = client.post(f"/photos/{first}/clean", data={"csrf_token": token})
    assert response.status_code == 200
    name = re.search(r'filename="([0-9a-f]{32}\.jpg)"', response.headers["Content-Disposition"])
    assert name is not None
    media.verify_clean(response.get_data())
    assert b"Souza" not in response.get_data()

    response = client.post(f"/batches/{batch_id}/publishable.zip", data={"csrf_token": token})
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.get_data())).namelist()
    assert len(names) == 2 and all(re.fullmatch(r"[0-9a-f]{32}\.jpg", n) for n in names)

    with unit_of_work(rt.sessions) as session:
        placements = list(session.scalars(select(Publication).where(Publication.external.is_(True))))
    assert sorted(p.photo_id for p in placements) == sorted([first, first, second])
    assert all(p.target.startswith("downloaded by user:uploader as ") for p in placements)

    # Consent withdrawn after the verdict: the recorded verdict still says publishable, but nothing
    # is given out any more.
    assert run(rt, "consent", "withdraw", "obama", "--channel", "website").exit_code == 0
    response = client.post(f"/photos/{first}/clean", data={"csrf_token": token})
    assert response.status_code == 302
    page = client.get(f"/photos/{first}").get_data(as_text=True)
    assert "This photo cannot be published now: no consent for website" in page
    response = client.post(f"/batches/{batch_id}/publishable.zip", data={"csrf_token": token})
    assert response.status_code == 302
    assert "No photo of this batch can be published now" in client.get(f"/batches/{batch_id}").get_data(
        as_text=True
    )
    assert client.post(f"/photos/{biden}/clean", data={"csrf_token": token}).status_code == 302


def test_a_withdrawal_while_a_batch_zip_is_built_commits_at_once_and_keeps_its_photos_out(
    app: Flask, enrolled: Any, corpus: Any
) -> None:
    from datetime import UTC, datetime

    rt = enrolled
    client = _client(app, rt, "uploader")
    files = [
        ((corpus.faces_dir / "obama" / name).read_bytes(), name) for name in ("obama2.jpg", "obama3.jpg")
    ]
    files.append(((corpus.metadata_dir / "nikon_d70s_gps_iptc_xmp.jpg").read_bytes(), "scene.jpg"))
    batch_id = _batch_id(_upload(client, files))
    _drain(app)
    copies = downloads.build_batch_copies(
        rt.sessions,
        batch_id,
        settings=rt.settings,
        originals=rt.originals,
        engine=lambda: rt.faces,
        now=datetime.now(UTC),
    )
    assert len(copies.built) == 3 and all(copy is not None for _, copy in copies.built.values())
    # Between building and giving out, the database is free: a parent's withdrawal commits at once
    # (on SQLite a held write lock would keep it waiting), and nothing was recorded yet.
    assert run(rt, "consent", "withdraw", "obama", "--channel", "website").exit_code == 0
    with unit_of_work(rt.sessions) as session:
        assert session.scalars(select(Publication)).all() == []
        data, held, refused = downloads.release_batch(
            session,
            copies,
            settings=rt.settings,
            originals=rt.originals,
            engine=lambda: rt.faces,
            now=datetime.now(UTC),
            actor="user:uploader",
        )
    assert (held, refused) == (1, 2)
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 1
    with unit_of_work(rt.sessions) as session:
        [placement] = session.scalars(select(Publication)).all()
        refusals = session.scalars(select(AuditEvent).where(AuditEvent.action == "publication.refused")).all()
    assert placement.photo_id == _photo_ids(rt, batch_id)[2] and len(refusals) == 2


def test_publish_queues_the_publish_job_which_decides_again(app: Flask, enrolled: Any, corpus: Any) -> None:
    rt = enrolled
    client = _client(app, rt, "uploader")
    batch_id = _batch_id(
        _upload(client, [((corpus.faces_dir / "obama" / "obama2.jpg").read_bytes(), "a.jpg")])
    )
    _drain(app)
    (photo_id,) = _photo_ids(rt, batch_id)
    token = csrf(client, f"/photos/{photo_id}")
    response = client.post(f"/photos/{photo_id}/publish", data={"csrf_token": token})
    assert response.status_code == 302
    assert "Publishing is queued" in client.get(f"/photos/{photo_id}").get_data(as_text=True)
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Publication)) == 0
    assert _drain(app) == 1
    with unit_of_work(rt.sessions) as session:
        (publication,) = session.scalars(select(Publication))
    assert publication.photo_id == photo_id and not publication.external
    assert publication.key is not None and rt.published.exists(publication.key)


def test_the_api_uploads_reports_and_gives_clean_copies_of_publishable_photos_only(
    app: Flask, enrolled: Any, corpus: Any
) -> None:
    rt = enrolled
    headers = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'uploader'))}"}
    client = app.test_client()

    def post(content: bytes, channel: str = "website", **extra: str) -> Any:
        data = {"file": (io.BytesIO(content), "x.jpg"), "channel": channel, **extra}
        return post_multipart(client, "/api/v1/photos", data, headers)

    good = post((corpus.faces_dir / "group" / "two_people.jpg").read_bytes(), "social_media", caption="Biden")
    assert good.status_code == 202
    photo_id = good.get_json()["id"]
    blocked = post((corpus.faces_dir / "group" / "two_people.jpg").read_bytes())
    assert blocked.status_code == 202
    state = client.get(f"/api/v1/photos/{photo_id}", headers=headers).get_json()
    assert state == {
        "id": photo_id,
        "status": "queued",
        "verdict": None,
        "reasons": [],
        "faces": [],
        "caption": None,
        "error": None,
        "error_code": None,
    }
    assert client.get(f"/api/v1/photos/{photo_id}/clean", headers=headers).status_code == 409

    assert _drain(app) == 2
    decision = _decision(rt, photo_id)
    state = client.get(f"/api/v1/photos/{photo_id}", headers=headers).get_json()
    assert state["status"] == "done"
    assert state["verdict"] == decision.verdict
    assert state["reasons"] == decision.reasons
    assert [f["box"] for f in state["faces"]] == [[f.left, f.top, f.right, f.bottom] for f in decision.faces]
    assert [f["outcome"] for f in state["faces"]] == [f.outcome for f in decision.faces]
    assert set(state) == {"id", "status", "verdict", "reasons", "faces", "caption", "error", "error_code"}
    assert [f["number"] for f in state["faces"]] == [1, 2]
    # Obama: website only, so on social media Biden is the one publishable face... and Obama blocks.
    assert [f["person"] for f in state["faces"]] == ["obama", "biden"]
    assert state["verdict"] == "blocked"

    blocked_id = blocked.get_json()["id"]
    response = client.get(f"/api/v1/photos/{blocked_id}/clean", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"] == "not_publishable"

    solo = post((corpus.faces_dir / "obama" / "obama3.jpg").read_bytes())
    _drain(app)
    response = client.get(f"/api/v1/photos/{solo.get_json()['id']}/clean", headers=headers)
    assert response.status_code == 200
    media.verify_clean(response.get_data())

    for bad, code, why in (
        (b"not an image", "unsupported_media", "not an accepted image format"),
        (b"", "empty_file", "the file is empty"),
    ):
        response = post(bad)
        assert response.status_code == 400
        assert response.get_json()["error"] == code
        assert why in response.get_json()["message"]
    response = post((corpus.faces_dir / "obama" / "obama3.jpg").read_bytes(), "billboard")
    assert response.status_code == 400
    assert response.get_json()["error"] == "unknown_channel"
    assert client.get("/api/v1/photos/999999", headers=headers).status_code == 404
    reviewer = {"Authorization": f"Bearer {api_token(rt, make_account(rt, 'reviewer'))}"}
    assert client.get(f"/api/v1/photos/{photo_id}", headers=reviewer).status_code == 403
