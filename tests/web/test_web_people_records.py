"""People added and edited on the web, consent with its evidence, enrolment only with biometric consent,
publications and takedowns, and every photo of a person with its export."""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from web_helpers import add_learners, csrf, make_account, sign_in

from consent_db.models import AuditEvent, Person, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper.photos import gate as gate_service
from gatekeeper.publishing import recheck as publication_checks
from helpers import add_person, run


def _admin(app: Flask, rt: Any) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    return client


def _post(client: FlaskClient, url: str, form_page: str, data: dict[str, Any]) -> Any:
    return client.post(url, data={"csrf_token": csrf(client, form_page), **data}, follow_redirects=True)


def _show(rt: Any, external_id: str) -> dict[str, Any]:
    result = run(rt, "people", "show", external_id, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _actions(rt: Any) -> list[str]:
    with unit_of_work(rt.sessions) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_a_person_is_added_edited_and_their_mis_id_never_changes(app: Flask, rt: Any) -> None:
    client = _admin(app, rt)
    page = _post(
        client,
        "/people/new",
        "/people/new",
        {"external_id": "N1", "name": " River  Song ", "date_of_birth": "2012-05-05"},
    )
    assert "River Song (N1) added" in page.get_data(as_text=True)
    again = _post(client, "/people/new", "/people/new", {"external_id": "N1", "name": "Someone Else"})
    assert again.status_code == 400 and "N1 is already taken" in again.get_data(as_text=True)
    future = _post(
        client,
        "/people/new",
        "/people/new",
        {"external_id": "N2", "name": "A", "date_of_birth": "2999-01-01"},
    )
    assert future.status_code == 400 and "in the future" in future.get_data(as_text=True)

    edited = _post(
        client,
        "/people/N1/edit",
        "/people/N1/edit",
        {
            "external_id": "HIJACK",
            "name": "River Song",
            "date_of_birth": "2012-06-06",
            "left_on": "2020-07-20",
        },
    )
    assert "Changed: date of birth, last day." in edited.get_data(as_text=True)
    shown = _show(rt, "N1")
    assert (shown["external_id"], shown["date_of_birth"], shown["left_on"], shown["status"]) == (
        "N1",
        "2012-06-06",
        "2020-07-20",
        "left",
    )
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(Person).where(Person.external_id == "HIJACK")) is None
    assert _actions(rt)[-2:] == ["person.created", "person.updated"]


def test_consent_is_recorded_with_who_gave_it_the_evidence_and_the_wording(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt)
    page = _post(
        client,
        "/people/L001/grant",
        "/people/L001",
        {
            "grant-channel": "print",
            "grant-granted_by": "parent",
            "grant-granted_by_name": "Mrs Pond",
            "grant-named": "no",
            "grant-evidence_ref": "FORM-2026-117",
            "grant-wording_version": "v3 (Sept 2026)",
        },
    )
    html = page.get_data(as_text=True)
    assert "Consent recorded for print." in html and "FORM-2026-117" in html and "v3 (Sept 2026)" in html
    last = _show(rt, "L001")["history"][-1]
    assert (last["channel"], last["by"], last["evidence"], last["wording"]) == (
        "print",
        "Mrs Pond",
        "FORM-2026-117",
        "v3 (Sept 2026)",
    )
    # The command line records the same.
    result = run(
        rt,
        "consent",
        "grant",
        "L002",
        "--channel",
        "press",
        "--granted-by",
        "parent",
        "--evidence",
        "EMAIL-88",
        "--wording",
        "v3",
    )
    assert result.exit_code == 0, result.output
    last = _show(rt, "L002")["history"][-1]
    assert (last["evidence"], last["wording"]) == ("EMAIL-88", "v3")
    assert "evidence=EMAIL-88 wording=v3" in run(rt, "people", "show", "L002").stdout


def test_the_csv_import_takes_evidence_and_wording_as_optional_columns(rt: Any, tmp_path: Path) -> None:
    text = (
        "external_id,name,channels,granted_by,evidence_ref,wording_version\n"
        "C1,Clara Oswald,website,self,FORM-9,v2\n"
        "C2,Danny Pink,website,self,,\n"
    )
    (tmp_path / "p.csv").write_text(text)
    assert run(rt, "people", "import", tmp_path / "p.csv").exit_code == 0
    assert [(h["evidence"], h["wording"]) for h in _show(rt, "C1")["history"]] == [("FORM-9", "v2")]
    assert [(h["evidence"], h["wording"]) for h in _show(rt, "C2")["history"]] == [(None, None)]


@pytest.mark.slow
def test_enrolment_is_refused_without_a_parents_biometric_consent_for_a_learner(
    app: Flask, rt: Any, corpus: Any
) -> None:
    client = _admin(app, rt)
    _post(
        client,
        "/people/new",
        "/people/new",
        {"external_id": "Y7", "name": "Young Learner", "date_of_birth": "2014-01-01"},
    )
    photo = (corpus.faces_dir / "obama/obama.jpg").read_bytes()

    def enrol() -> Any:
        return client.post(
            "/people/Y7/enrol",
            data={"csrf_token": csrf(client, "/people/Y7"), "enrol-photo": (io.BytesIO(photo), "me.jpg")},
        )

    refused = enrol()
    assert refused.status_code == 400
    assert "Protection of Freedoms Act 2012" in refused.get_data(as_text=True)
    # The learner's own consent is not enough under 18 (POFA 2012).
    _post(client, "/people/Y7/biometric", "/people/Y7", {"bio-answer": "grant", "bio-role": "self"})
    assert enrol().status_code == 400
    assert _show(rt, "Y7")["templates"] == 0
    _post(
        client,
        "/people/Y7/biometric",
        "/people/Y7",
        {"bio-answer": "grant", "bio-role": "parent", "bio-by": "Mr Learner"},
    )
    done = enrol()
    assert done.status_code == 302
    assert _show(rt, "Y7")["templates"] == 1
    assert "template.created" in _actions(rt)


def _gate(rt: Any, photo: Path, channel: str = "website") -> int:
    now = datetime.now(UTC)
    with unit_of_work(rt.sessions) as session:
        tools = gate_service.load_tools(session, rt.settings, rt.faces, rt.originals)
    with unit_of_work(rt.sessions) as session:
        return gate_service.gate_photo(
            session, photo.read_bytes(), channel=channel, tools=tools, now=now, actor="t"
        ).photo_id


@pytest.mark.slow
def test_a_takedown_task_is_listed_and_marked_done_with_a_note(app: Flask, rt: Any, corpus: Any) -> None:
    add_person(rt, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"])
    photo = _gate(rt, corpus.faces_dir / "obama/obama2.jpg")
    where = "https://social.example/posts/42"
    assert run(rt, "publications", "add", str(photo), "--channel", "website", "--where", where).exit_code == 0
    assert run(rt, "consent", "withdraw", "obama", "--channel", "website").exit_code == 0
    with unit_of_work(rt.sessions) as session:
        obama = session.scalar(select(Person.id).where(Person.external_id == "obama"))
        # What the withdrawal job does for the person whose consent went.
        publication_checks.recheck_publications(
            session, settings=rt.settings, now=datetime.now(UTC), actor="t", person_id=obama
        )
        [task] = session.scalars(select(TakedownTask)).all()
    client = _admin(app, rt)
    assert where in client.get("/publications").get_data(as_text=True)
    listing = client.get("/takedowns").get_data(as_text=True)
    assert where in listing and "Obama (obama)" in listing
    empty = _post(client, f"/takedowns/{task.id}/done", "/takedowns", {f"t{task.id}-note": " "})
    assert empty.status_code == 400 and "Say what was done." in empty.get_data(as_text=True)
    done = _post(client, f"/takedowns/{task.id}/done", "/takedowns", {f"t{task.id}-note": "post deleted"})
    assert f"Takedown task {task.id} marked done" in done.get_data(as_text=True)
    assert "No takedown is waiting." in done.get_data(as_text=True)
    with unit_of_work(rt.sessions) as session:
        stored = session.get(TakedownTask, task.id)
        assert stored is not None and (stored.note, stored.done_by) == ("post deleted", "user:consent-admin")
    assert _actions(rt)[-1] == "takedown.done"


@pytest.mark.slow
def test_every_photo_of_a_person_and_an_export_without_anyone_elses_face(
    app: Flask, rt: Any, corpus: Any
) -> None:
    add_person(rt, "obama", photos=[corpus.faces_dir / "obama/obama.jpg"])
    add_person(rt, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"])
    alone = _gate(rt, corpus.faces_dir / "obama/obama2.jpg")
    group = _gate(rt, corpus.faces_dir / "group/two_people.jpg")
    client = _admin(app, rt)
    page = client.get("/people/obama/photos").get_data(as_text=True)
    assert "2 photos" in page
    response = client.post("/people/obama/export", data={"csrf_token": csrf(client, "/people/obama/photos")})
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    manifest = json.loads(archive.read("manifest.json"))
    by_photo = {p["photo"]: p for p in manifest["photos"]}
    assert set(by_photo) == {alone, group}
    assert by_photo[alone]["image"].startswith("the original, stripped")
    assert by_photo[group]["image"] == "other faces covered (1)"
    # Faces are numbered from 1, as on the photo page: obama is face 1 of both photos.
    assert [by_photo[alone]["faces_of_person"], by_photo[group]["faces_of_person"]] == [[1], [1]]
    assert not re.search(r"<td>\s*0\s*</td>", page)  # no face 0 in the list (photo ids start at 1)
    assert manifest["consent_history"][0]["channel"] == "website"
    assert b"photo,file,image" in archive.read("manifest.csv")
    # In the group copy only obama's face can still be found; biden's is covered.
    import numpy

    copy = Image.open(io.BytesIO(archive.read(by_photo[group]["file"])))
    assert not copy.getexif()
    assert len(rt.faces.analyse(numpy.asarray(copy.convert("RGB"))).faces) == 1
    assert _actions(rt)[-1] == "person.exported"
