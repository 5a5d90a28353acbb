"""Accounts: first start, one-time passwords that must be changed, sessions, CSRF, the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select
from web_helpers import PASSWORD, Account, csrf, make_account, sign_in

from consent_db.models import AuditEvent, StaffUser
from consent_db.session import unit_of_work
from gatekeeper import create_app
from gatekeeper.cli.staff import first_start
from gatekeeper.config import Settings, WebSettings
from helpers import run


def test_first_start_creates_one_admin_with_a_one_time_password(rt: Any) -> None:
    password = first_start(rt)
    assert password is not None and len(password) >= 12
    assert first_start(rt) is None
    with unit_of_work(rt.sessions) as session:
        users = session.scalars(select(StaffUser)).all()
    assert [(u.username, u.role, u.must_change_password) for u in users] == [("admin", "admin", True)]
    assert password not in (users[0].password_hash or "")


def test_a_one_time_password_opens_only_the_password_page_until_changed(app: Flask, rt: Any) -> None:
    client = app.test_client()
    account = Account("admin", "admin", first_start(rt) or "")
    token = csrf(client, "/login")
    response = client.post(
        "/login", data={"username": "admin", "password": account.password, "csrf_token": token}
    )
    assert response.headers["Location"] == "/account/password"
    assert client.get("/audit").headers["Location"] == "/account/password"
    assert client.get("/").headers["Location"] == "/account/password"
    # Signing in starts a new session, with a new CSRF token.
    token = csrf(client, "/account/password")
    response = client.post(
        "/account/password",
        data={"current": account.password, "new": PASSWORD, "confirm": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 302
    assert client.get("/audit").status_code == 200
    # The old password no longer signs in; the new one does.
    other = app.test_client()
    token = csrf(other, "/login")
    failed = other.post(
        "/login", data={"username": "admin", "password": account.password, "csrf_token": token}
    )
    assert failed.status_code == 200
    assert "do not match" in failed.get_data(as_text=True)
    sign_in(other, Account("admin", "admin", PASSWORD))


def test_a_short_or_unchanged_password_is_refused(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor", changed=False)
    client = app.test_client()
    sign_in(client, account)
    token = csrf(client, "/account/password")
    for new in ("short", account.password):
        page = client.post(
            "/account/password",
            data={"current": account.password, "new": new, "confirm": new, "csrf_token": token},
        )
        assert page.status_code == 200
    assert client.get("/audit").headers["Location"] == "/account/password"


def test_changing_the_password_signs_out_other_sessions(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor")
    first, second = app.test_client(), app.test_client()
    sign_in(first, account)
    sign_in(second, account)
    token = csrf(first, "/account/password")
    new = PASSWORD + " again"
    first.post(
        "/account/password", data={"current": PASSWORD, "new": new, "confirm": new, "csrf_token": token}
    )
    assert first.get("/audit").status_code == 200
    assert second.get("/audit").status_code == 302


def test_forms_without_a_csrf_token_are_refused(app: Flask, rt: Any) -> None:
    client = app.test_client()
    response = client.post("/login", data={"username": "admin", "password": "whatever-long"})
    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)
    response = client.post(
        "/withdraw",
        data={
            "name": "A B",
            "dob_day": "1",
            "dob_month": "1",
            "dob_year": "2014",
            "relationship": "parent",
            "contact_email": "a@b.org",
        },
    )
    assert response.status_code == 400


def test_session_cookies_are_http_only_same_site_and_expire_after_the_idle_timeout(
    tmp_home: Path, database_url: str
) -> None:
    settings = Settings(home=tmp_home, database_url=database_url, web=WebSettings(session_minutes=7))
    app = create_app(settings)
    try:
        rt = app.extensions["gatekeeper"]
        client = app.test_client()
        sign_in(client, make_account(rt, "admin"))
        cookie = client.get_cookie("gatekeeper_session")
        assert cookie is not None
        assert cookie.http_only and cookie.same_site == "Lax"
        assert cookie.expires is not None
        lifetime = (
            cookie.expires - __import__("datetime").datetime.now(cookie.expires.tzinfo)
        ).total_seconds()
        assert 6 * 60 < lifetime <= 7 * 60
        assert app.config["SESSION_COOKIE_SECURE"] is False
    finally:
        rt.db.dispose()


def test_production_uses_secure_cookies_and_refuses_the_development_secret(tmp_home: Path) -> None:
    import pytest

    from gatekeeper.config import DEV_SECRET
    from gatekeeper.errors import ConfigError

    with pytest.raises(ConfigError, match="development secret"):
        create_app(Settings(home=tmp_home, env="production", web=WebSettings(secret_key=DEV_SECRET)))
    app = create_app(
        Settings(home=tmp_home, env="production", web=WebSettings(secret_key="a real secret from the vault"))
    )
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.test_client().get("/withdraw").headers["Strict-Transport-Security"]


def test_signing_in_is_rate_limited_per_client(app: Flask, rt: Any) -> None:
    client = app.test_client()
    token = csrf(client, "/login")
    statuses = [
        client.post(
            "/login", data={"username": "x", "password": "wrong-password", "csrf_token": token}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.50"
    assert (
        other.post("/login", data={"username": "x", "password": "y", "csrf_token": token}).status_code != 429
    )


def test_users_add_prints_a_one_time_password_that_signs_in(app: Flask, rt: Any) -> None:
    result = run(rt, "users", "add", "dpo", "--role", "consent_admin")
    assert result.exit_code == 0, result.output
    password = result.output.split()[-1]
    client = app.test_client()
    sign_in(client, Account("dpo", "consent_admin", password))
    assert client.get("/people").headers["Location"] == "/account/password"
    again = run(rt, "users", "add", "dpo", "--role", "auditor")
    assert again.exit_code != 0 and "already exists" in again.output
    bad = run(rt, "users", "add", "x", "--role", "wizard")
    assert bad.exit_code != 0


def test_users_token_is_shown_once_and_stored_hashed(app: Flask, rt: Any) -> None:
    make_account(rt, "auditor")
    result = run(rt, "users", "token", "auditor")
    assert result.exit_code == 0, result.output
    token = result.output.split()[-1]
    with unit_of_work(rt.sessions) as session:
        user = session.scalars(select(StaffUser).where(StaffUser.username == "auditor")).one()
        stored = user.api_token_hash
        events = session.scalars(select(AuditEvent.action)).all()
    assert stored is not None and token not in stored and len(stored) == 64
    assert "user.token_issued" in events
    client = app.test_client()
    assert client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    # A new token replaces the old one.
    run(rt, "users", "token", "auditor")
    assert client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    missing = run(rt, "users", "token", "nobody")
    assert missing.exit_code != 0 and "no staff account" in missing.output


def test_behind_a_trusted_proxy_rate_limits_count_the_forwarded_client(
    tmp_home: Path, database_url: str
) -> None:
    settings = Settings(
        home=tmp_home,
        database_url=database_url,
        web=WebSettings(proxy_hops=1, withdraw_rate_limit="1 per minute"),
    )
    app = create_app(settings)
    try:
        client = app.test_client()
        form = {
            "name": "A B",
            "dob_day": "1",
            "dob_month": "1",
            "dob_year": "2014",
            "relationship": "parent",
            "contact_email": "a@b.org",
        }

        def post(address: str) -> int:
            headers = {"X-Forwarded-For": address}
            token = csrf(client, "/withdraw")
            return client.post("/withdraw", data={**form, "csrf_token": token}, headers=headers).status_code

        assert [post("198.51.100.1"), post("198.51.100.1"), post("198.51.100.2")] == [302, 429, 302]
    finally:
        app.extensions["gatekeeper"].db.dispose()


def test_signing_in_returns_to_the_page_asked_for_but_never_to_another_site(app: Flask, rt: Any) -> None:
    account = make_account(rt, "auditor")
    for target, expected in (
        ("/audit?action=consent.", "/audit?action=consent."),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
    ):
        client = app.test_client()
        token = csrf(client, "/login")
        response = client.post(
            "/login?next=" + __import__("urllib.parse").parse.quote(target, safe=""),
            data={"username": account.username, "password": account.password, "csrf_token": token},
        )
        assert response.headers["Location"] == expected
