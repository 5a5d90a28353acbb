"""Sessions end on the server, stay with the client that signed in, and open only what they should.

Every route the app registers is visited (the list is read from the app's URL map, so a route
added later is covered without editing this file).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import PASSWORD, Account, api_token, csrf, make_account, sign_in
from werkzeug.routing import Rule

from consent_db.session import unit_of_work
from gatekeeper.errors import InvalidInputError
from gatekeeper.staff import accounts
from gatekeeper.web.common import DB_INT_MAX

# What an account on its one-time password may still open: the page that replaces it, signing
# out, and the static files those pages load.
BEFORE_PASSWORD = {"auth.password", "auth.logout", "static"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _routes(app: Flask) -> list[tuple[Rule, str]]:
    return sorted(
        ((rule, method) for rule in app.url_map.iter_rules() for method in METHODS if method in rule.methods),
        key=lambda pair: (pair[0].rule, pair[1]),
    )


def _int_arguments(rule: Rule) -> set[str]:
    return set(re.findall(r"<int(?:\([^)]*\))?:(\w+)>", rule.rule))


def _url(rule: Rule, number: int = 1) -> str:
    ints = _int_arguments(rule)
    values = {name: str(number) if name in ints else "x" for name in rule.arguments}
    if "filename" in values:
        values["filename"] = "gatekeeper.css"
    path = rule.rule
    for name, value in values.items():
        path = re.sub(rf"<(?:[a-z]+(?:\([^)]*\))?:)?{name}>", value, path)
    return path


def test_a_one_time_password_reaches_nothing_but_the_password_page_on_any_route(app: Flask, rt: Any) -> None:
    account = make_account(rt, "admin", changed=False)
    client = app.test_client()
    sign_in(client, account)
    token = csrf(client, "/account/password")
    routes = _routes(app)
    endpoints = {rule.endpoint for rule, _ in routes}
    # Every blueprint is there, upload included: the check would be empty otherwise.
    assert {
        "photos.upload",
        "people.people_list",
        "review.queue",
        "public.withdraw_form",
        "public.consent_form",
        "api.photos_upload",
    } <= (endpoints)
    reached = []
    for rule, method in routes:
        if rule.endpoint in BEFORE_PASSWORD or rule.endpoint.startswith("api."):
            continue
        response = client.open(_url(rule), method=method, data={"csrf_token": token})
        if response.status_code != 302 or response.headers["Location"] != "/account/password":
            reached.append(f"{method} {rule.rule}: {response.status_code}")
    assert reached == []
    assert client.get("/account/password").status_code == 200


def test_an_api_token_of_an_account_on_its_one_time_password_opens_no_api_call(app: Flask, rt: Any) -> None:
    account = make_account(rt, "admin", changed=False)
    headers = {"Authorization": f"Bearer {api_token(rt, account)}"}
    client = app.test_client()
    answers = {}
    for rule, method in _routes(app):
        if rule.endpoint.startswith("api."):
            response = client.open(_url(rule), method=method, headers=headers)
            answers[f"{method} {rule.rule}"] = (response.status_code, response.get_json()["error"])
    assert len(answers) >= 10
    assert set(answers.values()) == {(403, "password_change_required")}
    # Once the password is changed, the same token works.
    with unit_of_work(rt.sessions) as session:
        user = accounts.find_user(session, account.username)
        accounts.change_password(session, user.id, account.password, PASSWORD, now=user.created_at)
    assert client.get("/api/v1/audit/verify", headers=headers).status_code == 200


def test_a_session_cookie_captured_before_signing_out_is_refused_afterwards(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor")
    client = app.test_client()
    sign_in(client, account)
    assert client.get("/audit").status_code == 200
    captured = client.get_cookie("gatekeeper_session")
    assert captured is not None
    token = csrf(client, "/audit")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("gatekeeper_session", captured.value)
    response = thief.get("/audit")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    # Signing in again works, with a new session.
    sign_in(client, account)
    assert client.get("/audit").status_code == 200


def test_a_session_is_bound_to_the_address_and_browser_that_signed_in(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor")
    client = app.test_client()
    client.environ_base.update(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="Firefox/140")
    sign_in(client, account)
    assert client.get("/audit").status_code == 200
    cookie = client.get_cookie("gatekeeper_session")
    assert cookie is not None
    for address, agent in (("198.51.100.7", "Firefox/140"), ("192.0.2.10", "curl/8"), ("192.0.2.10", "")):
        other = app.test_client()
        other.environ_base.update(REMOTE_ADDR=address, HTTP_USER_AGENT=agent)
        other.set_cookie("gatekeeper_session", cookie.value)
        assert other.get("/audit").status_code == 302, (address, agent)
    same = app.test_client()
    same.environ_base.update(REMOTE_ADDR="192.0.2.10", HTTP_USER_AGENT="Firefox/140")
    same.set_cookie("gatekeeper_session", cookie.value)
    assert same.get("/audit").status_code == 200


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/audit?action=consent.", "/audit?action=consent."),
        ("/people/L001", "/people/L001"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\t/evil.example", "/"),
        ("/\r/x", "/"),
        ("/\n/x", "/"),
        ("/\\evil.example", "/"),
        ("/x\\y", "/"),
        ("/ /evil.example", "/"),
        ("/\x00", "/"),
        ("/\u2028/evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("evil.example", "/"),
        ("", "/"),
    ],
)
def test_signing_in_returns_only_to_a_path_on_this_site(
    app: Flask, rt: Any, target: str, expected: str
) -> None:
    account = make_account(rt, "auditor")
    client = app.test_client()
    token = csrf(client, "/login")
    response = client.post(
        "/login?next=" + urllib.parse.quote(target, safe=""),
        data={"username": account.username, "password": account.password, "csrf_token": token},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == expected


def test_the_encoded_redirects_of_the_report_go_home(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor")
    for query in ("next=/%09/evil.example", "next=/%0d/x", "next=/%0a/x", "next=%2F%5Cevil.example"):
        client = app.test_client()
        token = csrf(client, "/login")
        response = client.post(
            f"/login?{query}",
            data={"username": account.username, "password": account.password, "csrf_token": token},
        )
        assert (response.status_code, response.headers["Location"]) == (302, "/"), query


def _admin(app: Flask, rt: Any) -> tuple[FlaskClient, Account]:
    account = make_account(rt, "admin")
    client = app.test_client()
    sign_in(client, account)
    return client, account


def test_ids_beyond_the_database_integer_range_answer_not_found_on_every_route(app: Flask, rt: Any) -> None:
    client, account = _admin(app, rt)
    token = csrf(client, "/")
    checked = []
    for rule, method in _routes(app):
        if not _int_arguments(rule):
            continue
        for number in (DB_INT_MAX + 1, 2**63, 10**30):
            response = client.open(_url(rule, number), method=method, data={"csrf_token": token})
            checked.append((f"{method} {rule.rule} {number}", response.status_code))
    assert len(checked) >= 30
    assert [entry for entry in checked if entry[1] != 404] == []
    # The API's photo ids too, on every photo call.
    headers = {"Authorization": f"Bearer {api_token(rt, account)}"}
    for number in (DB_INT_MAX + 1, 2**63, 10**30, "²"):
        for path in (f"/api/v1/photos/{number}", f"/api/v1/photos/{number}/clean"):
            assert client.get(path, headers=headers).status_code == 404, path


def test_page_numbers_beyond_the_database_integer_range_answer_not_found(app: Flask, rt: Any) -> None:
    client, _ = _admin(app, rt)
    dpo = app.test_client()
    sign_in(dpo, make_account(rt, "consent_admin"))
    for page_client, path in ((client, "/audit"), (dpo, "/people")):
        assert page_client.get(f"{path}?page=3").status_code == 200
        assert page_client.get(f"{path}?page=-5").status_code == 200
        for number in (DB_INT_MAX + 1, 2**63, 10**30):
            assert page_client.get(f"{path}?page={number}").status_code == 404, (path, number)


@pytest.mark.parametrize(
    "password",
    [
        "aaaaaaaaaaaa",
        "abcdefghijklmnop",
        "123456789012",
        "password1234",
        "Password123!",
        "qwertyuiopasdf",
        "iloveyou2024",
        "auditorauditor",
    ],
)
def test_common_repeated_and_sequential_passwords_are_refused(rt: Any, password: str) -> None:
    account = make_account(rt, "auditor", changed=False)
    with unit_of_work(rt.sessions) as session:
        user = accounts.find_user(session, account.username)
        with pytest.raises(InvalidInputError, match="harder to guess"):
            accounts.change_password(session, user.id, account.password, password, now=user.created_at)
        assert user.must_change_password


def test_long_passwords_without_composition_rules_are_accepted(rt: Any) -> None:
    for number, password in enumerate(
        ("correct horse battery staple", "tuesday lantern orchard", "zq8vmh2kxp7w")
    ):
        account = make_account(rt, "auditor", username=f"staff{number}", changed=False)
        with unit_of_work(rt.sessions) as session:
            user = accounts.find_user(session, account.username)
            accounts.change_password(session, user.id, account.password, password, now=user.created_at)
            assert not user.must_change_password


def test_the_password_page_refuses_a_common_password_with_a_reason(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor", changed=False)
    client = app.test_client()
    sign_in(client, account)
    token = csrf(client, "/account/password")
    page = client.post(
        "/account/password",
        data={
            "current": account.password,
            "new": "aaaaaaaaaaaa",
            "confirm": "aaaaaaaaaaaa",
            "csrf_token": token,
        },
    )
    assert page.status_code == 200
    assert "harder to guess" in page.get_data(as_text=True)
    assert client.get("/audit").headers["Location"] == "/account/password"
