"""Rate limits, counted per credential: the API per token, staff pages per account, sign-in per
account name (with a looser cap per address), the public withdrawal pages per client address (a
parent has no credential).

A school behind one NAT is one address: counting the API, staff pages or sign-in per address would
make every member of staff share one budget. A request that carries no valid credential (no token,
a wrong one, nobody signed in) counts against its address, so made-up tokens buy no extra budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from flask import Blueprint, Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import current_user
from limits import parse_many

from gatekeeper import errors
from gatekeeper.config import WebSettings
from gatekeeper.staff import accounts
from gatekeeper.web.common import unit

# flask.g key of the API client's rate-limit key, worked out once per request.
_API_CLIENT = "gatekeeper_api_client"


def check(settings: WebSettings) -> None:
    """Raise ConfigError for a rate-limit setting that does not parse."""
    for name, value in (
        ("GATEKEEPER_WITHDRAW_RATE_LIMIT", settings.withdraw_rate_limit),
        ("GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT", settings.public_page_rate_limit),
        ("GATEKEEPER_LOGIN_RATE_LIMIT", settings.login_rate_limit),
        ("GATEKEEPER_LOGIN_ADDRESS_RATE_LIMIT", settings.login_address_rate_limit),
        ("GATEKEEPER_API_RATE_LIMIT", settings.api_rate_limit),
        ("GATEKEEPER_STAFF_RATE_LIMIT", settings.staff_rate_limit),
    ):
        try:
            parse_many(value)
        except ValueError:
            raise errors.ConfigError(
                f"{name} does not parse: {value!r} (e.g. '5 per minute;30 per hour')"
            ) from None


def bearer_token() -> str | None:
    """The bearer token the request carries, if any (not checked)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def token_id(token: str) -> str:
    """A token's name in rate limits and idempotency keys: a prefix of its stored hash, never the token."""
    return "token:" + accounts.token_hash(token)[:32]


def address() -> str:
    """The client's address as rate limits count it (the forwarded one behind trusted proxies)."""
    return "address:" + get_remote_address()


def api_client() -> str:
    """The API's rate-limit key: the token when it is valid, else the client's address."""
    known: str | None = g.get(_API_CLIENT)
    if known is not None:
        return known
    token = bearer_token()
    client = address()
    if token is not None and token.startswith(accounts.TOKEN_PREFIX):
        with unit() as db:
            if accounts.user_for_token(db, token) is not None:
                client = token_id(token)
    setattr(g, _API_CLIENT, client)
    return client


def staff_client() -> str:
    """Staff pages' rate-limit key: the signed-in account, else the client's address."""
    if current_user.is_authenticated:
        return f"account:{cast(int, current_user.user_id)}"
    return address()


def sign_in_client() -> str:
    """Sign-in posts' rate-limit key: the account name tried from this address (signed in: the
    account), so guessing one account's password is slow while colleagues behind the same address
    sign in freely."""
    if current_user.is_authenticated:
        return f"account:{cast(int, current_user.user_id)}"
    username = request.form.get("username", "").strip().lower()[:120]
    return f"{address()}|user:{username}"


def install(
    app: Flask,
    settings: WebSettings,
    *,
    sign_in: Blueprint,
    public: Blueprint,
    api: Blueprint,
    staff: Sequence[Blueprint],
) -> Limiter:
    """Put the limiter on `app` and its limits on the sign-in, public, API and staff pages' blueprints
    (each is limited once registered); raises ConfigError.

    The app factory hands the blueprints over, so this module imports none of them (the API imports
    this module, through its idempotency keys).
    """
    check(settings)
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=settings.rate_limit_url,
        strategy="fixed-window",
        headers_enabled=True,
    )
    limiter.limit(settings.login_rate_limit, methods=["POST"], key_func=sign_in_client)(sign_in)
    # Many account names tried from one address (password spraying) meet this cap.
    limiter.shared_limit(
        settings.login_address_rate_limit, scope="sign-in", methods=["POST"], key_func=address
    )(sign_in)
    limiter.limit(settings.withdraw_rate_limit, methods=["POST"])(public)
    limiter.limit(settings.public_page_rate_limit)(public)
    # One budget per token for the whole API, one per account for every staff page (shared scopes;
    # a plain blueprint limit would count each route apart).
    limiter.shared_limit(settings.api_rate_limit, scope="api", key_func=api_client)(api)
    staff_limit = limiter.shared_limit(settings.staff_rate_limit, scope="staff", key_func=staff_client)
    for blueprint in staff:
        staff_limit(blueprint)
    return limiter
