"""End to end in a real browser: Debian's Chromium driven by Playwright against `gatekeeper serve`.

Each step is photographed into test-artifacts/web/ (git-ignored) and checked with axe-core: no
serious or critical accessibility violation on any page. The browser is never downloaded: the
system's /usr/bin/chromium is launched (scripts/test installs it).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import factories
import pytest
from live_server import (
    DESKTOP,
    NEW_PASSWORD,
    PHONE,
    check,
    chromium_browser,
    expect,
    nav,
    new_staff,
    serving,
    sign_in,
)
from live_server import LiveServer as Server

from consent_db.session import unit_of_work

PEOPLE = (
    "external_id,name,date_of_birth,photos,biometric_consent,channels,granted_by,granted_on,valid_until,named\n"
    "L001,Amy Pond,2014-03-27,,no,website;social_media,parent,2025-09-01,,first_name\n"
    "L002,Rory Williams,2013-11-02,,no,website,parent,2025-09-01,,no\n"
)


def add_learners(server: Server, prefix: str, *, amy: str = "Amy Pond") -> None:
    """The learners of PEOPLE, numbered from `prefix` ("P00": P001 and P002) and the first named
    `amy`, made as importing them makes them (tests/factories.py)."""
    with server.runtime() as rt, unit_of_work(rt.sessions) as session:
        factories.person(
            session,
            f"{prefix}1",
            name=amy,
            born=date(2014, 3, 27),
            channels=("website", "social_media"),
            granted_by="parent",
            named="first_name",
        )
        factories.person(
            session, f"{prefix}2", name="Rory Williams", born=date(2013, 11, 2), granted_by="parent"
        )


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with chromium_browser(chromium) as launched:
        yield launched


@pytest.fixture
def fresh_server(tmp_path: Path, browser: Any) -> Iterator[Server]:
    with serving(tmp_path / "instance") as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("live") / "instance") as live:
        yield live


def test_first_start_and_the_forced_password_change(browser: Any, fresh_server: Server) -> None:
    assert fresh_server.admin_password
    page = browser.new_page(**DESKTOP)
    page.goto(fresh_server.url + "/")
    assert page.url.endswith("/login?next=%2F")
    check(page, "01-login")
    # Keyboard first: the skip link is the first stop.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    sign_in(page, fresh_server, "admin", fresh_server.admin_password)
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    expect(page.get_by_text("one-time password")).to_be_visible()
    check(page, "02-password-change-forced")
    page.goto(fresh_server.url + "/audit")
    assert page.url.endswith("/account/password")
    page.get_by_label("Current password").fill(fresh_server.admin_password)
    page.get_by_label("New password (at least 12 characters)").fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("heading", name="Hello, admin")).to_be_visible()
    check(page, "03-admin-home")
    nav(page, "Audit log")
    expect(page.get_by_text("Hash chain intact")).to_be_visible()
    check(page, "04-audit")
    page.get_by_role("button", name="Sign out admin").click()
    sign_in(page, fresh_server, "admin", NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Hello, admin")).to_be_visible()
    page.close()


def test_a_consent_admin_imports_people_with_their_photos(
    browser: Any, server: Server, corpus: Any, tmp_path: Path
) -> None:
    # Enrolment matches faces: only after a DPIA is recorded.
    server.cli("dpia", "record", "--ref", "DPIA-TEST", "--approved-by", "J. Smith, DPO", "--on", "2026-01-05")
    page = browser.new_page(**DESKTOP)
    new_staff(server, page, "dpo-import", "consent_admin")
    check(page, "10-consent-admin-home")
    bundle = tmp_path / "people.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr(
            "people.csv",
            PEOPLE.replace("L001,", "E001,").replace("L002,", "E002,")
            + "E003,Barack Obama,1961-08-04,photos/obama.jpg,yes,website,self,2025-09-01,,yes\n",
        )
        archive.write(corpus.faces_dir / "obama" / "obama.jpg", "photos/obama.jpg")
    nav(page, "Import")
    check(page, "11-import")
    page.get_by_label("People CSV, or a zip of the CSV and its enrolment photos").set_input_files(str(bundle))
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_role("heading", name="Preview: nothing has been saved yet")).to_be_visible()
    expect(page.get_by_text("3 would be imported")).to_be_visible()
    check(page, "12-import-preview")
    page.get_by_role("button", name="Import these rows").click()
    expect(page.get_by_text("3 imported")).to_be_visible()
    expect(page.get_by_text("1 face template")).to_be_visible()
    nav(page, "People")
    page.get_by_label("Search by name or MIS id").fill("obama")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Barack Obama").click()
    expect(page.get_by_text("biometric consent yes · 1 face template")).to_be_visible()
    check(page, "13-person")
    page.close()


def _receipt_reference(page: Any) -> str:
    expect(page.get_by_role("heading", name="Thank you: your request is recorded")).to_be_visible()
    match = re.search(r"WD-[A-Z0-9]{10}", page.inner_text("main"))
    assert match is not None
    return match.group(0)


def test_a_parent_withdraws_with_their_link_on_a_phone(browser: Any, server: Server) -> None:
    add_learners(server, "P00")
    link = server.cli("people", "link", "P001").strip()
    assert link.startswith(server.url + "/withdraw/")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(link)
    expect(page.get_by_role("heading", name="Photos of Amy")).to_be_visible()
    assert "Rory" not in page.content() and "Pond" not in page.content()
    boxes = page.get_by_role("checkbox")
    expect(boxes).to_have_count(3)  # website, social media, and "everything"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    check(page, "20-phone-link-form")
    page.get_by_label("Social media").check()
    page.get_by_role("button", name="Withdraw consent").click()
    _receipt_reference(page)
    check(page, "21-phone-link-receipt")
    shown = json.loads(server.cli("people", "show", "P001", "--json"))
    state = {c["channel"]: c["reasons"] for c in shown["channels"]}
    assert state["social_media"] == ["consent_withdrawn"] and state["website"] == []
    context.close()


def test_the_no_link_path_suspends_and_a_consent_admin_verifies(browser: Any, server: Server) -> None:
    add_learners(server, "N00", amy="Clara Oswald")
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.goto(server.url + "/withdraw")
    check(page, "30-phone-no-link-form")
    page.get_by_role("button", name="Stop publishing photos").click()
    expect(page.locator("[aria-invalid=true]")).to_have_count(3)
    check(page, "31-phone-no-link-errors")
    page.get_by_label("Learner's full name").fill("clara oswald")
    page.get_by_label("Day").fill("27")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("2014")
    page.get_by_label("Parent", exact=True).check()
    page.get_by_label("Your email address").fill("parent@example.org")
    page.get_by_label("Your email address").press("Enter")
    reference = _receipt_reference(page)
    check(page, "32-phone-no-link-receipt")
    # The server's own job thread matches the request and suspends, just after the answer.
    for _ in range(30):
        shown = json.loads(server.cli("people", "show", "N001", "--json"))
        if not any(c["publishable"] for c in shown["channels"]):
            break
    assert not any(c["publishable"] for c in shown["channels"])
    context.close()

    page = browser.new_page(**DESKTOP)
    new_staff(server, page, "dpo-verify", "consent_admin")
    nav(page, "Withdrawal requests")
    check(page, "33-verification-tasks")
    page.get_by_role("link", name=reference).click()
    expect(page.get_by_text("Clara Oswald (N001)")).to_be_visible()
    check(page, "34-verification-task")
    page.get_by_label("Note (how you checked)").fill("No such request from the family (phoned).")
    page.get_by_role("button", name="Reject: lift the suspension").click()
    expect(page.get_by_text(f"Request {reference} rejected")).to_be_visible()
    shown = json.loads(server.cli("people", "show", "N001", "--json"))
    assert [c["channel"] for c in shown["channels"] if c["publishable"]] == ["website", "social_media"]
    page.close()


def test_every_other_page_passes_axe(browser: Any, server: Server) -> None:
    add_learners(server, "A00")
    for name, options in (("phone", PHONE), ("desktop", DESKTOP)):
        context = browser.new_context(**options)
        page = context.new_page()
        for path in ("/privacy", "/withdraw/not-a-real-link", "/no-such-page"):
            page.goto(server.url + path)
            check(page, f"40-{name}-{path.strip('/').replace('/', '-')}")
        new_staff(server, page, f"audit-{name}", "auditor")
        page.goto(server.url + "/audit?action=consent.")
        check(page, f"41-{name}-audit-filtered")
        page.goto(server.url + "/people")
        check(page, f"42-{name}-forbidden")
        context.close()
        context = browser.new_context(**options)
        page = context.new_page()
        new_staff(server, page, f"dpo-{name}", "consent_admin")
        page.goto(server.url + "/people")
        check(page, f"43-{name}-people")
        page.goto(server.url + "/people/A001")
        page.get_by_role("button", name="Issue a new withdrawal link").click()
        expect(page.get_by_text("shown only now")).to_be_visible()
        check(page, f"44-{name}-person-with-link")
        page.get_by_label("Reason (recorded in the audit log)").fill("DSL decision")
        page.get_by_role("button", name=re.compile("safeguarding flag")).click()
        check(page, f"45-{name}-person-safeguarding")
        page.goto(server.url + "/account/password")
        check(page, f"46-{name}-password")
        context.close()
