"""Reviewers and auditors see only their share: no safeguarding flag, no person lookup by wildcard, no
reference face but a candidate's, no safeguarding reason in the audit log.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import add_learners, csrf, make_account, sign_in

from consent_db.models import AuditEvent, SafeguardingNote
from consent_db.session import unit_of_work
from gatekeeper.people import lookup as people
from gatekeeper.photos import gate as gate_service
from helpers import add_person, run

REASON = "Court order 4471: father must not learn the school"


def _client(app: Flask, rt: Any, role: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, role))
    return client


def test_the_safeguarding_reason_is_kept_for_consent_admins_and_never_written_to_the_audit_log(
    app: Flask, rt: Any
) -> None:
    add_learners(rt)
    admin = _client(app, rt, "consent_admin")
    token = csrf(admin, "/people/L001")
    for flag, reason in (("on", REASON), ("off", "Order lifted by the court")):
        response = admin.post(
            "/people/L001/safeguarding", data={"flag-flag": flag, "flag-reason": reason, "csrf_token": token}
        )
        assert response.status_code == 302
    auditor = _client(app, rt, "auditor")
    page = auditor.get("/audit?action=person.").get_data(as_text=True)
    assert "person.safeguarding_set" in page and "person.safeguarding_cleared" in page
    exported = auditor.get("/audit.csv").get_data(as_text=True)
    assert "person.safeguarding_set" in exported
    for text in (page, exported):
        assert "Court order" not in text and "4471" not in text and "lifted by the court" not in text
    with unit_of_work(rt.sessions) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("person.safeguarding%")).order_by(AuditEvent.id)
        ).all()
        assert [e.actor for e in events] == ["user:consent-admin"] * 2
        assert all("reason" not in e.details for e in events)
        notes = session.scalars(select(SafeguardingNote).order_by(SafeguardingNote.id)).all()
        assert [(n.flag, n.reason, n.by) for n in notes] == [
            (True, REASON, "user:consent-admin"),
            (False, "Order lifted by the court", "user:consent-admin"),
        ]
    # The consent admin reads it on the person's page; the command line writes it there too.
    assert REASON in admin.get("/people/L001").get_data(as_text=True)
    result = run(rt, "people", "safeguarding", "L002", "--set", "--reason", "Looked-after child")
    assert result.exit_code == 0, result.output
    with unit_of_work(rt.sessions) as session:
        assert "Looked-after child" not in str(session.scalars(select(AuditEvent.details)).all())
        assert [
            n.reason for n in people.safeguarding_notes(session, people.find_person(session, "L002"))
        ] == ["Looked-after child"]


@pytest.mark.slow
class TestReviewerShare:
    """Obama is enrolled; Kim (Biden's face) is a learner with no template and a safeguarding flag.
    Unknown faces go to review, and any face nearer than 1.0 to a template is an uncertain match."""

    @pytest.fixture
    def settings(self, settings: Any) -> Any:
        return settings.with_(policy={"unknown_faces": "review", "review_distance": 1.0})

    @pytest.fixture
    def photo(self, rt: Any, corpus: Any) -> int:
        add_person(rt, "obama", name="Barack Obama", photos=[corpus.faces_dir / "obama/obama.jpg"])
        add_person(rt, "kim", name="Kim Learner", born=date(2015, 5, 5), granted_by="parent")
        add_person(rt, "ann", name="Ann Other")
        now = datetime.now(UTC)
        with unit_of_work(rt.sessions) as session:
            people.set_safeguarding(session, "kim", True, reason="DSL decision", now=now, actor="t")
        ids = []
        for name in ("obama/obama2.jpg", "group/two_people.jpg"):
            with unit_of_work(rt.sessions) as session:
                tools = gate_service.load_tools(session, rt.settings, rt.faces, rt.originals)
            with unit_of_work(rt.sessions) as session:
                ids.append(
                    gate_service.gate_photo(
                        session,
                        (corpus.faces_dir / name).read_bytes(),
                        channel="website",
                        tools=tools,
                        now=now,
                        actor="t",
                    ).photo_id
                )
        return ids[1]

    def test_a_reviewer_never_learns_a_safeguarding_flag(self, app: Flask, rt: Any, photo: int) -> None:
        reviewer = _client(app, rt, "reviewer")
        page = reviewer.get(f"/review/{photo}/1?q=kim").get_data(as_text=True)
        assert "Kim Learner (kim)" in page
        marker = 'name="decision" type="hidden" value="'
        decision = page[page.index(marker) + len(marker) :].split('"', 1)[0]
        done = reviewer.post(
            f"/review/{photo}/1?q=kim",
            data={
                "csrf_token": csrf(reviewer, "/review"),
                "decision": decision,
                "resolution": "person",
                "person": "kim",
                "reason": "Kim, seen at the event",
            },
            follow_redirects=True,
        ).get_data(as_text=True)
        assert "identified as kim" in done and "cannot be published" in done
        assert "safeguarding" not in done.lower()
        assert "safeguarding" not in reviewer.get(f"/photos/{photo}").get_data(as_text=True).lower()

    def test_person_search_needs_three_characters_and_takes_them_literally(
        self, app: Flask, rt: Any, photo: int
    ) -> None:
        reviewer = _client(app, rt, "reviewer")

        def listed(query: str) -> list[str]:
            page = reviewer.get(f"/review/{photo}/1", query_string={"q": query}).get_data(as_text=True)
            return [who for who in ("Kim Learner", "Ann Other") if f"{who} (" in page]

        assert listed("%") == [] and listed("_") == [] and listed("%%%") == [] and listed("___") == []
        assert listed("%im") == [] and listed("a_n") == []
        assert listed("ki") == []
        assert "at least 3 characters" in reviewer.get(f"/review/{photo}/1?q=ki").get_data(as_text=True)
        assert listed("kim") == ["Kim Learner"] and listed("OTHER") == ["Ann Other"]

    def test_a_reference_face_is_served_only_for_the_candidate_of_the_face_under_review(
        self, app: Flask, rt: Any, photo: int
    ) -> None:
        reviewer = _client(app, rt, "reviewer")
        item = reviewer.get(f"/review/{photo}/1").get_data(as_text=True)
        assert "Possible match: Barack Obama (obama)" in item
        url = f"/review/references/obama.jpg?photo={photo}&face=1"
        assert url.replace("&", "&amp;") in item
        served = reviewer.get(url)
        assert served.status_code == 200 and served.mimetype == "image/jpeg"
        # Anyone else, or without the face under review, or for a face that is not waiting: nothing.
        for other in (
            "/review/references/obama.jpg",
            f"/review/references/obama.jpg?not_photo={photo}",
            f"/review/references/kim.jpg?photo={photo}&face=1",
            f"/review/references/ann.jpg?photo={photo}&face=1",
            f"/review/references/obama.jpg?photo={photo}&face=0",
            f"/review/references/obama.jpg?photo={photo - 1}&face=0",
        ):
            assert reviewer.get(other).status_code == 404, other
