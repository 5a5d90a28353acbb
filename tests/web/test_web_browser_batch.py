"""End to end in Chromium on a phone: the batch page names each photo (thumbnail and upload name),
a photo over the pixel limit says why and what to do, and a published photo shows where it went.

Debian's /usr/bin/chromium driven by Playwright against a real `gatekeeper serve` (which runs the
gate and publish jobs itself). Each step is photographed into test-artifacts/web/ and checked with
axe-core and for sideways scrolling.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_server import PHONE, check, chromium_browser, expect, new_staff, serving
from live_server import LiveServer as Server

pytestmark = pytest.mark.slow

LIMIT = 2_000_000  # pixels: the corpus's 1080p photo (2,073,600) is over it, the others under


@pytest.fixture
def server(tmp_path: Path, chromium: str) -> Iterator[Server]:
    with serving(tmp_path / "instance", GATEKEEPER_PROBE_STEP="90", GATEKEEPER_MAX_PIXELS=str(LIMIT)) as live:
        yield live


@pytest.fixture
def browser(chromium: str) -> Iterator[Any]:
    with chromium_browser(chromium) as launched:
        yield launched


def test_on_a_phone_the_batch_shows_thumbnails_names_refusals_and_publications(
    browser: Any, server: Server, corpus: Any, tmp_path: Path
) -> None:
    context = browser.new_context(**PHONE)
    page = context.new_page()
    new_staff(server, page, "comms", "uploader")
    page.goto(server.url + "/upload")
    page.get_by_label("Channel: where the photos will be published").select_option("website")
    page.get_by_label("Photos, or a zip of photos").set_input_files(
        [
            str(corpus.metadata_dir / "nikon_coolpix_p6000_gps.jpg"),
            str(corpus.faces_dir / "obama" / "obama-1080p.jpg"),
        ]
    )
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_text("2 photos uploaded; each is checked in the background.")).to_be_visible()
    page.get_by_text("Every photo has been checked.").wait_for(timeout=240_000)

    rows = page.locator("#batch-photos tbody tr")
    expect(rows).to_have_count(2)
    field, too_big = rows.nth(0), rows.nth(1)
    # Each photo is named as it was uploaded, with its thumbnail (loaded: a real JPEG).
    expect(field.get_by_text("nikon_coolpix_p6000_gps.jpg")).to_be_visible()
    thumbnail = field.locator("img.thumb")
    expect(thumbnail).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle())
    width = thumbnail.evaluate("img => img.naturalWidth")
    assert 0 < width <= 240
    # The refused photo says why and what to do, in the words of `gate`, and has no thumbnail.
    expect(too_big.get_by_text("obama-1080p.jpg")).to_be_visible()
    expect(too_big.get_by_text("resize it below 2 MP and upload it again")).to_be_visible()
    expect(too_big.locator("img")).to_have_count(0)
    check(page, "70-phone-batch-names-thumbnails")

    too_big.get_by_role("link").click()
    expect(page.get_by_text("this photo could not be checked")).to_be_visible()
    expect(
        page.get_by_text(
            "The photo has 2,073,600 pixels (2.1 MP), over the limit of 2,000,000 (2 MP): "
            "resize it below 2 MP and upload it again."
        )
    ).to_be_visible()
    expect(page.locator("svg.preview, img.preview")).to_have_count(0)
    expect(page.locator("ol.faces")).to_have_count(0)
    expect(page.get_by_text("No face was found")).to_have_count(0)
    check(page, "71-phone-photo-refused")

    page.go_back()
    page.locator("#batch-photos tbody tr").nth(0).get_by_role("link").click()
    expect(page.get_by_text("For website: Publishable")).to_be_visible()
    expect(page.get_by_text("Not published anywhere yet.")).to_be_visible()
    page.get_by_role("button", name="Publish to website").click()
    expect(page.get_by_text("Publishing is queued")).to_be_visible()
    # The publish job runs in the server's worker: the page shows the publication once it is done.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and page.locator(".publications-list li").count() == 0:
        time.sleep(0.5)
        page.reload()
    published = page.locator(".publications-list li")
    expect(published).to_have_count(1)
    expect(published).to_contain_text("Published for website on")
    expect(published).to_contain_text("by comms")
    expect(published).to_contain_text("live")
    check(page, "72-phone-photo-published")
    page.get_by_role("button", name="Publish to website").click()
    expect(page.get_by_text("nothing new was published")).to_be_visible()
    expect(page.locator(".publications-list li")).to_have_count(1)
    check(page, "73-phone-photo-already-published")
    context.close()
