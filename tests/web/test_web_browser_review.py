"""End to end in Chromium: a reviewer resolves a face, a consent admin adds a person and records
consent with its evidence, and marks a takedown done. Screenshots go to test-artifacts/web/ and
every page is checked with axe-core (no serious or critical violation). Debian's /usr/bin/chromium
is launched; no browser is ever downloaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from live_server import DESKTOP, PHONE, check, chromium_browser, expect, nav, new_staff, serving
from live_server import LiveServer as Server

from helpers import add_person

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[Server]:
    # Unknown faces wait for a reviewer instead of blocking at once.
    with serving(tmp_path_factory.mktemp("review") / "instance", GATEKEEPER_UNKNOWN_FACES="review") as live:
        yield live


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    with chromium_browser(chromium) as launched:
        yield launched


def test_a_reviewer_resolves_a_face_and_the_consent_rules_decide(
    browser: Any, server: Server, corpus: Any
) -> None:
    server.cli("dpia", "record", "--ref", "DPIA-TEST", "--approved-by", "J. Smith, DPO", "--on", "2026-01-05")
    with server.runtime() as rt:
        add_person(
            rt,
            "R1",
            name="Barack Obama",
            born=date(1961, 8, 4),
            granted_on=None,
            photos=[corpus.faces_dir / "obama/obama.jpg"],
        )
        add_person(
            rt,
            "R2",
            name="Kim Learner",
            born=date(2015, 5, 5),
            granted_by="parent",
            granted_on=None,
            biometric_objection="parent",
        )
    [gated] = [
        json.loads(line)
        for line in server.cli(
            "gate", "--channel", "website", "--json", str(corpus.faces_dir / "group/two_people.jpg")
        ).splitlines()
    ]
    assert gated["verdict"] == "review"
    photo = gated["id"]

    page = browser.new_page(**DESKTOP)
    new_staff(server, page, "reviewer-e2e", "reviewer")
    nav(page, "Review queue")
    expect(page.get_by_role("link", name=f"Photo {photo}, face 2")).to_be_visible()
    # The crop is served by its own request: wait for it to load (or fail) before measuring it.
    loaded = (
        "i => i.complete ? i.naturalWidth : new Promise(done => {"
        " i.addEventListener('load', () => done(i.naturalWidth));"
        " i.addEventListener('error', () => done(0)); })"
    )
    assert page.get_by_role("img", name=f"Face 2 of photo {photo}").evaluate(loaded) > 0
    check(page, "50-review-queue")
    page.get_by_role("link", name=f"Photo {photo}, face 2").click()
    page.get_by_label("Find the person by name or MIS id").fill("kim")
    page.get_by_role("button", name="Find").click()
    page.get_by_label("This is the person chosen below").check()
    page.get_by_label("Kim Learner (R2)").check()
    page.get_by_label("Reason (how you know; kept in the audit log)").fill("Kim, Year 7, seen by eye")
    check(page, "51-review-item")
    page.get_by_role("button", name="Record and decide again").click()
    expect(page.get_by_text("The consent rules decided again: publishable")).to_be_visible()
    expect(page.get_by_text("Nothing is waiting for review.")).to_be_visible()
    check(page, "52-review-resolved")
    events = [
        json.loads(line)
        for line in server.cli("audit", "show", "--json", "--subject", f"photo:{photo}").splitlines()
    ]
    reviewed = [e for e in events if e["action"] == "face.reviewed"]
    assert len(reviewed) == 1 and reviewed[0]["actor"] == "user:reviewer-e2e"
    assert reviewed[0]["details"]["reason"] == "Kim, Year 7, seen by eye"
    page.close()


def test_a_consent_admin_adds_a_person_records_consent_and_marks_a_takedown_done(
    browser: Any, server: Server, corpus: Any
) -> None:
    for name, options in (("desktop", DESKTOP), ("phone", PHONE)):
        context = browser.new_context(**options)
        page = context.new_page()
        new_staff(server, page, f"dpo-{name}", "consent_admin")
        nav(page, "People")
        page.get_by_role("link", name="Add a person").click()
        check(page, f"53-{name}-add-person")
        page.get_by_label("MIS id").fill(f"NEW-{name}")
        page.get_by_label("Full name").fill(f"River Song {name}")
        page.get_by_label("Date of birth").fill("2012-05-05")
        page.get_by_role("button", name="Add the person").click()
        expect(page.get_by_text(f"River Song {name} (NEW-{name}) added")).to_be_visible()
        page.get_by_label("Channel").select_option("website")
        page.get_by_label("Given by").first.select_option("parent")
        page.get_by_label("Name of the parent or guardian").first.fill("Mrs Song")
        page.get_by_label("Evidence reference (where the signed form or email is kept)").fill("FORM-117")
        page.get_by_label("Consent wording version").fill("v3")
        page.get_by_role("button", name="Record consent").click()
        expect(page.get_by_text("Consent recorded for website.")).to_be_visible()
        expect(page.get_by_role("cell", name="FORM-117")).to_be_visible()
        check(page, f"54-{name}-person-with-evidence")
        shown = json.loads(server.cli("people", "show", f"NEW-{name}", "--json"))
        assert (shown["history"][-1]["evidence"], shown["history"][-1]["wording"]) == ("FORM-117", "v3")
        context.close()

    # A placement outside our stores of a photo that does not pass: a takedown task opens at once.
    server.cli("dpia", "record", "--ref", "DPIA-TEST", "--approved-by", "J. Smith, DPO", "--on", "2026-01-05")
    with server.runtime() as rt:
        add_person(
            rt,
            "T1",
            name="Rose Leslie",
            born=date(1987, 2, 9),
            channels=("print",),
            granted_on=None,
            photos=[corpus.faces_dir / "rose_leslie/rose_leslie_img1.jpg"],
        )
    [gated] = [
        json.loads(line)
        for line in server.cli(
            "gate",
            "--channel",
            "website",
            "--json",
            str(corpus.faces_dir / "rose_leslie/rose_leslie_img2.jpg"),
        ).splitlines()
    ]
    assert gated["verdict"] == "blocked"
    where = "https://social.example/posts/77"
    server.cli("publications", "add", str(gated["id"]), "--channel", "website", "--where", where)

    page = browser.new_page(**DESKTOP)
    new_staff(server, page, "dpo-takedowns", "consent_admin")
    nav(page, "Publications")
    expect(page.get_by_role("cell", name=f"{where} (external)")).to_be_visible()
    check(page, "55-publications")
    page.get_by_role("link", name="Takedown tasks").click()
    expect(page.get_by_text(where)).to_be_visible()
    check(page, "56-takedowns")
    page.get_by_label("What was done (kept in the audit log)").fill("Post deleted by the comms office")
    page.get_by_role("button", name="Mark task").click()
    expect(page.get_by_text("marked done")).to_be_visible()
    expect(page.get_by_text("No takedown is waiting.")).to_be_visible()
    check(page, "57-takedown-done")
    tasks = [json.loads(line) for line in server.cli("takedowns", "list", "--json").splitlines()]
    assert [(t["note"]) for t in tasks] == ["Post deleted by the comms office"]
    page.close()
