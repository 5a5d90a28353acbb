"""Rate limits count per credential: each API token, each staff account and each account name at
sign-in has its own budget, so a school behind one address is not one client; the public
withdrawal pages count per address."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import api_token, csrf, make_account, sign_in

from gatekeeper import create_app
from gatekeeper.config import Settings, WebSettings
from gatekeeper.errors import ConfigError

SCHOOL = "203.0.113.7"  # every client of these tests is behind this one address (a NAT)


@pytest.fixture
def limited(tmp_home: Path, database_url: str) -> Iterator[Flask]:
    """An app with small budgets, so a test can spend one."""
    settings = Settings(
        home=tmp_home,
        database_url=database_url,
        web=WebSettings(
            api_rate_limit="5 per minute",
            staff_rate_limit="4 per minute",
            public_page_rate_limit="3 per minute",
            login_address_rate_limit="12 per minute",
        ),
    )
    app = create_app(settings)
    app.config["TESTING"] = True
    yield app
    app.extensions["gatekeeper"].db.dispose()


def _client(app: Flask, address: str = SCHOOL) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _api(client: FlaskClient, token: str) -> int:
    return client.get("/api/v1/withdrawals", headers={"Authorization": f"Bearer {token}"}).status_code


def test_twenty_api_tokens_behind_one_address_each_have_their_own_budget(limited: Flask) -> None:
    rt = limited.extensions["gatekeeper"]
    tokens = [api_token(rt, make_account(rt, "consent_admin", username=f"admin-{n}")) for n in range(20)]
    client = _client(limited)
    # 20 x 5 = 100 requests from one address, more than any one client's budget: all answered.
    assert [_api(client, token) for _ in range(5) for token in tokens] == [200] * 100
    # The sixth request of one token is refused; the others are not held back by it.
    refused = client.get("/api/v1/withdrawals", headers={"Authorization": f"Bearer {tokens[0]}"})
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "too_many_requests"
    assert refused.headers["Retry-After"]
    assert _api(client, tokens[1]) == 429  # tokens[1] had spent its five as well
    fresh = api_token(rt, make_account(rt, "consent_admin", username="admin-late"))
    assert [_api(client, fresh) for _ in range(6)] == [200] * 5 + [429]


def test_made_up_tokens_share_their_address_budget(limited: Flask) -> None:
    rt = limited.extensions["gatekeeper"]
    client = _client(limited)
    bogus = [_api(client, "gk_" + secrets.token_urlsafe(32)) for _ in range(6)]
    assert bogus == [401] * 5 + [429]
    # A real token behind the same address still has its own budget.
    token = api_token(rt, make_account(rt, "consent_admin"))
    assert _api(client, token) == 200


def test_staff_pages_count_per_account_not_per_address(limited: Flask) -> None:
    rt = limited.extensions["gatekeeper"]
    first, second = _client(limited), _client(limited)
    sign_in(first, make_account(rt, "uploader", username="first-uploader"))
    sign_in(second, make_account(rt, "uploader", username="second-uploader"))
    assert [first.get("/upload").status_code for _ in range(5)] == [200] * 4 + [429]
    # The same address, another account: its own four page views, on any staff page.
    assert [second.get(page).status_code for page in ("/upload", "/", "/upload", "/")] == [200] * 4
    assert second.get("/upload").status_code == 429


def test_colleagues_behind_one_address_all_sign_in_with_the_default_limits(app: Flask, rt: Any) -> None:
    # More than the ten sign-ins a minute one account name may make from an address.
    accounts = [make_account(rt, "uploader", username=f"teacher-{n}") for n in range(12)]
    for account in accounts:
        client = _client(app)
        sign_in(client, account)  # asserts the sign-in succeeded (302), never 429
        assert client.get("/upload").status_code == 200


def test_guessing_one_password_is_limited_per_account_name_and_many_names_per_address(limited: Flask) -> None:
    def attempt(client: FlaskClient, username: str) -> int:
        token = csrf(client, "/login")
        form = {"username": username, "password": "wrong-password", "csrf_token": token}
        return client.post("/login", data=form).status_code

    spray = _client(limited)
    # Twelve names from one address are answered; the thirteenth meets the per-address cap.
    assert [attempt(spray, f"name-{n}") for n in range(13)] == [200] * 12 + [429]
    guess = _client(limited, "198.51.100.20")
    assert [attempt(guess, "head-teacher") for _ in range(11)] == [200] * 10 + [429]
    # The same address, another account name: not held back by the guesses at the first.
    assert attempt(guess, "deputy-head") == 200


def test_the_public_form_still_counts_per_address_whoever_is_signed_in(limited: Flask) -> None:
    rt = limited.extensions["gatekeeper"]
    staff = _client(limited)
    sign_in(staff, make_account(rt, "uploader"))
    parent = _client(limited)
    statuses = [c.get("/withdraw").status_code for c in (staff, parent, staff, parent)]
    # Three views from the school's address, signed in or not; then refused for everyone there.
    assert statuses == [200, 200, 200, 429]
    assert _client(limited, "198.51.100.9").get("/withdraw").status_code == 200


@pytest.mark.parametrize(
    "setting",
    ["api_rate_limit", "staff_rate_limit", "login_rate_limit", "login_address_rate_limit"],
    ids=lambda s: s,
)
def test_a_per_credential_limit_that_does_not_parse_stops_the_app(tmp_path: Path, setting: str) -> None:
    with pytest.raises(ConfigError, match=f"GATEKEEPER_{setting.upper()} does not parse"):
        create_app(Settings(home=tmp_path, web=WebSettings(**{setting: "lots"})))  # type: ignore[arg-type]


def test_the_limits_are_read_from_the_environment(tmp_path: Path) -> None:
    env: dict[str, Any] = {
        "GATEKEEPER_HOME": str(tmp_path),
        "GATEKEEPER_API_RATE_LIMIT": "100 per minute",
        "GATEKEEPER_STAFF_RATE_LIMIT": "50 per minute",
        "GATEKEEPER_LOGIN_RATE_LIMIT": "3 per minute",
        "GATEKEEPER_IDEMPOTENCY_HOURS": "48",
    }
    settings = Settings.from_env(env)
    web = settings.web
    assert (web.api_rate_limit, web.staff_rate_limit, web.login_rate_limit) == (
        "100 per minute",
        "50 per minute",
        "3 per minute",
    )
    assert web.idempotency_hours == 48
    defaults = Settings(home=tmp_path).web
    assert (defaults.api_rate_limit, defaults.staff_rate_limit, defaults.idempotency_hours) == (
        "600 per minute",
        "1200 per minute",
        24,
    )
