"""An unrecognised face is nobody, on every surface: web pages, the API, the command line, the audit
log, the review queue and "every photo of this person".

One person is enrolled (Barack Obama, L001, from corpus/faces/obama/obama.jpg); photos of other
people are gated. Their faces are nearest to L001's template, and the database keeps that candidate
(the consent rules need it), but no surface may name it: only a reviewer, a consent admin or an
admin may see an uncertain match's candidate, as "possible match", in the review queue.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import api_token, csrf, make_account, sign_in

from consent_db.models import AuditEvent, Decision
from consent_db.session import unit_of_work
from helpers import add_person, gate_json, run

pytestmark = pytest.mark.slow

NAME, ID = "Barack Obama", "L001"
GROUP = "group/obama_and_biden.jpg"  # biden, obama, an unknown child (left to right)
STRANGER = "biden/biden.jpg"


def _enrol_one(rt: Any, corpus: Any) -> int:
    return add_person(rt, ID, photos=[corpus.faces_dir / "obama/obama.jpg"], name=NAME)


def _signed_in(app: Flask, rt: Any, role: str) -> tuple[FlaskClient, str]:
    """A client signed in as a new account of `role`, and an API token of that account."""
    client = app.test_client()
    account = make_account(rt, role)
    sign_in(client, account)
    return client, api_token(rt, account)


def _upload(app: Flask, client: FlaskClient, photo: Path) -> int:
    """Upload one photo through the form, run its gate job; its photo id."""
    from werkzeug.test import EnvironBuilder

    from gatekeeper.web.photos import job_queue

    data = {
        "csrf_token": csrf(client, "/upload"),
        "channel": "website",
        "photos": [(io.BytesIO(photo.read_bytes()), photo.name)],
    }
    builder = EnvironBuilder(path="/upload", method="POST", data=data)
    environ = builder.get_environ()
    try:
        response = client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        job_queue().drain()
    batch = client.get(response.headers["Location"] + ".json").get_json()
    return int(batch["photos"][0]["id"])


def _faces(rt: Any, photo_id: int) -> list[Any]:
    with unit_of_work(rt.sessions) as session:
        decision = session.scalar(
            select(Decision).where(Decision.photo_id == photo_id).order_by(Decision.id.desc()).limit(1)
        )
        assert decision is not None
        return list(decision.faces)


def _gated_audit(rt: Any, photo_id: int) -> dict[str, Any]:
    with unit_of_work(rt.sessions) as session:
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "photo.gated", AuditEvent.subject == f"photo:{photo_id}")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None
        return dict(event.details)


def test_an_unknown_face_carries_no_person_on_the_page_the_api_the_cli_or_the_audit_log(
    app: Flask, rt: Any, corpus: Any
) -> None:
    obama = _enrol_one(rt, corpus)
    uploader, token = _signed_in(app, rt, "uploader")
    photo_id = _upload(app, uploader, corpus.faces_dir / GROUP)
    faces = _faces(rt, photo_id)
    unknown = [f for f in faces if f.outcome == "unknown"]
    # The premise: the database keeps L001 as the nearest template of faces that are not L001.
    assert unknown and all(f.person_id == obama for f in unknown)
    assert [f.outcome for f in faces].count("consented") == 1

    page = uploader.get(f"/photos/{photo_id}").get_data(as_text=True)
    items = re.findall(r'<li class="face-item[^"]*">(.*?)</li>', page, re.S)
    assert len(items) == len(faces)
    named = [i for i in items if NAME in i or ID in i]
    assert len(named) == 1 and "consented" in named[0]
    assert sum("not recognised" in i for i in items) == len(unknown)

    answer = uploader.get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    api_faces = answer.get_json()["faces"]
    assert [f["person"] for f in api_faces if f["outcome"] == "unknown"] == [None] * len(unknown)
    assert [f["distance"] for f in api_faces if f["outcome"] == "unknown"] == [None] * len(unknown)
    assert [f["person"] for f in api_faces if f["outcome"] == "consented"] == [ID]

    lines = gate_json(rt, "website", corpus.faces_dir / GROUP)
    assert [f["person"] for f in lines[0]["faces"] if f["outcome"] == "unknown"] == [None] * len(unknown)
    audit_faces = _gated_audit(rt, photo_id)["faces"]
    assert [f["person"] for f in audit_faces if f["outcome"] == "unknown"] == [None] * len(unknown)
    assert [f["person"] for f in audit_faces if f["outcome"] == "consented"] == [str(obama)]
    # The audit log's CSV export, as an auditor downloads it, says the same.
    auditor, _ = _signed_in(app, rt, "auditor")
    exported = auditor.get(f"/audit.csv?action=photo.gated&subject=photo:{photo_id}").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert len(rows) == 2  # the upload's gate job, then `gate --json` on the same file
    for row in rows:
        csv_faces = json.loads(row["details"])["faces"]
        assert [f["person"] for f in csv_faces if f["outcome"] == "unknown"] == [None] * len(unknown)


class TestUncertainMatches:
    """Every face nearer than 1.0 to a template is an uncertain match, not unknown."""

    @pytest.fixture
    def settings(self, settings: Any) -> Any:
        return settings.with_(policy={"review_distance": 1.0})

    def test_an_uncertain_match_is_named_only_as_a_possible_match_to_reviewers_in_the_review_queue(
        self, app: Flask, rt: Any, corpus: Any
    ) -> None:
        obama = _enrol_one(rt, corpus)
        uploader, token = _signed_in(app, rt, "uploader")
        photo_id = _upload(app, uploader, corpus.faces_dir / STRANGER)
        [face] = _faces(rt, photo_id)
        assert (face.outcome, face.person_id) == ("uncertain", obama)

        clients = {"uploader": uploader}
        for role in ("reviewer", "consent_admin", "admin"):
            clients[role] = _signed_in(app, rt, role)[0]
        for role, client in clients.items():
            page = client.get(f"/photos/{photo_id}").get_data(as_text=True)
            assert NAME not in page and ID not in page, role
        answer = uploader.get(f"/api/v1/photos/{photo_id}", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200
        assert [(f["outcome"], f["person"], f["distance"]) for f in answer.get_json()["faces"]] == [
            ("uncertain", None, None)
        ]
        [line] = gate_json(rt, "website", corpus.faces_dir / STRANGER)
        assert [(f["outcome"], f["person"]) for f in line["faces"]] == [("uncertain", None)]
        assert [f["person"] for f in _gated_audit(rt, photo_id)["faces"]] == [None]

        # In the review queue, to those who resolve faces: "possible match", never as who the face is.
        for role in ("reviewer", "consent_admin", "admin"):
            queue = clients[role].get("/review").get_data(as_text=True)
            assert f"possible match: {NAME}" in queue, role
            item = clients[role].get(f"/review/{photo_id}/0").get_data(as_text=True)
            assert f"Possible match: {NAME}" in item, role
        listed = run(rt, "review", "list")
        assert f"possible match: {NAME}" in listed.output
        # Never in every photo of this person: the photo is a possible match only, with no image.
        admin = clients["consent_admin"]
        photos = admin.get(f"/people/{ID}/photos").get_data(as_text=True)
        confirmed, _, possible = photos.partition("Possible matches")
        assert f"<td>{photo_id}</td>" not in confirmed and "No photo shows this person" in confirmed
        assert f"Photo {photo_id} (website)" in possible

    def test_a_review_result_names_only_the_faces_identified(self, app: Flask, rt: Any, corpus: Any) -> None:
        _enrol_one(rt, corpus)
        # Obama (consented) beside Biden (uncertain, nearest L001): the photo waits for review.
        [line] = gate_json(rt, "website", corpus.faces_dir / "group/two_people.jpg")
        assert [(f["outcome"], f["person"]) for f in line["faces"]] == [
            ("consented", ID),
            ("uncertain", None),
        ]
        with unit_of_work(rt.sessions) as session:
            from consent_db.models import Photo

            photo_id = session.scalars(select(Photo.id)).one()
        result = run(
            rt,
            "review",
            "resolve",
            str(photo_id),
            "1",
            "--person",
            ID,
            "--reason",
            "seen at the event",
            "--json",
        )
        assert result.exit_code == 0, result.output
        faces = json.loads(result.stdout)["faces"]
        assert [(f["outcome"], f["person"]) for f in faces] == [("consented", ID), ("uncertain", None)]
