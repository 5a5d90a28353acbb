"""The route x role matrix: every route of the app, every role; a role gets through exactly when
`roles.PERMISSIONS` gives it the permission the route declares.

Staff pages: anonymous visitors are sent to sign in, other roles get 403. API: no or a bad token
gets 401, a wrong role 403. The public pages answer everyone, the pages about one's own account
every signed-in role. A route added to the app without a row here fails
`test_every_route_is_in_the_matrix`; one that declares no permission and is not known to be public
or for every signed-in account fails `test_every_route_declares_a_permission_or_is_open`.
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
from gatekeeper.staff.roles import PERMISSIONS, Permission, Role, may
from gatekeeper.web.auth import declared_permission

STAFF = frozenset(ROLES)
EVERYONE = frozenset({"anonymous", *ROLES})
# The routes that declare no permission: open to everyone, or to every signed-in account.
PUBLIC = frozenset(
    {
        ("GET", "/login"),
        ("POST", "/login"),
        ("GET", "/withdraw"),
        ("POST", "/withdraw"),
        ("GET", "/withdraw/<token>"),
        ("POST", "/withdraw/<token>"),
        ("GET", "/withdraw/receipt/<kind>/<reference>"),
        ("GET", "/consent/<token>"),
        ("POST", "/consent/<token>"),
        ("GET", "/privacy"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/static/<path:filename>"),
    }
)
SIGNED_IN = frozenset(
    {("GET", "/"), ("GET", "/account/password"), ("POST", "/account/password"), ("POST", "/logout")}
)


@dataclass(frozen=True)
class Case:
    method: str
    rule: str
    url: str
    ok: int = 200
    form: dict[str, Any] = field(default_factory=dict)
    csrf_from: str | None = None


def _routes(app: Flask) -> dict[tuple[str, str], Callable[..., Any]]:
    """Every route of the app, (method, rule), with its view."""
    return {
        (method, rule.rule): app.view_functions[rule.endpoint]
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def allowed(app: Flask, method: str, rule: str) -> frozenset[str]:
    """Who may use a route: the roles PERMISSIONS gives the permission it declares; everyone for a
    public page; every signed-in role for a page about one's own account."""
    key = (method, rule)
    permission = declared_permission(_routes(app)[key])
    if permission is not None:
        assert key not in PUBLIC | SIGNED_IN, f"{method} {rule} declares {permission} but is listed as open"
        return frozenset(PERMISSIONS[permission])
    if key in PUBLIC:
        return EVERYONE
    if key in SIGNED_IN:
        return STAFF
    raise AssertionError(
        f"{method} {rule} declares no permission and is neither public nor for every account"
    )


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
        Case("GET", "/", "/"),
        Case("GET", "/account/password", "/account/password"),
        Case("GET", "/people", "/people?q=amy"),
        Case("GET", "/people/<external_id>", person),
        Case(
            "POST",
            "/people/<external_id>/grant",
            person + "/grant",
            302,
            {"grant-channel": "print", "grant-granted_by": "parent", "grant-named": "no"},
            person,
        ),
        Case(
            "POST",
            "/people/<external_id>/withdraw",
            person + "/withdraw",
            302,
            {"withdraw-channels": "website"},
            person,
        ),
        Case(
            "POST",
            "/people/<external_id>/safeguarding",
            person + "/safeguarding",
            302,
            {"flag-flag": "on", "flag-reason": "DSL decision"},
            person,
        ),
        Case("POST", "/people/<external_id>/link", person + "/link", 200, {}, person),
        Case(
            "POST",
            "/people/<external_id>/contacts",
            person + "/contacts",
            302,
            {"contact-email": "mum@example.org", "contact-role": "parent"},
            person,
        ),
        # Removing an address the person does not have: refused. Asking: sent to the one added above.
        Case(
            "POST",
            "/people/<external_id>/contacts/remove",
            person + "/contacts/remove",
            400,
            {"remove-email": "nobody@example.org"},
            person,
        ),
        Case(
            "POST",
            "/people/<external_id>/consent-request",
            person + "/consent-request",
            302,
            {"ask-channels": "website"},
            person,
        ),
        Case("GET", "/consent/ask", "/consent/ask"),
        Case(
            "POST",
            "/consent/ask",
            "/consent/ask",
            200,
            {"group": "due", "channels": "website"},
            "/consent/ask",
        ),
        Case("GET", "/people/import", "/people/import"),
        Case(
            "POST",
            "/people/import",
            "/people/import",
            200,
            {"file": (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")},
            "/people/import",
        ),
        Case(
            "POST",
            "/people/import/confirm",
            "/people/import/confirm",
            400,
            {"upload": "1-nosuchupload"},
            "/people/import",
        ),
        Case("GET", "/withdrawals", "/withdrawals"),
        Case("GET", "/withdrawals/<reference>", "/withdrawals/{ref}"),
        Case(
            "POST",
            "/withdrawals/<reference>/<decision>",
            "/withdrawals/{ref}/confirm",
            302,
            {"note": "phoned the parent"},
            "/withdrawals/{ref}",
        ),
        Case("GET", "/audit", "/audit?action=consent."),
        Case("GET", "/audit.csv", "/audit.csv"),
        Case("GET", "/upload", "/upload"),
        Case(
            "POST",
            "/upload",
            "/upload",
            302,
            {"channel": "website", "photos": (io.BytesIO(_jpeg()), "photo.jpg")},
            "/upload",
        ),
        Case("GET", "/batches/<int:batch_id>", "/batches/{batch}"),
        Case("GET", "/batches/<int:batch_id>.json", "/batches/{batch}.json"),
        Case(
            "POST",
            "/batches/<int:batch_id>/publishable.zip",
            "/batches/{batch}/publishable.zip",
            200,
            {},
        ),
        Case("GET", "/photos/<int:photo_id>", "/photos/{photo}"),
        Case("GET", "/photos/<int:photo_id>/preview.jpg", "/photos/{photo}/preview.jpg"),
        Case("GET", "/photos/<int:photo_id>/thumbnail.jpg", "/photos/{photo}/thumbnail.jpg"),
        Case("POST", "/photos/<int:photo_id>/clean", "/photos/{photo}/clean", 200, {}),
        Case("POST", "/photos/<int:photo_id>/publish", "/photos/{photo}/publish", 302, {}),
        Case("POST", "/logout", "/logout", 302, {}, "/"),
        Case("GET", "/login", "/login"),
        # A failed sign-in shows the form again, to anyone.
        Case("POST", "/login", "/login", 200, {"username": "nobody", "password": "x" * 12}, "/login"),
        Case("GET", "/withdraw", "/withdraw"),
        Case(
            "POST",
            "/withdraw",
            "/withdraw",
            302,
            {
                "name": "Amy Pond",
                "dob_day": "27",
                "dob_month": "3",
                "dob_year": "2014",
                "relationship": "parent",
                "contact_email": "p@example.org",
            },
            "/withdraw",
        ),
        Case("GET", "/withdraw/<token>", f"/withdraw/{token}"),
        Case(
            "POST",
            "/withdraw/<token>",
            f"/withdraw/{token}",
            302,
            {"everything": "y"},
            f"/withdraw/{token}",
        ),
        Case(
            "GET",
            "/withdraw/receipt/<kind>/<reference>",
            "/withdraw/receipt/withdrawn/WD-ABCDEFGHJK",
        ),
        Case("GET", "/consent/<token>", "/consent/not-a-real-link", 404),
        Case("POST", "/consent/<token>", "/consent/not-a-real-link", 404, {}, "/withdraw"),
        Case("GET", "/privacy", "/privacy"),
        Case("GET", "/healthz", "/healthz"),
        Case("GET", "/readyz", "/readyz"),
        Case("GET", "/static/<path:filename>", "/static/gatekeeper.css"),
        # The review queue, publications and takedowns, people added and edited, subject access.
        Case("GET", "/review", "/review"),
        # Nothing waits for review here: the page sends the reviewer back to the queue.
        Case("GET", "/review/<int:photo_id>/<int:position>", "/review/1/0", 302),
        Case(
            "POST",
            "/review/<int:photo_id>/<int:position>",
            "/review/1/0",
            302,
            {"decision": "1", "resolution": "stranger", "reason": "not one of ours"},
        ),
        Case("GET", "/review/crops/<int:photo_id>/<int:position>.jpg", "/review/crops/1/0.jpg", 404),
        Case("GET", "/review/references/<external_id>.jpg", "/review/references/L001.jpg", 404),
        Case("GET", "/publications", "/publications"),
        Case("GET", "/takedowns", "/takedowns?done=1"),
        Case("GET", "/outbox", "/outbox?failed=1"),
        Case("GET", "/scans", "/scans"),
        Case("POST", "/scans", "/scans", 302, {"source": "http://127.0.0.1:9/", "channel": "website"}),
        Case("GET", "/scans/<int:run_id>", "/scans/999", 404),
        Case("GET", "/scans/<int:run_id>.csv", "/scans/999.csv", 404),
        Case(
            "POST",
            "/takedowns/<int:task_id>/done",
            "/takedowns/999/done",
            302,
            {"t999-note": "gone"},
        ),
        Case("GET", "/people/new", "/people/new"),
        Case(
            "POST",
            "/people/new",
            "/people/new",
            302,
            {"external_id": "L900", "name": "River Song", "date_of_birth": "2012-05-05"},
        ),
        Case("GET", "/people/<external_id>/edit", person + "/edit"),
        Case(
            "POST",
            "/people/<external_id>/edit",
            person + "/edit",
            302,
            {"name": "Amelia Pond", "date_of_birth": "2014-03-27"},
        ),
        Case(
            "POST",
            "/people/<external_id>/biometric",
            person + "/biometric",
            302,
            {"bio-answer": "grant", "bio-role": "parent", "bio-by": "Mrs Pond"},
        ),
        # No photo chosen: refused with the person page.
        Case("POST", "/people/<external_id>/enrol", person + "/enrol", 400, {}),
        Case("GET", "/people/<external_id>/photos", person + "/photos"),
        Case("POST", "/people/<external_id>/export", person + "/export", 200, {}),
        # Last: it changes each account's password.
        Case(
            "POST",
            "/account/password",
            "/account/password",
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
        roles = allowed(app, case.method, case.rule)
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
            if who in roles:
                expected = case.ok
            elif who == "anonymous":
                expected = 302
            else:
                expected = 403
            if response.status_code != expected:
                failures.append(f"{case.method} {url} as {who}: {response.status_code}, expected {expected}")
            if who == "anonymous" and expected == 302 and who not in roles:
                assert "/login" in response.headers["Location"]
            response.close()
    assert failures == []


def _account_for(rt: Any, role: str) -> Any:
    from web_helpers import PASSWORD, Account

    return Account(role.replace("_", "-"), role, PASSWORD)


def test_every_route_is_in_the_matrix(app: Flask) -> None:
    covered = {(c.method, c.rule) for c in html_cases(lambda: "", "t")}
    covered |= {(c.method, c.rule) for c in api_cases()}
    assert set(_routes(app)) - covered == set()


def test_every_route_declares_a_permission_or_is_open(app: Flask) -> None:
    undeclared = {key for key, view in _routes(app).items() if declared_permission(view) is None}
    assert undeclared == PUBLIC | SIGNED_IN


def test_every_permission_names_the_roles_that_have_it() -> None:
    assert set(PERMISSIONS) == set(Permission)
    assert all(roles and roles <= set(Role) for roles in PERMISSIONS.values())


@pytest.mark.parametrize("role", [r for r in Role if not may(r, Permission.MANAGE_PEOPLE)])
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
            200,
            {"file": (io.BytesIO(PEOPLE_CSV.encode()), "people.csv")},
        ),
        Case("GET", "/api/v1/people/<external_id>", "/api/v1/people/L001"),
        Case(
            "POST",
            "/api/v1/people/<external_id>/withdraw",
            "/api/v1/people/L001/withdraw",
            200,
            {"channels": "website"},
        ),
        Case("POST", "/api/v1/people/<external_id>/link", "/api/v1/people/L001/link", 201),
        Case("GET", "/api/v1/withdrawals", "/api/v1/withdrawals"),
        Case("POST", "/api/v1/withdrawals/<reference>/<decision>", "/api/v1/withdrawals/{ref}/reject"),
        Case("GET", "/api/v1/audit/verify", "/api/v1/audit/verify"),
        Case(
            "POST",
            "/api/v1/photos",
            "/api/v1/photos",
            202,
            {"file": (io.BytesIO(_jpeg()), "photo.jpg"), "channel": "website"},
        ),
        Case("GET", "/api/v1/photos/<photo_id>", "/api/v1/photos/{photo}"),
        Case("GET", "/api/v1/photos/<photo_id>/clean", "/api/v1/photos/{photo}/clean"),
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
        roles = allowed(app, case.method, case.rule)
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
            expected = case.ok if who in roles else 401 if who in ("no token", "bad token") else 403
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


def object_cases() -> list[Case]:
    """Routes that open one batch or photo."""
    return [
        Case("GET", "/batches/<int:batch_id>", "/batches/{batch}"),
        Case("GET", "/batches/<int:batch_id>.json", "/batches/{batch}.json"),
        Case("POST", "/batches/<int:batch_id>/publishable.zip", "/batches/{batch}/publishable.zip"),
        Case("GET", "/photos/<int:photo_id>", "/photos/{photo}"),
        Case("GET", "/photos/<int:photo_id>/preview.jpg", "/photos/{photo}/preview.jpg"),
        Case("GET", "/photos/<int:photo_id>/thumbnail.jpg", "/photos/{photo}/thumbnail.jpg"),
        Case("POST", "/photos/<int:photo_id>/clean", "/photos/{photo}/clean"),
        Case("POST", "/photos/<int:photo_id>/publish", "/photos/{photo}/publish", 302),
        Case("GET", "/api/v1/photos/<photo_id>", "/api/v1/photos/{photo}"),
        Case("GET", "/api/v1/photos/<photo_id>/clean", "/api/v1/photos/{photo}/clean"),
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
    for case in object_cases():
        url = case.url.format(batch=batch_id, photo=photo_id)
        roles = allowed(app, case.method, case.rule)
        for who, client in clients.items():
            role = accounts[who].role
            if role not in roles:
                expected = 403
            elif who != OWNER and not may(role, Permission.SEE_ALL_UPLOADS):
                # Someone else's batch or photo does not exist for an uploader: never 403, which says it does.
                expected = 404
            else:
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
    covered = {(c.method, c.rule) for c in object_cases()}
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
        and ("batch_id" in rule.rule or "photo_id" in rule.rule)
        and not rule.rule.startswith("/review/")
    }
    assert routes - covered == set()
