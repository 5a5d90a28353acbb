"""The review queue on real photos: a face identified on the page is decided again by the consent rules.

A learner whose parent objects to face matching has no template, so their face is unknown; with
GATEKEEPER_UNKNOWN_FACES=review the photo waits for a reviewer, who identifies them by eye.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import func, select
from web_helpers import csrf, make_account, sign_in

from consent_db.models import AuditEvent, FaceTemplate, Person, Photo
from consent_db.session import unit_of_work
from gatekeeper.photos import gate as gate_service
from helpers import add_person

pytestmark = pytest.mark.slow

GROUP = "group/two_people.jpg"  # obama (face 1) and biden (face 2), numbered from 1 on pages


@pytest.fixture
def settings(settings: Any) -> Any:
    """Unknown faces go to a reviewer instead of blocking at once."""
    return settings.with_(policy={"unknown_faces": "review"})


def _people(rt: Any, corpus: Any, **kim: Any) -> None:
    """obama, an adult matched by face; kim (biden's face), a learner with no template."""
    add_person(rt, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"])
    add_person(
        rt,
        "kim",
        **{
            "born": date(2015, 5, 5),
            "granted_by": "parent",
            "channels": ("website",),
            "biometric_objection": "parent",
            **kim,
        },
    )


def _gate(rt: Any, photo: Path) -> int:
    now = datetime.now(UTC)
    with unit_of_work(rt.sessions) as session:
        tools = gate_service.load_tools(session, rt.settings, rt.faces, rt.originals)
    with unit_of_work(rt.sessions) as session:
        result = gate_service.gate_photo(
            session, photo.read_bytes(), channel="website", tools=tools, now=now, actor="t"
        )
    assert result.verdict == "review", result.reasons
    return result.photo_id


def _reviewer(app: Flask, rt: Any) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, "reviewer"))
    return client


def _decision(html: str) -> str:
    marker = 'name="decision" type="hidden" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _resolve(client: FlaskClient, photo: int, face: int, **form: str) -> Any:
    page = client.get(f"/review/{photo}/{face}").get_data(as_text=True)
    data = {"csrf_token": csrf(client, f"/review/{photo}/{face}"), "decision": _decision(page), **form}
    return client.post(f"/review/{photo}/{face}", data=data, follow_redirects=True)


def _status(rt: Any, photo: int) -> str:
    with unit_of_work(rt.sessions) as session:
        found = session.get(Photo, photo)
        assert found is not None
        return found.status


def _reviews(rt: Any) -> list[AuditEvent]:
    with unit_of_work(rt.sessions) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == "face.reviewed")))


def test_the_queue_shows_the_waiting_face_with_a_private_stripped_crop(
    app: Flask, rt: Any, corpus: Any
) -> None:
    _people(rt, corpus)
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    queue = client.get("/review").get_data(as_text=True)
    assert f"Photo {photo}, face 2<" in queue and "unknown face" in queue
    assert f"Photo {photo}, face 1<" not in queue  # obama was matched and consented: nothing to review
    assert f"Photo {photo}, face 0" not in queue  # faces are numbered from 1, as on the photo page

    crop = client.get(f"/review/crops/{photo}/1.jpg")
    assert crop.status_code == 200 and crop.mimetype == "image/jpeg"
    assert "no-store" in crop.headers["Cache-Control"]
    image = Image.open(io.BytesIO(crop.data))
    assert image.format == "JPEG" and max(image.size) <= 240
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    # The crop shows a face: the engine finds exactly one in it.
    assert len(rt.faces.analyse(__import__("numpy").asarray(image.convert("RGB"))).faces) == 1

    # Only signed-in staff who review may see it.
    anonymous = app.test_client().get(f"/review/crops/{photo}/1.jpg")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    uploader = app.test_client()
    sign_in(uploader, make_account(rt, "uploader"))
    assert uploader.get(f"/review/crops/{photo}/1.jpg").status_code == 403
    assert client.get(f"/review/crops/{photo}/7.jpg").status_code == 404


def test_identified_on_the_page_the_consent_rules_decide_and_it_is_audited(
    app: Flask, rt: Any, corpus: Any
) -> None:
    _people(rt, corpus)
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    # Found by a search on the page, as a reviewer without a candidate does.
    found = client.get(f"/review/{photo}/1?q=kim").get_data(as_text=True)
    assert "Kim (kim)" in found
    page = _resolve(client, photo, 1, resolution="person", person="kim", reason="Kim, Year 7, seen by eye")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"Photo {photo}, face 2: identified as kim" in html and "decided again: publishable" in html
    assert _status(rt, photo) == "publishable"
    [event] = _reviews(rt)
    assert event.actor == "user:reviewer"
    assert (event.details["resolution"], event.details["reason"]) == ("person", "Kim, Year 7, seen by eye")
    assert "Nothing is waiting for review" in client.get("/review").get_data(as_text=True)
    # The face is now kim's reference for a later possible match of kim; never served on request.
    from gatekeeper.photos import face_crops

    with unit_of_work(rt.sessions) as session:
        assert face_crops.reference_face(session, "kim") is not None
        assert face_crops.reference_face(session, "kim", exclude_photo=photo) is None
    assert client.get("/review/references/kim.jpg").status_code == 404


def test_a_reviewer_identifies_but_never_overrides_consent(app: Flask, rt: Any, corpus: Any) -> None:
    # kim's parent consented to social media only: identified, the photo is blocked for the website.
    _people(rt, corpus, channels=("social_media",))
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    html = _resolve(client, photo, 1, resolution="person", person="kim", reason="seen by eye").get_data(
        as_text=True
    )
    assert "decided again: blocked (no consent for channel)" in html
    assert _status(rt, photo) == "blocked"


@pytest.mark.parametrize(
    ("resolution", "verdict"),
    [("stranger", "blocked"), ("not_a_face", "publishable")],
)
def test_someone_else_blocks_and_not_a_face_leaves_the_others_to_decide(
    app: Flask, rt: Any, corpus: Any, resolution: str, verdict: str
) -> None:
    _people(rt, corpus)
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    html = _resolve(client, photo, 1, resolution=resolution, reason="looked at it").get_data(as_text=True)
    assert f"decided again: {verdict}" in html
    assert _status(rt, photo) == verdict
    assert [e.details["resolution"] for e in _reviews(rt)] == [resolution]


def test_a_reason_is_required_and_nothing_changes_without_it(app: Flask, rt: Any, corpus: Any) -> None:
    _people(rt, corpus)
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    response = _resolve(client, photo, 1, resolution="person", person="kim", reason="  ")
    assert response.status_code == 400 and "Give the reason." in response.get_data(as_text=True)
    missing = _resolve(client, photo, 1, resolution="person", reason="seen by eye")
    assert missing.status_code == 400 and "Choose the person" in missing.get_data(as_text=True)
    assert _status(rt, photo) == "review" and _reviews(rt) == []


@pytest.mark.parametrize("learn", [True, False])
def test_a_confirmed_face_becomes_a_template_only_when_chosen_and_consent_allows(
    app: Flask, rt: Any, corpus: Any, learn: bool
) -> None:
    # An adult with biometric consent but no enrolment photo yet.
    _people(
        rt,
        corpus,
        born=date(1980, 1, 1),
        granted_by="self",
        biometric=True,
        biometric_objection=None,
    )
    photo = _gate(rt, corpus.faces_dir / GROUP)
    client = _reviewer(app, rt)
    form = {"resolution": "person", "person": "kim", "reason": "seen by eye"}
    if learn:
        form["learn"] = "y"
    html = _resolve(client, photo, 1, **form).get_data(as_text=True)
    assert ("added as a template" in html) is learn
    with unit_of_work(rt.sessions) as session:
        count = session.scalar(
            select(func.count()).select_from(FaceTemplate).join(Person).where(Person.external_id == "kim")
        )
    assert count == (1 if learn else 0)


def test_a_page_showing_an_older_decision_changes_nothing(app: Flask, rt: Any, corpus: Any) -> None:
    # Nobody enrolled: both faces are unknown and wait; two reviewers open the same photo.
    photo = _gate(rt, corpus.faces_dir / "group/two_people.jpg")
    first, second = _reviewer(app, rt), app.test_client()
    sign_in(second, make_account(rt, "reviewer", username="reviewer-two"))
    stale = _decision(second.get(f"/review/{photo}/1").get_data(as_text=True))
    _resolve(first, photo, 0, resolution="stranger", reason="a visiting parent")
    response = second.post(
        f"/review/{photo}/1",
        data={
            "csrf_token": csrf(second, "/review"),
            "decision": stale,
            "resolution": "not_a_face",
            "reason": "a poster",
        },
        follow_redirects=True,
    )
    assert "Someone changed this photo" in response.get_data(as_text=True)
    assert [(e.actor, e.details["resolution"]) for e in _reviews(rt)] == [("user:reviewer", "stranger")]
    assert _status(rt, photo) == "blocked"
