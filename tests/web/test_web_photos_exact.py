"""What staff see on the batch and photo pages is exact: refusals in the same words as `gate`, with
no decoder internals; each photo's thumbnail and the name it was uploaded under (for its uploader
only); a photo's publications; one Publish per channel; counts in correct English; the staff menu.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from web_helpers import api_token, csrf, make_account, sign_in

from consent_db.models import Job, Publication, UploadItem
from consent_db.session import unit_of_work
from helpers import gate_json

pytestmark = pytest.mark.slow

NO_FACES = "canon_eos_40d.jpg"  # a corpus photo with camera EXIF and no face in it
GPS_NO_FACES = "nikon_coolpix_p6000_gps.jpg"  # 640 x 480, GPS and maker notes, no face


def _upload(client: FlaskClient, files: list[tuple[bytes, str]], channel: str = "website") -> Any:
    data = {
        "csrf_token": csrf(client, "/upload"),
        "channel": channel,
        "photos": [(io.BytesIO(content), name) for content, name in files],
    }
    return client.post("/upload", data=data, content_type="multipart/form-data")


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


def _client(app: Flask, rt: Any, role: str, username: str | None = None) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, role, username=username))
    return client


def _text(html: str) -> str:
    """A page's words, without its markup."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


# --- refusals: the same reason code and words as the command line, no internals ----------------------


def test_a_photo_over_the_pixel_limit_says_why_in_the_words_of_gate_with_no_preview_or_face_list(
    app: Flask, rt: Any, corpus: Any
) -> None:
    rt.settings = rt.settings.with_(media={"max_pixels": 1_000_000})
    path = corpus.faces_dir / "obama" / "obama-1080p.jpg"
    [line] = gate_json(rt, "website", path)
    assert line["error_code"] == "image_too_large"
    assert line["error"] == (
        "the photo has 2,073,600 pixels (2.1 MP), over the limit of 1,000,000 (1 MP): "
        "resize it below 1 MP and upload it again"
    )

    client = _client(app, rt, "uploader")
    batch_id = _batch_id(_upload(client, [(path.read_bytes(), "assembly.jpg")]))
    _drain(app)
    [photo_id] = _photo_ids(rt, batch_id)
    html = client.get(f"/photos/{photo_id}").get_data(as_text=True)
    page = _text(html)
    assert "Refused" in page and "this photo could not be checked" in page
    assert line["error"][0].upper() + line["error"][1:] + "." in page
    assert "Reason code: image_too_large" in page
    assert "preview.jpg" not in html and "<svg" not in html
    assert "No face was found" not in page and "Faces" not in page
    assert "could not be read as an image" not in page

    token = api_token(rt, make_account(rt, "admin"))
    shown = client.get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"})
    got = shown.get_json()
    assert (got["verdict"], got["reasons"], got["faces"]) == ("blocked", ["unreadable_image"], [])
    assert (got["error_code"], got["error"]) == (line["error_code"], line["error"])

    batch = client.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert line["error"] in batch and "thumbnail.jpg" not in batch
    assert client.get(f"/batches/{batch_id}.json").get_json()["photos"][0]["error"] == line["error"]


def test_a_file_pillow_cannot_open_shows_plain_words_and_no_decoder_internals(
    app: Flask, rt: Any, tmp_path: Path
) -> None:
    # JPEG magic, then nothing a decoder can use: Pillow's own message names a BytesIO object.
    broken = b"\xff\xd8\xff\xe0" + b"\x00" * 64
    source = tmp_path / "broken.jpg"
    source.write_bytes(broken)
    [line] = gate_json(rt, "website", source)
    assert line["error_code"] == "unreadable_image"
    assert line["error"] == (
        "the file could not be read as an image (it is empty, incomplete or damaged): "
        "copy it again from the camera or phone and upload it again"
    )
    client = _client(app, rt, "uploader")
    batch_id = _batch_id(_upload(client, [(broken, "broken.jpg")]))
    [photo_id] = _photo_ids(rt, batch_id)
    # Asked for before the check has run, the preview fails: its error page says why in plain words.
    preview = client.get(f"/photos/{photo_id}/preview.jpg")
    assert preview.status_code == 422
    body = preview.get_data(as_text=True)
    assert "could not be read as an image" in body and "unreadable_image" in body
    _drain(app)
    token = api_token(rt, make_account(rt, "admin"))
    shown = client.get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"})
    page = client.get(f"/photos/{photo_id}").get_data(as_text=True)
    for text in (body, page, shown.get_data(as_text=True)):
        assert "BytesIO" not in text and " at 0x" not in text and "cannot identify" not in text
    assert shown.get_json()["error"] == line["error"]


def test_files_refused_at_upload_get_the_same_code_and_words_on_the_web_the_api_and_gate(
    app: Flask, rt: Any, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"minutes of the governors' meeting")
    [line] = gate_json(rt, "website", notes)
    assert line["error_code"] == "unsupported_media"
    client = _client(app, rt, "uploader")
    page = _upload(client, [(notes.read_bytes(), "notes.jpg")]).get_data(as_text=True)
    assert f"Not uploaded: notes.jpg: {line['error']}." in page.replace("&#39;", "'")
    token = api_token(rt, make_account(rt, "admin"))
    response = client.post(
        "/api/v1/photos",
        data={"file": (io.BytesIO(notes.read_bytes()), "notes.jpg"), "channel": "website"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 400
    assert response.get_json() == {"error": "unsupported_media", "message": f"notes.jpg: {line['error']}"}


# --- the batch page names each photo ------------------------------------------------------------------


def test_the_batch_shows_thumbnails_and_upload_names_to_their_uploader_only(
    app: Flask, rt: Any, corpus: Any
) -> None:
    original = (corpus.metadata_dir / GPS_NO_FACES).read_bytes()
    uploader = _client(app, rt, "uploader")
    batch_id = _batch_id(_upload(uploader, [(original, "Sports day - Amy Pond.jpg")]))
    _drain(app)
    [photo_id] = _photo_ids(rt, batch_id)
    page = uploader.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "Sports day - Amy Pond.jpg" in page
    assert f'src="/photos/{photo_id}/thumbnail.jpg"' in page

    thumbnail = uploader.get(f"/photos/{photo_id}/thumbnail.jpg")
    assert thumbnail.status_code == 200 and thumbnail.mimetype == "image/jpeg"
    assert "no-store" in thumbnail.headers["Cache-Control"]
    with Image.open(io.BytesIO(thumbnail.data)) as image:
        assert max(image.size) == 240
        assert not image.getexif() and "icc_profile" not in image.info and "exif" not in image.info
    assert b"NIKON" not in thumbnail.data and b"Amy Pond" not in thumbnail.data

    assert "Uploaded by you as Sports day - Amy Pond.jpg" in _text(
        uploader.get(f"/photos/{photo_id}").get_data(as_text=True)
    )

    # Another member of staff sees the photo by its number only.
    other = _client(app, rt, "admin")
    seen = other.get(f"/batches/{batch_id}").get_data(as_text=True)
    assert "Amy Pond" not in seen and f"Photo {photo_id}" in seen
    assert "Amy Pond" not in other.get(f"/photos/{photo_id}").get_data(as_text=True)

    # The published copy and the download carry nothing of the name.
    clean = uploader.post(f"/photos/{photo_id}/clean", data={"csrf_token": _token(uploader, photo_id)})
    assert clean.status_code == 200
    assert "Amy" not in clean.headers["Content-Disposition"] and b"Amy Pond" not in clean.data
    assert b"Sports day" not in clean.data
    # The download is a publication: the photo page says when, by whom and under which name.
    name = re.search(r'filename="([^"]+)"', clean.headers["Content-Disposition"])
    assert name
    page = _text(uploader.get(f"/photos/{photo_id}").get_data(as_text=True))
    said = rf"Downloaded for website on [0-9-]+ [0-9:]+ UTC by uploader as {re.escape(name.group(1))} — live"
    assert re.search(said, page), page


def test_purging_a_photo_forgets_the_name_it_was_uploaded_under(app: Flask, rt: Any, corpus: Any) -> None:
    from gatekeeper.retention import purge

    original = (corpus.metadata_dir / NO_FACES).read_bytes()
    uploader = _client(app, rt, "uploader")
    batch_id = _batch_id(_upload(uploader, [(original, "Amy Pond.jpg")]))
    _drain(app)
    [photo_id] = _photo_ids(rt, batch_id)
    with unit_of_work(rt.sessions) as session:
        purge.purge_photo(
            session,
            photo_id,
            originals=rt.originals,
            settings=rt.settings,
            now=_now(),
            actor="test",
            why="test",
        )
    with unit_of_work(rt.sessions) as session:
        [item] = session.scalars(select(UploadItem).where(UploadItem.batch_id == batch_id))
        assert (item.photo_id, item.file_name) == (None, None)


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _token(client: FlaskClient, photo_id: int) -> str:
    html = client.get(f"/photos/{photo_id}").get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


# --- publications on the photo page; one Publish per channel --------------------------------------------


def _count(rt: Any, model: Any, *where: Any) -> int:
    with unit_of_work(rt.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_the_photo_page_lists_its_publications_and_a_second_publish_writes_nothing(
    app: Flask, rt: Any, corpus: Any
) -> None:
    client = _client(app, rt, "uploader", username="jo-comms")
    batch_id = _batch_id(_upload(client, [((corpus.metadata_dir / NO_FACES).read_bytes(), "field.jpg")]))
    _drain(app)
    [photo_id] = _photo_ids(rt, batch_id)
    assert "Not published anywhere yet." in _text(client.get(f"/photos/{photo_id}").get_data(as_text=True))

    first = client.post(
        f"/photos/{photo_id}/publish", data={"csrf_token": _token(client, photo_id)}, follow_redirects=True
    )
    assert "Publishing is queued" in first.get_data(as_text=True)
    # Clicked again before the job ran: nothing more is queued.
    queued = client.post(
        f"/photos/{photo_id}/publish", data={"csrf_token": _token(client, photo_id)}, follow_redirects=True
    )
    assert "Publishing to website is already queued: nothing new was queued." in queued.get_data(as_text=True)
    assert _count(rt, Job, Job.task == "publish") == 1
    _drain(app)

    with unit_of_work(rt.sessions) as session:
        [publication] = session.scalars(select(Publication).where(Publication.photo_id == photo_id))
        key, when = publication.key, publication.published_at
    page = _text(client.get(f"/photos/{photo_id}").get_data(as_text=True))
    assert (
        f"Published for website on {when:%Y-%m-%d %H:%M} UTC by jo-comms: {key} in the published store — live"
        in page
    )
    again = client.post(
        f"/photos/{photo_id}/publish", data={"csrf_token": _token(client, photo_id)}, follow_redirects=True
    )
    said = _text(again.get_data(as_text=True))
    assert f"Already published to website on {when:%Y-%m-%d %H:%M} UTC by jo-comms" in said
    assert "nothing new was published" in said and "Publishing is queued" not in said
    assert _count(rt, Job, Job.task == "publish") == 1
    assert _count(rt, Publication, Publication.photo_id == photo_id) == 1


# --- plurals and the staff menu ---------------------------------------------------------------------


def test_one_photo_uploaded_reads_in_the_singular(app: Flask, rt: Any, corpus: Any) -> None:
    client = _client(app, rt, "uploader")
    response = _upload(client, [((corpus.metadata_dir / NO_FACES).read_bytes(), "one.jpg")])
    page = _text(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "1 photo uploaded; each is checked in the background." in page
    assert "1 photo uploaded by uploader" in page
    assert "1 photos" not in page


@pytest.mark.parametrize("role", ["uploader", "reviewer", "consent_admin", "auditor", "admin"])
def test_the_staff_menu_links_takedowns_and_publications_exactly_for_the_roles_that_may_open_them(
    app: Flask, rt: Any, role: str
) -> None:
    client = _client(app, rt, role)
    home = client.get("/").get_data(as_text=True)
    menu = home.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    for path in ("/takedowns", "/publications"):
        may_open = client.get(path).status_code == 200
        assert (f'href="{path}"' in menu) == may_open, (role, path)
    for link in re.findall(r'href="(/[^"]*)"', menu):
        assert client.get(link).status_code == 200, (role, link)


def test_the_api_numbers_faces_from_1_as_the_photo_page_does(app: Flask, rt: Any, corpus: Any) -> None:
    client = _client(app, rt, "uploader")
    group = (corpus.faces_dir / "group" / "two_people.jpg").read_bytes()
    batch_id = _batch_id(_upload(client, [(group, "two.jpg")]))
    _drain(app)
    [photo_id] = _photo_ids(rt, batch_id)
    token = api_token(rt, make_account(rt, "admin"))
    got = client.get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert [f["number"] for f in got["faces"]] == [1, 2]
    page = _text(client.get(f"/photos/{photo_id}").get_data(as_text=True))
    assert "Face 1:" in page and "Face 2:" in page and "Face 0" not in page
