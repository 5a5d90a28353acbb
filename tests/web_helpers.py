"""Small builders for web tests: CSRF tokens from real pages, staff accounts, signing in, learners."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import factories
from flask.testing import FlaskClient

from consent_db.session import unit_of_work
from gatekeeper.staff import accounts
from gatekeeper.staff.roles import Role

CSRF_RE = re.compile(r'name="(?:[a-z]+-)?csrf_token"[^>]*value="([^"]+)"')
ROLES = tuple(Role)
PASSWORD = "correct horse battery staple"
CLOCK = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
PEOPLE_CSV = (
    "external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by,granted_on,valid_until,named\n"
    "L001,Amy Pond,2014-03-27,,no,website;social_media,parent,2025-09-01,,first_name\n"
    "L002,Rory Williams,2013-11-02,,no,website,parent,2025-09-01,,no\n"
    "L003,Amy Pond,2012-01-01,,no,print,parent,2025-09-01,,no\n"
)
# The same people: external id, name, date of birth, channels, named.
LEARNERS = (
    ("L001", "Amy Pond", date(2014, 3, 27), ("website", "social_media"), "first_name"),
    ("L002", "Rory Williams", date(2013, 11, 2), ("website",), "no"),
    ("L003", "Amy Pond", date(2012, 1, 1), ("print",), "no"),
)


def csrf(client: FlaskClient, url: str) -> str:
    """The CSRF token of the first form on the page at `url`."""
    html = client.get(url).get_data(as_text=True)
    match = CSRF_RE.search(html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


@dataclass(frozen=True)
class Account:
    username: str
    role: str
    password: str


def make_account(runtime: Any, role: str, *, username: str | None = None, changed: bool = True) -> Account:
    """An account of `role`; with `changed`, its one-time password already replaced by PASSWORD."""
    name = username or role.replace("_", "-")
    with unit_of_work(runtime.sessions) as session:
        created = accounts.create_user(session, name, role, now=CLOCK, actor="test")
        if changed:
            accounts.change_password(session, created.user.id, created.password, PASSWORD, now=CLOCK)
    return Account(name, role, PASSWORD if changed else created.password)


def sign_in(client: FlaskClient, account: Account) -> None:
    """Sign in through the real form."""
    token = csrf(client, "/login")
    response = client.post(
        "/login", data={"username": account.username, "password": account.password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


def api_token(runtime: Any, account: Account) -> str:
    """A fresh API token for `account`."""
    with unit_of_work(runtime.sessions) as session:
        return accounts.issue_api_token(session, account.username, now=CLOCK, actor="test")


def add_learners(runtime: Any) -> None:
    """The learners of PEOPLE_CSV, as importing it makes them (tests/factories.py): L001 Amy Pond
    (website and social media, named by first name), L002 Rory Williams (website) and L003, another
    Amy Pond (print); all consent given by a parent on 1 September 2025, none to face matching."""
    with unit_of_work(runtime.sessions) as session:
        for external_id, name, born, channels, named in LEARNERS:
            factories.person(
                session,
                external_id,
                name=name,
                born=born,
                channels=channels,
                granted_by="parent",
                named=named,
                now=CLOCK,
            )
