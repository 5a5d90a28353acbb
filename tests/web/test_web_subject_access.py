"""Subject access on corpus group photos: only the photos in which the person is confirmed, every other
face covered (verified by detecting again), images that cannot be verified withheld and listed.

Obama and Biden are enrolled. group/obama_and_biden.jpg shows Biden, Obama and an unknown child;
group/two_people.jpg Obama and Biden, Biden's face marked by a reviewer as "someone else";
biden/biden.jpg only Biden (nearest to Obama's template among nobody else's: never Obama's photo).
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy
import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select
from web_helpers import csrf, make_account, sign_in

from consent_db.models import Decision, Person
from consent_db.session import unit_of_work
from gatekeeper.photos import gate as gate_service
from gatekeeper.photos import review
from gatekeeper.retention import subject_access
from gatekeeper.runtime import Runtime
from helpers import add_person
from workers import JobQueue

pytestmark = pytest.mark.slow

OBAMA_BOXES = {  # from corpus/faces/manifest.csv
    "obama/obama2.jpg": (171, 290, 438, 558),
    "group/obama_and_biden.jpg": (1132, 402, 1326, 596),
    "group/two_people.jpg": (253, 47, 408, 202),
}


def _gate(rt: Any, photo: Path) -> int:
    now = datetime.now(UTC)
    with unit_of_work(rt.sessions) as session:
        tools = gate_service.load_tools(session, rt.settings, rt.faces, rt.originals)
    with unit_of_work(rt.sessions) as session:
        return gate_service.gate_photo(
            session, photo.read_bytes(), channel="website", tools=tools, now=now, actor="t"
        ).photo_id


@pytest.fixture
def gated(rt: Any, corpus: Any) -> dict[str, int]:
    add_person(rt, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"], name="Barack Obama")
    add_person(rt, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"], name="Joe Biden")
    ids = {name: _gate(rt, corpus.faces_dir / name) for name in (*OBAMA_BOXES, "biden/biden2.jpg")}
    with unit_of_work(rt.sessions) as session:
        decision = session.scalars(
            select(Decision)
            .where(Decision.photo_id == ids["group/two_people.jpg"])
            .order_by(Decision.id.desc())
        ).first()
        assert decision is not None
        biden_face = next(f.position for f in decision.faces if f.left > 700)
    with unit_of_work(rt.sessions) as session:
        review.resolve_face(
            session,
            ids["group/two_people.jpg"],
            biden_face,
            "stranger",
            reason="a visitor, not enrolled",
            settings=rt.settings,
            engine=rt.faces,
            originals=rt.originals,
            now=datetime.now(UTC),
            actor="t",
            learn=False,
        )
    return ids


def _centre(box: Any) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_the_export_holds_only_confirmed_photos_with_every_other_face_covered(
    app: Flask, rt: Any, gated: dict[str, int]
) -> None:
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    page = client.get("/people/obama/photos").get_data(as_text=True)
    assert "3 photos" in page
    assert f"<td>{gated['biden/biden2.jpg']}</td>" not in page
    response = client.post("/people/obama/export", data={"csrf_token": csrf(client, "/people/obama/photos")})
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    text = archive.read("manifest.json").decode()
    manifest = json.loads(text)
    by_photo = {p["photo"]: p for p in manifest["photos"]}
    assert set(by_photo) == {gated[name] for name in OBAMA_BOXES}
    # The manifest names no one but its subject.
    assert "biden" not in text.lower() and "biden" not in archive.read("manifest.csv").decode().lower()
    assert by_photo[gated["obama/obama2.jpg"]]["image"].startswith("the original, stripped")
    assert by_photo[gated["group/obama_and_biden.jpg"]]["image"].startswith("other faces covered")
    assert by_photo[gated["group/two_people.jpg"]]["image"].startswith("other faces covered")
    assert manifest["withheld"] == []
    # Detected again, at every angle the gate searches: the only face left in each image is Obama's.
    for name, box in OBAMA_BOXES.items():
        image = Image.open(io.BytesIO(archive.read(by_photo[gated[name]]["file"])))
        assert not image.getexif()
        found = rt.faces.analyse(numpy.asarray(image.convert("RGB")))
        assert found.limit is None
        assert len(found.faces) == 1, name
        x, y = _centre(found.faces[0].box)
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3], name


def test_an_image_that_cannot_be_checked_completely_is_withheld_and_listed(
    rt: Any, gated: dict[str, int]
) -> None:
    # A detector that stops after two faces cannot vouch for a photo of three: it is withheld.
    capped = Runtime(rt.settings.with_(faces={"max_faces": 2}), sender=JobQueue)
    try:
        with unit_of_work(rt.sessions) as session:
            data = subject_access.export_person(
                session,
                "obama",
                originals=rt.originals,
                settings=capped.settings,
                engine=capped.faces,
                now=datetime.now(UTC),
                actor="t",
            )
    finally:
        if "db" in capped.__dict__:
            capped.db.dispose()
    archive = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(archive.read("manifest.json"))
    by_photo = {p["photo"]: p for p in manifest["photos"]}
    group = by_photo[gated["group/obama_and_biden.jpg"]]
    assert (group["file"], group["image"]) == (None, subject_access.WITHHELD)
    assert manifest["withheld"] == [gated["group/obama_and_biden.jpg"]]
    assert len([n for n in archive.namelist() if n.startswith("photos/")]) == 2
    assert b"withheld: could not cover every other face" in archive.read("manifest.csv")


def test_possible_matches_are_listed_apart_for_consent_admins_with_no_image(
    app: Flask, rt: Any, gated: dict[str, int]
) -> None:
    # Biden's face in biden2.jpg, recorded as an uncertain match whose candidate is Obama.
    with unit_of_work(rt.sessions) as session:
        decision = session.scalars(
            select(Decision)
            .where(Decision.photo_id == gated["biden/biden2.jpg"])
            .order_by(Decision.id.desc())
        ).first()
        assert decision is not None
        obama_id = session.scalar(select(Person.id).where(Person.external_id == "obama"))
        for face in decision.faces:
            face.outcome, face.person_id, face.distance = "uncertain", obama_id, 0.55
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    page = client.get("/people/obama/photos").get_data(as_text=True)
    confirmed, _, possible = page.partition("Possible matches")
    assert "3 photos" in confirmed and f"<td>{gated['biden/biden2.jpg']}</td>" not in confirmed
    assert f"Photo {gated['biden/biden2.jpg']} (website)" in possible
    assert "<img" not in possible
    response = client.post("/people/obama/export", data={"csrf_token": csrf(client, "/people/obama/photos")})
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["possible_matches"]["photos"] == [gated["biden/biden2.jpg"]]
    assert gated["biden/biden2.jpg"] not in {p["photo"] for p in manifest["photos"]}
    assert len([n for n in archive.namelist() if n.startswith("photos/")]) == 3
