"""The scan page: a consent admin starts a website scan, a worker runs it, and the report says each
picture's verdict, reasons and faces in the gate's words, with every place it was found."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from engines import compose_app, engine_for
from flask import Flask
from scan_helpers import PHOTOS, Site, facebook_archive
from web_helpers import csrf, make_account, sign_in

from gatekeeper.runtime import Runtime
from gatekeeper.scan import runner
from helpers import enrol_corpus
from workers import JobQueue


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any) -> Iterator[Flask]:
    quick = settings.with_(scan={"rate": 50.0, "timeout": 5.0})
    app = compose_app(quick, engine_for(request, quick))
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def test_a_consent_admin_scans_a_website_and_reads_its_report(app: Flask, corpus: Any, site: Site) -> None:
    rt: Runtime = app.extensions["gatekeeper"]
    enrol_corpus(
        rt, corpus.faces_dir, biden={"channels": ("print",)}, rose_leslie={"valid_until": date(2026, 1, 1)}
    )
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))
    refused = client.post(
        "/scans",
        data={"source": "file:///etc/passwd", "channel": "website", "csrf_token": csrf(client, "/scans")},
    )
    assert refused.status_code == 400 and "only a website" in refused.get_data(as_text=True)

    started = client.post(
        "/scans", data={"source": site.url + "/", "channel": "website", "csrf_token": csrf(client, "/scans")}
    )
    assert started.status_code == 302
    page_url = started.headers["Location"]
    waiting = client.get(page_url).get_data(as_text=True)
    assert "Waiting for a worker" in waiting and 'http-equiv="refresh"' in waiting

    assert JobQueue.of(rt).drain(max_wait=10) == 1
    page = " ".join(client.get(page_url).get_data(as_text=True).split())
    assert 'http-equiv="refresh"' not in page
    assert "5 pictures at 8 places: 3 publishable, 2 blocked, 0 need review" in page
    assert "no consent for website" in page and "consent for website has expired" in page
    assert "biden, no consent for website" in page and "obama, consented for website" in page
    assert f"{site.url}/wp-content/uploads/2024/05/sports-day-300x200.jpg" in page
    assert f"{site.url}/img/missing.jpg: image not fetched: HTTP 404" in page

    rows = list(csv.DictReader(io.StringIO(client.get(page_url + ".csv").get_data(as_text=True))))
    blocked = sorted(r["url"] for r in rows if r["verdict"] == "blocked")
    assert blocked == [f"{site.url}/img/biden.jpg", f"{site.url}/img/full/rose.jpg"]
    assert any(r["problem"] == "image not fetched: HTTP 404" for r in rows)
    assert f"{site.url}/" in client.get("/scans").get_data(as_text=True)


def test_uploaders_and_reviewers_cannot_scan(app: Flask) -> None:
    rt: Runtime = app.extensions["gatekeeper"]
    for role in ("uploader", "reviewer", "auditor"):
        client = app.test_client()
        sign_in(client, make_account(rt, role))
        assert client.get("/scans").status_code == 403


def test_a_facebook_archive_uploaded_on_the_page_is_scanned_and_then_deleted(
    app: Flask, corpus: Any, tmp_path: Path
) -> None:
    rt: Runtime = app.extensions["gatekeeper"]
    enrol_corpus(
        rt, corpus.faces_dir, biden={"channels": ("print",)}, kit_harington={"channels": ("social_media",)}
    )
    photos = {name: (corpus.faces_dir / PHOTOS[name]).read_bytes() for name in ("biden", "kit")}
    archive = facebook_archive(
        tmp_path / "facebook-school.zip", {"biden.jpg": photos["biden"], "kit.jpg": photos["kit"]}
    )
    client = app.test_client()
    sign_in(client, make_account(rt, "consent_admin"))

    # Not an archive: refused, and nothing is kept.
    refused = client.post(
        "/scans",
        data={
            "archive": (io.BytesIO(b"PK\x03\x04 not really"), "photos.zip"),
            "channel": "social_media",
            "csrf_token": csrf(client, "/scans"),
        },
    )
    assert refused.status_code == 400 and "not a zip archive" in refused.get_data(as_text=True)
    folder = runner.uploads_folder(rt.settings)
    assert not folder.exists() or list(folder.iterdir()) == []

    started = client.post(
        "/scans",
        data={
            "archive": (io.BytesIO(archive.read_bytes()), archive.name),
            "channel": "social_media",
            "csrf_token": csrf(client, "/scans"),
        },
    )
    assert started.status_code == 302, started.get_data(as_text=True)
    assert [p.name for p in folder.iterdir()] == ["facebook-school.zip"]
    assert JobQueue.of(rt).drain(max_wait=10) == 1
    page = " ".join(client.get(started.headers["Location"]).get_data(as_text=True).split())
    assert "2 pictures at 2 places: 1 publishable, 1 blocked, 0 need review" in page, page
    assert "biden, no consent for social media" in page
    # The archive is gone once its scan has ended; the report and the placements stay.
    assert list(folder.iterdir()) == []
    assert "facebook-school.zip" in client.get("/scans").get_data(as_text=True)
    assert str(folder) not in client.get("/scans").get_data(as_text=True)
