"""The crawler's manners and limits, against a real server on 127.0.0.1: the rate, robots.txt that
cannot be read, redirect loops, the page cap, response size caps, and what is never fetched."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scan_helpers import SiteServer, page

from gatekeeper.config import ScanSettings
from gatekeeper.errors import InvalidInputError
from gatekeeper.scan.found import FoundImage, Place, Problem
from gatekeeper.scan.renditions import wordpress_key
from gatekeeper.scan.runner import identify
from gatekeeper.scan.website import WebsiteSource, check_start_url, parse_srcset


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SiteServer]:
    for number in range(6):
        links = f'<a href="/p{number + 1}.html">next</a>' if number < 5 else ""
        (tmp_path / f"p{number}.html").write_text(page(links + '<img src="/big.jpg">'))
    (tmp_path / "index.html").write_text(page('<a href="/p0.html">start</a>'))
    (tmp_path / "big.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 5000)
    with SiteServer(tmp_path) as running:
        running.sitemap_paths = ()
        yield running


def read(source: WebsiteSource) -> tuple[list[FoundImage], list[Problem]]:
    items = list(source.images())
    return [i for i in items if isinstance(i, FoundImage)], [i for i in items if isinstance(i, Problem)]


def website(url: str, **changes: object) -> WebsiteSource:
    caps = {"max_pages": 100, "max_images": 100, "max_bytes": 1000}
    settings = {"rate": 50.0, "timeout": 2.0}
    for name in list(changes):
        if name in caps:
            caps[name] = changes.pop(name)  # type: ignore[assignment]
    return WebsiteSource(url, scan=ScanSettings(**{**settings, **changes}), **caps)  # type: ignore[arg-type]


def test_requests_are_spaced_to_the_rate(server: SiteServer) -> None:
    started = time.monotonic()
    read(website(server.url, rate=8.0))
    took = time.monotonic() - started
    requests = len(server.requests.paths())
    assert requests >= 8
    assert took >= (requests - 1) / 8.0 * 0.95


def test_the_page_cap_stops_the_crawl_and_says_so(server: SiteServer) -> None:
    source = website(server.url, max_pages=3)
    _, problems = read(source)
    assert [p.code for p in problems if p.code == "page_cap"] == ["page_cap"]
    assert not source.reading.complete
    assert sum(1 for p in server.requests.paths() if p.endswith(".html") or p == "/") == 3


def test_a_response_over_the_size_cap_is_not_read(server: SiteServer) -> None:
    _, problems = read(website(server.url, max_bytes=1000))
    big = [p for p in problems if p.where.endswith("/big.jpg")]
    assert [p.code for p in big] == ["too_large"]


def test_robots_txt_that_cannot_be_read_forbids_everything(server: SiteServer) -> None:
    server.statuses["/robots.txt"] = 503  # RFC 9309: rules that cannot be read forbid everything
    images, _ = read(website(server.url))
    assert images == []
    assert set(server.requests.paths()) == {"/robots.txt"}


def test_a_redirect_loop_is_reported(server: SiteServer) -> None:
    server.redirects["/"] = "/"
    source = website(server.url)
    _, problems = read(source)
    assert [p.code for p in problems] == ["too_many_redirects"]
    assert not source.reading.complete


def test_only_http_and_https_urls_of_a_host_are_scanned(tmp_path: Path) -> None:
    for bad in (
        "file:///etc/passwd",
        "ftp://school.example/",
        "http://user:secret@school.example/",
        "http://",
    ):
        with pytest.raises(InvalidInputError):
            check_start_url(bad)
    with pytest.raises(InvalidInputError):
        identify("file:///etc/passwd")
    with pytest.raises(InvalidInputError, match="no such folder"):
        identify(str(tmp_path / "missing"))
    assert check_start_url("HTTP://School.Example:8080") == "http://school.example:8080/"


def test_the_host_given_is_the_only_one_fetched() -> None:
    source = website("http://school.example/")
    assert source.on_host("http://school.example/news")
    assert source.on_host("https://school.example/news")  # http to https on the default ports
    assert not source.on_host("http://school.example:8080/")  # another port: another service
    assert not source.on_host("http://cdn.school.example/a.jpg")
    assert not source.on_host("http://169.254.169.254/latest/meta-data/")
    assert not source.on_host("file:///etc/passwd")
    assert not source.on_host("http://user@school.example/")
    local = website("http://127.0.0.1:8123/")
    assert local.on_host("http://127.0.0.1:8123/a") and not local.on_host("http://127.0.0.1:6379/")


def test_srcset_and_wordpress_renditions_are_read() -> None:
    assert parse_srcset("a-300x200.jpg 300w, a-1024x683.jpg 1024w,a.jpg 2x") == [
        "a-300x200.jpg",
        "a-1024x683.jpg",
        "a.jpg",
    ]
    keys = {
        wordpress_key(Place(f"https://s.example/up/2024/{name}"))
        for name in ("day.jpg", "day-150x150.jpg", "day-1024x683.jpg", "day-scaled.jpg")
    }
    assert keys == {"s.example/up/2024/day.jpg"}
    assert wordpress_key(Place("https://s.example/up/2024/night.jpg")) != "s.example/up/2024/day.jpg"
