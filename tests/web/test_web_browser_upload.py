"""End to end in Chromium: a comms officer uploads a batch of corpus photos, sees every face boxed
with its reason, downloads the clean copy and publishes, on a desktop and on a phone.

Debian's /usr/bin/chromium driven by Playwright against a real `gatekeeper serve` (which runs the
gate jobs itself); never a downloaded browser. Each step is photographed into
test-artifacts/web/ and checked with axe-core: no serious or critical violation.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from live_server import (
    ARTIFACTS,
    DESKTOP,
    NEW_PASSWORD,
    PHONE,
    check,
    chromium_browser,
    expect,
    new_staff,
    serving,
)
from live_server import LiveServer as Server

from gatekeeper import media
from helpers import add_person

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path, chromium: str) -> Iterator[Server]:
    with serving(tmp_path / "instance", GATEKEEPER_PROBE_STEP="90") as live:
        yield live


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    with chromium_browser(chromium) as launched:
        yield launched


def test_a_comms_officer_uploads_a_batch_sees_each_face_downloads_and_publishes(
    browser: Any, server: Server, corpus: Any
) -> None:
    server.cli("dpia", "record", "--ref", "DPIA-TEST", "--approved-by", "J. Smith, DPO", "--on", "2026-01-05")
    with server.runtime() as rt:
        for external_id, name, born, photo, channel in (
            ("P1", "Barack Obama", date(1961, 8, 4), "obama/obama.jpg", "website"),
            ("P2", "Joe Biden", date(1942, 11, 20), "biden/biden.jpg", "print"),
        ):
            add_person(
                rt,
                external_id,
                name=name,
                born=born,
                channels=(channel,),
                granted_on=None,
                photos=[corpus.faces_dir / photo],
            )

    page = browser.new_page(**DESKTOP)
    new_staff(server, page, "comms", "uploader")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Upload", exact=True).click()
    expect(page.get_by_role("heading", name="Upload photos")).to_be_visible()
    expect(page.get_by_text("You can also drop photos or a zip here.")).to_be_visible()  # the script ran
    check(page, "60-upload")
    page.get_by_label("Channel: where the photos will be published").select_option("website")
    page.get_by_label("Photos, or a zip of photos").set_input_files(
        [str(corpus.faces_dir / "obama" / "obama2.jpg"), str(corpus.faces_dir / "group" / "two_people.jpg")]
    )
    expect(page.get_by_text("2 files chosen")).to_be_visible()
    page.get_by_label("Caption or alt text (optional)").fill("Barack Obama and Joe Biden at sports day")
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_text("2 photos uploaded").first).to_be_visible()
    check(page, "61-batch-checking")
    # The page follows the gate jobs by itself (scripted polling) until every verdict is in.
    page.get_by_text("Every photo has been checked.").wait_for(timeout=240_000)
    expect(page.get_by_text("Publishable: 1")).to_be_visible()
    expect(page.get_by_text("Blocked: 1")).to_be_visible()
    check(page, "62-batch-done")
    batch_url = page.url

    rows = page.locator("#batch-photos tbody tr")
    expect(rows).to_have_count(2)
    rows.nth(1).get_by_role("link").click()
    expect(page.get_by_text("For website: Blocked")).to_be_visible()
    faces = page.locator("ol.faces li")
    expect(faces).to_have_count(2)
    assert faces.nth(0).inner_text().startswith("1 Face 1: Barack Obama (P1), consented for website")
    assert faces.nth(1).inner_text().startswith("2 Face 2: Joe Biden (P2), no consent for website")
    expect(page.locator("svg.preview g.face.green")).to_have_count(1)
    expect(page.locator("svg.preview g.face.red")).to_have_count(1)
    expect(page.get_by_role("button", name="Download the clean copy")).to_have_count(0)
    # The preview is private and never cached.
    preview = page.request.get(server.url + (page.locator("svg.preview image").get_attribute("href") or ""))
    assert preview.ok and "no-store" in preview.headers["cache-control"]
    check(page, "63-photo-blocked")

    page.goto(batch_url)
    page.locator("#batch-photos tbody tr").nth(0).get_by_role("link").click()
    expect(page.get_by_text("For website: Publishable")).to_be_visible()
    assert (
        page.locator("ol.faces li")
        .inner_text()
        .startswith("1 Face 1: Barack Obama (P1), consented for website")
    )
    check(page, "64-photo-publishable")
    with page.expect_download() as waiting:
        page.get_by_role("button", name="Download the clean copy").click()
    download = waiting.value
    assert re.fullmatch(r"[0-9a-f]{32}\.jpg", download.suggested_filename)
    saved = ARTIFACTS / "web" / "65-clean-copy.jpg"
    download.save_as(str(saved))
    media.verify_clean(saved.read_bytes())
    page.get_by_role("button", name="Publish to website").click()
    expect(page.get_by_text("Publishing is queued")).to_be_visible()
    check(page, "66-publish-queued")
    deadline = time.monotonic() + 120
    stored: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not stored:
        lines = [json.loads(line) for line in server.cli("publications", "list", "--json").splitlines()]
        stored = [p for p in lines if not p.get("external")]
        time.sleep(0.5)
    assert len(stored) == 1
    page.close()

    context = browser.new_context(**PHONE)
    phone = context.new_page()
    phone.goto(server.url + "/login")
    phone.get_by_label("Username").fill("comms")
    phone.get_by_label("Password").fill(NEW_PASSWORD)
    phone.get_by_role("button", name="Sign in").click()
    phone.goto(batch_url)
    check(phone, "67-phone-batch")
    phone.goto(batch_url + "?verdict=blocked")
    expect(phone.locator("#batch-photos tbody tr")).to_have_count(1)
    phone.locator("#batch-photos tbody tr").get_by_role("link").click()
    expect(phone.locator("ol.faces li")).to_have_count(2)
    check(phone, "68-phone-photo")
    phone.goto(server.url + "/upload")
    check(phone, "69-phone-upload")
    context.close()

    # Barack Obama withdraws his website consent with his link, on his phone: the published copy
    # goes from the store (serve runs the takedown job itself) and the photo's verdict changes.
    published = Path(server.env["GATEKEEPER_HOME"]) / "published"
    assert [f for f in published.rglob("*") if f.is_file()]
    link = server.cli("people", "link", "P1").strip()
    context = browser.new_context(**PHONE)
    phone = context.new_page()
    phone.goto(link)
    check(phone, "70-phone-withdraw-link")
    phone.get_by_label("Website").check()
    phone.get_by_role("button", name="Withdraw consent").click()
    expect(phone.get_by_role("heading", name="Thank you: your request is recorded")).to_be_visible()
    check(phone, "71-phone-withdraw-receipt")
    context.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and [f for f in published.rglob("*") if f.is_file()]:
        time.sleep(0.5)
    assert [f for f in published.rglob("*") if f.is_file()] == []
    [copy] = [
        p
        for p in (json.loads(line) for line in server.cli("publications", "list", "--json").splitlines())
        if not p["external"]
    ]
    assert copy["taken_down_at"] is not None
    page = browser.new_page(**DESKTOP)
    page.goto(server.url + "/login")
    page.get_by_label("Username").fill("comms")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.goto(batch_url)
    page.locator("#batch-photos tbody tr").nth(0).get_by_role("link").click()
    expect(page.get_by_text("For website: Blocked")).to_be_visible()
    expect(page.get_by_text("Consent has changed since this photo was checked")).to_be_visible()
    face = page.locator("ol.faces li").inner_text()
    assert "Barack Obama (P1), no consent for website (withdrawn on" in face, face
    expect(page.get_by_role("button", name="Download the clean copy")).to_have_count(0)
    check(page, "72-photo-after-withdrawal")
    page.close()
