"""The route x role matrix: every route of the app, every role; only the documented pairs succeed.

Staff pages: anonymous visitors are sent to sign in, other roles get 403. API: no or a bad token
gets 401, a wrong role 403. The public pages answer everyone. A route added to the app without a
row here fails `test_every_route_is_in_the_matrix`.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import CLOCK, PASSWORD, PEOPLE_CSV, ROLES, add_learners, csrf, make_account, sign_in

from consent_db.session import unit_of_work
from gatekeeper.consent import withdrawals

STAFF = frozenset(ROLES)
CONSENT = frozenset({"consent_admin"})
AUDIT = frozenset({"auditor", "admin"})
REVIEW = frozenset({"reviewer", "consent_admin", "admin"})
PLACEMENTS = frozenset({"consent_admin", "admin"})
EVERYONE = frozenset({"anonymous", *ROLES})
UPLOAD = frozenset({"uploader", "consent_admin", "admin"})
PHOTO_VIEW = frozenset({"uploader", "reviewer", "consent_admin", "admin"})


@dataclass(frozen=True)
class Case:
    method: str
    rule: str
    url: str
    allowed: frozenset[str]
    ok: int = 200
    form: dict[str, Any] = field(default_factory=dict)
    csrf_from: str | None = None


def _pending_reference(rt: Any) -> str:
    with unit_of_work(rt.sessions) as session:
        request = withdrawals.request_withdrawal(
            session,
            name="Amy Pond",
            date_of_birth=__import__("datetime").date(2014, 3, 27),
            relationship="parent",
            contact_email="parent@example.org",
            settings=rt.settings,
            now=CLOCK,
        )
    with unit_of_work(rt.sessions) as session:
        # What the request's job does once it runs.
        withdrawals.match_request(session, request.id, settings=rt.settings, now=CLOCK)
    return request.reference


def _link_token(rt: Any) -> str:
    with unit_of_work(rt.sessions) as session:
        url = withdrawals.issue_link(session, "L001", settings=rt.settings, now=CLOCK, actor="test")
    return url.rsplit("/", 1)[1]


def _jpeg(colour: tuple[int, int, int] = (90, 140, 200)) -> bytes:
    """A small photo without faces (the matrix checks access, not verdicts)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, format="JPEG")
    return out.getvalue()


def _seed_batch(
    rt: Any, owner: str = "user:uploader", colour: tuple[int, int, int] = (90, 140, 200)
) -> tuple[int, int]:
    """A batch `owner` uploaded holding one publishable photo, as the gate job leaves it: (batch id,
    photo id)."""
    from consent_db.models import Photo, UploadBatch, UploadItem
    from helpers import seed_gated_photo

    photo_id = seed_gated_photo(rt, _jpeg(colour), now=CLOCK)
    with unit_of_work(rt.sessions) as session:
        photo = session.get(Photo, photo_id)
        assert photo is not None
        photo.uploaded_by = owner
        batch = UploadBatch(channel="website", created_at=CLOCK, created_by=owner, refused=0)
        batch.items.append(UploadItem(position=1, photo_id=photo_id, job_id=None))
        session.add(batch)
        session.flush()
        return batch.id, photo_id


def html_cases(ref: Callable[[], str], token: str) -> list[Case]:
    person = "/people/L001"
    return [
        Case("GET", "/", "/", STAFF),
        Case("GET", "/account/password", "/account/password", STAFF),
        Case("GET", "/people", "/people?q=amy", CONSENT),
        Case("GET", "/people/<external_id>", person, CONSENT),
        Case(
            "POST",
            "/people/<external_id>/grant",
            person + "/grant",
            CONSENT,
            302,
            {"grant-channel": "print", "grant-granted_by": "parent", "grant-named": "no"},
            person,
        ),
        Case(
            "POST",
            "/people/<external_id>/withdraw",
            person + "/withdraw",
            CONSENT,
            302,
            {"withdraw-channels": "website"},
            person,
        ),
        Case(
            "POST",
            "/people/<external_id>/safeguarding",
            person + "/safeguarding",
            CONSENT,
            302,
            {"flag-flag": "on", "flag-reason": "DSL decision"},
            person,
        ),
        Case("POST", "/people/<external_id>/link", person + "/link", CONSENT, 200, {}, person),
        Case("GET", "/people/import", "/people/import", CONSENT),
        Case(
            "POST",
            "/people/import",
            "/people/import",
            CONSENT,
            200,
            {"file": (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")},
            "/people/import",
        ),
        Case(
            "POST",
            "/people/import/confirm",
            "/people/import/confirm",
            CONSENT,
            400,
            {"upload": "1-nosuchupload"},
            "/people/import",
        ),
        Case("GET", "/withdrawals", "/withdrawals", CONSENT),
        Case("GET", "/withdrawals/<reference>", "/withdrawals/{ref}", CONSENT),
        Case(
            "POST",
            "/withdrawals/<reference>/<decision>",
            "/withdrawals/{ref}/confirm",
            CONSENT,
            302,
            {"note": "phoned the parent"},
            "/withdrawals/{ref}",
        ),
        Case("GET", "/audit", "/audit?action=consent.", AUDIT),
        Case("GET", "/audit.csv", "/audit.csv", AUDIT),
        Case("GET", "/upload", "/upload", UPLOAD),
        Case(
            "POST",
            "/upload",
            "/upload",
            UPLOAD,
            302,
            {"channel": "website", "photos": (io.BytesIO(_jpeg()), "photo.jpg")},
            "/upload",
        ),
        Case("GET", "/batches/<int:batch_id>", "/batches/{batch}", UPLOAD),
        Case("GET", "/batches/<int:batch_id>.json", "/batches/{batch}.json", UPLOAD),
        Case(
            "POST",
            "/batches/<int:batch_id>/publishable.zip",
            "/batches/{batch}/publishable.zip",
            UPLOAD,
            200,
            {},
        ),
        Case("GET", "/photos/<int:photo_id>", "/photos/{photo}", PHOTO_VIEW),
        Case("GET", "/photos/<int:photo_id>/preview.jpg", "/photos/{photo}/preview.jpg", PHOTO_VIEW),
        Case("GET", "/photos/<int:photo_id>/thumbnail.jpg", "/photos/{photo}/thumbnail.jpg", PHOTO_VIEW),
        Case("POST", "/photos/<int:photo_id>/clean", "/photos/{photo}/clean", UPLOAD, 200, {}),
        Case("POST", "/photos/<int:photo_id>/publish", "/photos/{photo}/publish", UPLOAD, 302, {}),
        Case("POST", "/logout", "/logout", STAFF, 302, {}, "/"),
        Case("GET", "/login", "/login", EVERYONE),
        # A failed sign-in shows the form again, to anyone.
        Case(
            "POST", "/login", "/login", EVERYONE, 200, {"username": "nobody", "password": "x" * 12}, "/login"
        ),
        Case("GET", "/withdraw", "/withdraw", EVERYONE),
        Case(
            "POST",
            "/withdraw",
            "/withdraw",
            EVERYONE,
            302,
            {
                "name": "Amy Pond",
                "date_of_birth": "2014-03-27",
                "relationship": "parent",
                "contact_email": "p@example.org",
            },
            "/withdraw",
        ),
        Case("GET", "/withdraw/<token>", f"/withdraw/{token}", EVERYONE),
        Case(
            "POST",
            "/withdraw/<token>",
            f"/withdraw/{token}",
            EVERYONE,
            302,
            {"everything": "y"},
            f"/withdraw/{token}",
        ),
        Case(
            "GET",
            "/withdraw/receipt/<kind>/<reference>",
            "/withdraw/receipt/withdrawn/WD-ABCDEFGHJK",
            EVERYONE,
        ),
        Case("GET", "/privacy", "/privacy", EVERYONE),
        Case("GET", "/healthz", "/healthz", EVERYONE),
        Case("GET", "/readyz", "/readyz", EVERYONE),
        Case("GET", "/static/<path:filename>", "/static/gatekeeper.css", EVERYONE),
        # The review queue, publications and takedowns, people added and edited, subject access.
        Case("GET", "/review", "/review", REVIEW),
        # Nothing waits for review here: the page sends the reviewer back to the queue.
        Case("GET", "/review/<int:photo_id>/<int:position>", "/review/1/0", REVIEW, 302),
        Case(
            "POST",
            "/review/<int:photo_id>/<int:position>",
            "/review/1/0",
            REVIEW,
            302,
            {"decision": "1", "resolution": "stranger", "reason": "not one of ours"},
        ),
        Case("GET", "/review/crops/<int:photo_id>/<int:position>.jpg", "/review/crops/1/0.jpg", REVIEW, 404),
        Case("GET", "/review/references/<external_id>.jpg", "/review/references/L001.jpg", REVIEW, 404),
        Case("GET", "/publications", "/publications", PLACEMENTS),
        Case("GET", "/takedowns", "/takedowns?done=1", PLACEMENTS),
        Case(
            "POST",
            "/takedowns/<int:task_id>/done",
            "/takedowns/999/done",
            PLACEMENTS,
            302,
            {"t999-note": "gone"},
        ),
        Case("GET", "/people/new", "/people/new", CONSENT),
        Case(
            "POST",
            "/people/new",
            "/people/new",
            CONSENT,
            302,
            {"external_id": "L900", "name": "River Song", "date_of_birth": "2012-05-05"},
        ),
        Case("GET", "/people/<external_id>/edit", person + "/edit", CONSENT),
        Case(
            "POST",
            "/people/<external_id>/edit",
            person + "/edit",
            CONSENT,
            302,
            {"name": "Amelia Pond", "date_of_birth": "2014-03-27"},
        ),
        Case(
            "POST",
            "/people/<external_id>/biometric",
            person + "/biometric",
            CONSENT,
            302,
            {"bio-answer": "grant", "bio-role": "parent", "bio-by": "Mrs Pond"},
        ),
        # No photo chosen: refused with the person page.
        Case("POST", "/people/<external_id>/enrol", person + "/enrol", CONSENT, 400, {}),
        Case("GET", "/people/<external_id>/photos", person + "/photos", CONSENT),
        Case("POST", "/people/<external_id>/export", person + "/export", CONSENT, 200, {}),
        # Last: it changes each account's password.
        Case(
            "POST",
            "/account/password",
            "/account/password",
            STAFF,
            302,
            {"current": PASSWORD, "new": PASSWORD + " 2", "confirm": PASSWORD + " 2"},
        ),
    ]


def _clients(app: Flask, rt: Any) -> dict[str, FlaskClient]:
    clients = {"anonymous": app.test_client()}
    clients["anonymous"].environ_base["REMOTE_ADDR"] = "192.0.2.100"
    for number, role in enumerate(ROLES):
        client = app.test_client()
        # Each its own address, as separate people are: rate limits count per client.
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{number + 1}"
        sign_in(client, make_account(rt, role))
        clients[role] = client
    return clients


def test_every_html_route_answers_only_the_documented_roles(app: Flask, rt: Any) -> None:
    add_learners(rt)
    clients = _clients(app, rt)
    token = _link_token(rt)
    batch_id, photo_id = _seed_batch(rt)
    failures = []
    for case in html_cases(lambda: "", token):
        for who, client in clients.items():
            # A fresh pending request for each attempt: a confirmed one cannot be confirmed twice.
            ref = _pending_reference(rt)
            url = case.url.format(ref=ref, batch=batch_id, photo=photo_id)
            data = dict(case.form)
            if "file" in data:
                data["file"] = (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")
            if "photos" in data:
                data["photos"] = (io.BytesIO(_jpeg()), "photo.jpg")
            if case.method == "POST":
                # One token per session serves every form; the sign-in page shows it to anyone.
                data["csrf_token"] = csrf(client, "/login")
            response = client.open(url, method=case.method, data=data)
            if case.rule == "/logout" and who != "anonymous":
                sign_in(client, _account_for(rt, who))
            if who in case.allowed:
                expected = case.ok
            elif who == "anonymous":
                expected = 302
            else:
                expected = 403
            if response.status_code != expected:
                failures.append(f"{case.method} {url} as {who}: {response.status_code}, expected {expected}")
            if who == "anonymous" and expected == 302 and who not in case.allowed:
                assert "/login" in response.headers["Location"]
            response.close()
    assert failures == []


def _account_for(rt: Any, role: str) -> Any:
    from web_helpers import PASSWORD, Account

    return Account(role.replace("_", "-"), role, PASSWORD)


def test_every_route_is_in_the_matrix(app: Flask) -> None:
    covered = {(c.method, c.rule) for c in html_cases(lambda: "", "t")}
    covered |= {(c.method, c.rule) for c in api_cases()}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert routes - covered == set()


@pytest.mark.parametrize("role", ["uploader", "reviewer", "auditor", "admin"])
def test_only_consent_admins_see_people_or_safeguarding(app: Flask, rt: Any, role: str) -> None:
    add_learners(rt)
    client = app.test_client()
    sign_in(client, make_account(rt, role))
    home = client.get("/").get_data(as_text=True)
    assert "People and consent" not in home
    assert client.get("/people/L001").status_code == 403
    assert "safeguarding" not in client.get("/people/L001").get_data(as_text=True).lower()


# --- the API -----------------------------------------------------------------------------------------


def api_cases() -> list[Case]:
    return [
        Case(
            "POST",
            "/api/v1/people/import",
            "/api/v1/people/import?dry_run=1",
            CONSENT,
            200,
            {"file": (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")},
        ),
        Case("GET", "/api/v1/people/<external_id>", "/api/v1/people/L001", CONSENT),
        Case(
            "POST",
            "/api/v1/people/<external_id>/withdraw",
            "/api/v1/people/L001/withdraw",
            CONSENT,
            200,
            {"channels": "website"},
        ),
        Case("POST", "/api/v1/people/<external_id>/link", "/api/v1/people/L001/link", CONSENT, 201),
        Case("GET", "/api/v1/withdrawals", "/api/v1/withdrawals", CONSENT),
        Case(
            "POST", "/api/v1/withdrawals/<reference>/<decision>", "/api/v1/withdrawals/{ref}/reject", CONSENT
        ),
        Case("GET", "/api/v1/audit/verify", "/api/v1/audit/verify", AUDIT),
        Case(
            "POST",
            "/api/v1/photos",
            "/api/v1/photos",
            UPLOAD,
            202,
            {"file": (io.BytesIO(_jpeg()), "photo.jpg"), "channel": "website"},
        ),
        Case("GET", "/api/v1/photos/<photo_id>", "/api/v1/photos/{photo}", UPLOAD),
        Case("GET", "/api/v1/photos/<photo_id>/clean", "/api/v1/photos/{photo}/clean", UPLOAD),
    ]


def test_every_api_route_answers_only_the_documented_roles(app: Flask, rt: Any) -> None:
    from web_helpers import api_token

    add_learners(rt)
    tokens: dict[str, str | None] = {"no token": None, "bad token": "gk_not-a-real-token"}
    for role in ROLES:
        tokens[role] = api_token(rt, make_account(rt, role))
    client = app.test_client()
    _, photo_id = _seed_batch(rt)
    failures = []
    for case in api_cases():
        for who, token in tokens.items():
            url = case.url.format(ref=_pending_reference(rt), photo=photo_id)
            data = dict(case.form)
            if "file" in data:
                data["file"] = (
                    (io.BytesIO(_jpeg()), "photo.jpg")
                    if "photos" in case.rule
                    else (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")
                )
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = client.open(url, method=case.method, data=data, headers=headers)
            expected = case.ok if who in case.allowed else 401 if who in ("no token", "bad token") else 403
            if response.status_code != expected:
                failures.append(f"{case.method} {url} as {who}: {response.status_code}, expected {expected}")
            if response.mimetype.startswith("image/"):
                assert expected == 200  # a clean copy, for the roles that may have it
                continue
            body = response.get_json()
            assert isinstance(body, dict), f"{url} as {who} did not answer JSON"
            if expected >= 400:
                assert set(body) == {"error", "message"}
    assert failures == []


# --- object level: an uploader's share -------------------------------------------------------------

OWNER, OTHER = "uploader", "uploader-2"
SEE_ALL_PHOTOS = frozenset({"reviewer", "consent_admin", "admin"})
OWN_OR_ALL = {"batch": frozenset({"consent_admin", "admin"}), "photo": SEE_ALL_PHOTOS}


def object_cases() -> list[tuple[Case, str]]:
    """Routes that open one batch or photo, and which kind of object each opens."""
    return [
        (Case("GET", "/batches/<int:batch_id>", "/batches/{batch}", UPLOAD), "batch"),
        (Case("GET", "/batches/<int:batch_id>.json", "/batches/{batch}.json", UPLOAD), "batch"),
        (
            Case(
                "POST", "/batches/<int:batch_id>/publishable.zip", "/batches/{batch}/publishable.zip", UPLOAD
            ),
            "batch",
        ),
        (Case("GET", "/photos/<int:photo_id>", "/photos/{photo}", PHOTO_VIEW), "photo"),
        (
            Case("GET", "/photos/<int:photo_id>/preview.jpg", "/photos/{photo}/preview.jpg", PHOTO_VIEW),
            "photo",
        ),
        (
            Case("GET", "/photos/<int:photo_id>/thumbnail.jpg", "/photos/{photo}/thumbnail.jpg", PHOTO_VIEW),
            "photo",
        ),
        (Case("POST", "/photos/<int:photo_id>/clean", "/photos/{photo}/clean", UPLOAD), "photo"),
        (Case("POST", "/photos/<int:photo_id>/publish", "/photos/{photo}/publish", UPLOAD, 302), "photo"),
        (Case("GET", "/api/v1/photos/<photo_id>", "/api/v1/photos/{photo}", UPLOAD), "photo"),
        (Case("GET", "/api/v1/photos/<photo_id>/clean", "/api/v1/photos/{photo}/clean", UPLOAD), "photo"),
    ]


def test_an_uploader_opens_only_their_own_batches_and_photos_and_others_see_all(app: Flask, rt: Any) -> None:
    from web_helpers import api_token

    batch_id, photo_id = _seed_batch(rt, owner=f"user:{OWNER}")
    accounts = {OWNER: make_account(rt, "uploader", username=OWNER)}
    accounts[OTHER] = make_account(rt, "uploader", username=OTHER)
    for role in ("reviewer", "consent_admin", "admin", "auditor"):
        accounts[role] = make_account(rt, role)
    clients, tokens = {}, {}
    for number, (who, account) in enumerate(accounts.items()):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"192.0.2.{number + 1}"
        sign_in(client, account)
        clients[who] = client
        tokens[who] = api_token(rt, account)
    failures = []
    for case, kind in object_cases():
        url = case.url.format(batch=batch_id, photo=photo_id)
        for who, client in clients.items():
            role = accounts[who].role
            if role not in case.allowed:
                expected = 403
            elif who == OTHER:
                # Someone else's batch or photo does not exist for an uploader: never 403, which says it does.
                expected = 404
            else:
                assert who == OWNER or role in OWN_OR_ALL[kind]
                expected = case.ok
            if case.rule.startswith("/api/"):
                response = client.open(
                    url, method=case.method, headers={"Authorization": f"Bearer {tokens[who]}"}
                )
            else:
                data = {"csrf_token": csrf(client, "/login")} if case.method == "POST" else None
                response = client.open(url, method=case.method, data=data)
            if response.status_code != expected:
                failures.append(f"{case.method} {url} as {who}: {response.status_code}, expected {expected}")
            if expected == 404:
                body = response.get_data()
                assert b"\xff\xd8" not in body[:4] and b"PK" not in body[:2]
            response.close()
    assert failures == []
    # The upload page lists only the batches an uploader made.
    assert f"/batches/{batch_id}" in clients[OWNER].get("/upload").get_data(as_text=True)
    assert f"/batches/{batch_id}" not in clients[OTHER].get("/upload").get_data(as_text=True)
    assert f"/batches/{batch_id}" in clients["admin"].get("/upload").get_data(as_text=True)


def test_every_object_route_is_in_the_object_matrix(app: Flask) -> None:
    covered = {(c.method, c.rule) for c, _ in object_cases()}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
        and ("batch_id" in rule.rule or "photo_id" in rule.rule)
        and not rule.rule.startswith("/review/")
    }
    assert routes - covered == set()
