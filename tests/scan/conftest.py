"""Fixtures for the scan tests: a runtime with a polite-but-quick scan rate, and enrolled people."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from engines import engine_for
from scan_helpers import Site, SiteServer, build_site

from gatekeeper.runtime import Runtime
from helpers import enrol_corpus


@pytest.fixture
def scan_rt(request: pytest.FixtureRequest, settings: Any) -> Iterator[Runtime]:
    """The runtime of the scan tests (its recorded face engine as elsewhere), scanning at 50 requests/s."""
    from workers import JobQueue

    quick = settings.with_(scan={"rate": 50.0, "timeout": 5.0})
    rt = Runtime(quick, sender=JobQueue, faces=engine_for(request, quick))
    yield rt
    if "db" in rt.__dict__:
        rt.db.dispose()


@pytest.fixture
def enrolled(scan_rt: Runtime, corpus: Any) -> Runtime:
    """Obama and Kit consented to the website; Biden only to print; Rose's consent expired; all enrolled."""
    enrol_corpus(
        scan_rt,
        corpus.faces_dir,
        biden={"channels": ("print",)},
        rose_leslie={"valid_until": date(2026, 1, 1)},
    )
    return scan_rt


@pytest.fixture
def site(tmp_path: Path, corpus: Any) -> Iterator[Site]:
    """The school's website, with robots.txt keeping /private/ out and two redirects (one off the host)."""
    (tmp_path / "other").mkdir()
    (tmp_path / "site").mkdir()
    with SiteServer(tmp_path / "other") as other, SiteServer(tmp_path / "site") as server:
        build_site(tmp_path / "site", corpus.faces_dir, other.url)
        server.robots = f"User-agent: *\nDisallow: /private/\n\nSitemap: {server.url}/sitemap.xml\n"
        server.redirects = {"/old-gallery": "/gallery/", "/away": f"{other.url}/landing"}
        yield Site(server, other)
