"""The JSON API: token auth, JSON errors, imports with a dry run, withdrawals; docs/openapi.yaml matches."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from sqlalchemy import func, select
from web_helpers import PEOPLE_CSV, add_learners, api_token, make_account

from consent_db.models import Person
from consent_db.session import unit_of_work
from helpers import run

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def _auth(rt: Any, role: str = "consent_admin") -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(rt, make_account(rt, role))}"}


def test_the_openapi_file_describes_exactly_the_api_routes(app: Flask) -> None:
    spec = yaml.safe_load(OPENAPI.read_text())
    prefix = spec["servers"][0]["url"]
    documented = {
        (method.upper(), prefix + re.sub(r"\{(\w+)\}", r"<\1>", path))
        for path, item in spec["paths"].items()
        for method in item
    }
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == routes
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"
            for param in re.findall(r"\{(\w+)\}", path):
                names = [
                    p.get("name") or p["$ref"].rsplit("/", 1)[1] for p in operation.get("parameters", [])
                ]
                assert param in names or "ExternalId" in names, f"{method} {path} lacks {param}"


def test_a_dry_run_import_reports_every_row_and_stores_nothing(app: Flask, rt: Any) -> None:
    client = app.test_client()
    data = PEOPLE_CSV + "L004,Bad Date,2014-13-01,,no,website,parent,,,no\n"
    response = client.post(
        "/api/v1/people/import",
        data={"file": (io.BytesIO(data.encode()), "people.csv"), "dry_run": "1"},
        headers=_auth(rt),
    )
    assert response.status_code == 422
    body = response.get_json()
    assert body["dry_run"] is True and body["rows"] == 4 and body["imported"] == 3
    assert body["problems"] == [{"line": 5, "reason": body["problems"][0]["reason"]}]
    assert "date_of_birth" in body["problems"][0]["reason"]
    with unit_of_work(rt.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 0


def test_an_import_stores_the_rows_and_a_second_one_changes_nothing(app: Flask, rt: Any) -> None:
    client = app.test_client()
    headers = _auth(rt)
    for expected in ({"imported": 3, "unchanged": 0}, {"imported": 0, "unchanged": 3}):
        response = client.post(
            "/api/v1/people/import",
            data={"file": (io.BytesIO(PEOPLE_CSV.encode()), "p.csv")},
            headers=headers,
        )
        assert response.status_code == 200
        body = response.get_json()
        assert {k: body[k] for k in expected} == expected
    person = client.get("/api/v1/people/L001", headers=headers).get_json()
    assert [c["channel"] for c in person["channels"] if c["publishable"]] == ["website", "social_media"]


def test_the_api_reports_an_import_as_people_import_json_does_with_every_change(
    app: Flask, rt: Any, tmp_path: Path
) -> None:
    data = PEOPLE_CSV + "L004,Bad Date,2014-13-01,,no,website,parent,,,no\n"
    response = app.test_client().post(
        "/api/v1/people/import",
        data={"file": (io.BytesIO(data.encode()), "people.csv"), "dry_run": "1"},
        headers=_auth(rt),
    )
    assert response.status_code == 422
    body = response.get_json()
    # The dry run stored nothing: the command line imports the same rows afresh.
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(data)
    result = run(rt, "people", "import", csv_file, "--json")
    assert result.exit_code == 1, result.output
    printed = json.loads(result.stdout)
    assert len(body["changes"]) >= 3 and body["changes"] == printed["changes"]
    assert body.pop("dry_run") is True and body == printed


def test_an_import_without_a_file_or_with_a_bad_header_is_a_json_error(app: Flask, rt: Any) -> None:
    client = app.test_client()
    headers = _auth(rt)
    missing = client.post("/api/v1/people/import", data={}, headers=headers)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_input"
    bad = client.post(
        "/api/v1/people/import", data={"file": (io.BytesIO(b"a,b\n1,2\n"), "p.csv")}, headers=headers
    )
    assert bad.status_code == 400
    assert "header lacks" in bad.get_json()["message"]


def test_withdrawing_through_the_api_takes_a_list_or_nothing_for_all(app: Flask, rt: Any) -> None:
    add_learners(rt)
    client = app.test_client()
    headers = _auth(rt)
    one = client.post("/api/v1/people/L001/withdraw", json={"channels": ["social_media"]}, headers=headers)
    assert one.get_json() == {"external_id": "L001", "withdrawn": ["social_media"]}
    rest = client.post("/api/v1/people/L001/withdraw", json={}, headers=headers).get_json()
    assert "website" in rest["withdrawn"] and "social_media" not in rest["withdrawn"]
    person = client.get("/api/v1/people/L001", headers=headers).get_json()
    assert not any(c["publishable"] for c in person["channels"])
    unknown = client.post("/api/v1/people/NOPE/withdraw", json={}, headers=headers)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "person_not_found"
    bad = client.post("/api/v1/people/L001/withdraw", json={"channels": "website"}, headers=headers)
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_input"
    channel = client.post("/api/v1/people/L001/withdraw", json={"channels": ["fax"]}, headers=headers)
    assert channel.status_code == 400 and channel.get_json()["error"] == "unknown_channel"


def test_api_errors_are_json_with_a_code_and_a_message(app: Flask, rt: Any) -> None:
    client = app.test_client()
    response = client.get("/api/v1/people/L001")
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/nothing-here").get_json()["error"] == "not_found"
    wrong_method = client.delete("/api/v1/people/L001", headers=_auth(rt))
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"] == "method_not_allowed"


def test_pending_withdrawal_requests_are_listed_and_decided_through_the_api(app: Flask, rt: Any) -> None:
    from datetime import UTC, date, datetime

    from gatekeeper.consent import withdrawals

    add_learners(rt)
    with unit_of_work(rt.sessions) as session:
        received = withdrawals.request_withdrawal(
            session,
            name="Rory Williams",
            date_of_birth=date(2013, 11, 2),
            relationship="guardian",
            contact_email="g@x.org",
            settings=rt.settings,
            now=datetime(2026, 6, 15, tzinfo=UTC),
        )
    with unit_of_work(rt.sessions) as session:
        # What the request's job does once it runs.
        withdrawals.match_request(session, received.id, settings=rt.settings, now=datetime.now(UTC))
    reference = received.reference
    client = app.test_client()
    headers = _auth(rt)
    listed = client.get("/api/v1/withdrawals", headers=headers).get_json()["requests"]
    assert [(r["reference"], r["people"]) for r in listed] == [(reference, ["L002"])]
    decided = client.post(
        f"/api/v1/withdrawals/{reference}/confirm", json={"note": "called"}, headers=headers
    )
    assert decided.get_json() == {"reference": reference, "status": "confirmed"}
    again = client.post(f"/api/v1/withdrawals/{reference}/reject", headers=headers)
    assert again.status_code == 400
    assert client.post("/api/v1/withdrawals/WD-NOPE/confirm", headers=headers).status_code == 404
