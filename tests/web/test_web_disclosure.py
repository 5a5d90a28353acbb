"""Reviewers and auditors see only their share: no safeguarding flag, no person lookup by wildcard, no
reference face but a candidate's, no safeguarding reason in the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from web_helpers import csrf, import_people, make_account, sign_in

from consent_db.models import AuditEvent, SafeguardingNote
from consent_db.session import unit_of_work
from gatekeeper.services import people
from helpers import run

REASON = "Court order 4471: father must not learn the school"


def _client(app: Flask, rt: Any, role: str) -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, role))
    return client


def test_the_safeguarding_reason_is_kept_for_consent_admins_and_never_written_to_the_audit_log(
    app: Flask, rt: Any, tmp_path: Path
) -> None:
    import_people(rt, tmp_path)
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
