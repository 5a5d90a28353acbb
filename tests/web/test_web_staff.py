"""Staff pages: people and consent for consent admins, imports with a preview, the audit log."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from web_helpers import PEOPLE_CSV, add_learners, csrf, make_account, sign_in

from consent_db.models import AuditEvent, Person
from consent_db.session import unit_of_work


def _admin(app: Flask, rt: Any, role: str = "consent_admin") -> FlaskClient:
    client = app.test_client()
    sign_in(client, make_account(rt, role))
    return client


def test_people_are_listed_and_searched_by_name_or_id(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt)
    assert re.findall(r">(L00\d)<", client.get("/people").get_data(as_text=True)) == ["L001", "L003", "L002"]
    assert re.findall(r">(L00\d)<", client.get("/people?q=amy").get_data(as_text=True)) == ["L001", "L003"]
    assert re.findall(r">(L00\d)<", client.get("/people?q=l002").get_data(as_text=True)) == ["L002"]
    assert "No one found" in client.get("/people?q=zzz").get_data(as_text=True)


def test_the_person_page_records_and_withdraws_consent_per_channel(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt)
    page = client.get("/people/L002").get_data(as_text=True)
    assert re.search(r"<td>print</td>\s*<td><span class=\"tag danger\">no", page)
    token = csrf(client, "/people/L002")
    response = client.post(
        "/people/L002/grant",
        data={
            "grant-channel": "print",
            "grant-granted_by": "parent",
            "grant-granted_by_name": "Brian Williams",
            "grant-named": "first_name",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    page = client.get("/people/L002").get_data(as_text=True)
    assert re.search(r"<td>print</td>\s*<td><span class=\"tag ok\">yes", page)
    response = client.post(
        "/people/L002/withdraw", data={"withdraw-channels": ["website"], "csrf_token": token}
    )
    assert response.status_code == 302
    page = client.get("/people/L002").get_data(as_text=True)
    assert "Withdrawn: website." in page
    assert re.search(
        r"<td>website</td>\s*<td><span class=\"tag danger\">no</span></td>\s*<td>\s*consent withdrawn", page
    )
    bad = client.post(
        "/people/L002/grant",
        data={
            "grant-channel": "carrier_pigeon",
            "grant-granted_by": "parent",
            "grant-named": "no",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 400


def test_the_safeguarding_flag_is_set_and_cleared_by_consent_admins(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt)
    token = csrf(client, "/people/L001")
    assert (
        client.post(
            "/people/L001/safeguarding",
            data={"flag-flag": "on", "flag-reason": "court order", "csrf_token": token},
        ).status_code
        == 302
    )
    page = client.get("/people/L001").get_data(as_text=True)
    assert "never published on any channel" in page
    assert "safeguarding" in client.get("/people?q=amy").get_data(as_text=True)
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(Person.safeguarding).where(Person.external_id == "L001")) is True
    assert (
        client.post("/people/L001/safeguarding", data={"flag-flag": "off", "csrf_token": token}).status_code
        == 400
    )
    client.post(
        "/people/L001/safeguarding", data={"flag-flag": "off", "flag-reason": "lifted", "csrf_token": token}
    )
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(Person.safeguarding).where(Person.external_id == "L001")) is False
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("person.safeguarding%"))
        ).all()
    assert actions == ["person.safeguarding_set", "person.safeguarding_cleared"]


def test_a_withdrawal_link_is_shown_once_to_a_consent_admin(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt)
    page = client.post("/people/L001/link", data={"csrf_token": csrf(client, "/people/L001")}).get_data(
        as_text=True
    )
    link = re.search(r"http://127\.0\.0\.1:8000(/withdraw/[A-Za-z0-9_-]{43})", page)
    assert link is not None
    assert link.group(1) not in client.get("/people/L001").get_data(as_text=True)
    assert "Photos of Amy" in app.test_client().get(link.group(1)).get_data(as_text=True)


def test_an_import_is_previewed_row_by_row_before_anything_is_stored(app: Flask, rt: Any) -> None:
    client = _admin(app, rt)
    data = PEOPLE_CSV + "L004,,2014-01-01,,no,website,parent,,,no\n"
    preview = client.post(
        "/people/import",
        data={
            "file": (io.BytesIO(data.encode()), "people.csv"),
            "csrf_token": csrf(client, "/people/import"),
        },
    )
    page = preview.get_data(as_text=True)
    assert "Preview: nothing has been saved yet" in page
    assert "3 would be imported" in page and "name is empty" in page
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 0
    upload = re.search(r'name="upload" type="hidden" value="([^"]+)"', page)
    assert upload is not None
    done = client.post(
        "/people/import/confirm",
        data={"upload": upload.group(1), "csrf_token": csrf(client, "/people/import")},
    )
    assert "3 imported" in done.get_data(as_text=True)
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 3
    # The stored preview is used once.
    again = client.post(
        "/people/import/confirm",
        data={"upload": upload.group(1), "csrf_token": csrf(client, "/people/import")},
    )
    assert again.status_code == 302


def test_a_zip_import_refuses_unsafe_names(app: Flask, rt: Any) -> None:
    client = _admin(app, rt)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("people.csv", PEOPLE_CSV)
        archive.writestr("../evil.jpg", b"x")
    response = client.post(
        "/people/import",
        data={
            "file": (io.BytesIO(buffer.getvalue()), "people.zip"),
            "csrf_token": csrf(client, "/people/import"),
        },
    )
    assert response.status_code == 400
    assert "unsafe name" in response.get_data(as_text=True)


def test_the_audit_log_filters_exports_and_shows_the_chain_status(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = _admin(app, rt, "auditor")
    page = client.get("/audit").get_data(as_text=True)
    assert "Hash chain intact" in page
    filtered = client.get("/audit?action=person.created").get_data(as_text=True)
    assert filtered.count("<td>person.created</td>") == 3 and "consent.grant" not in filtered
    prefixed = client.get("/audit?action=consent.").get_data(as_text=True)
    assert "<td>consent.grant</td>" in prefixed and "person.created</td>" not in prefixed
    export = client.get("/audit.csv?action=person.created")
    assert export.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [r["action"] for r in rows] == ["person.created"] * 3
    assert all(len(r["hash"]) == 64 for r in rows)
    assert client.get("/audit?since=yesterday").status_code == 400
    with unit_of_work(rt.sessions) as session:
        session.execute(update(AuditEvent).where(AuditEvent.id == 2).values(actor="someone-else"))
    assert "Hash chain broken at event 2" in client.get("/audit").get_data(as_text=True)


def test_a_preview_never_confirmed_is_deleted_after_a_day(app: Flask, rt: Any) -> None:
    import os

    client = _admin(app, rt)

    def preview() -> str:
        page = client.post(
            "/people/import",
            data={
                "file": (io.BytesIO(PEOPLE_CSV.encode()), "people.csv"),
                "csrf_token": csrf(client, "/people/import"),
            },
        ).get_data(as_text=True)
        match = re.search(r'name="upload" type="hidden" value="([^"]+)"', page)
        assert match is not None
        return match.group(1)

    first = preview()
    folder = rt.settings.instance_path / "uploads" / "imports"
    stale = (folder / first).stat().st_mtime - 25 * 3600
    os.utime(folder / first, (stale, stale))
    second = preview()
    assert sorted(p.name for p in folder.iterdir()) == [second]
