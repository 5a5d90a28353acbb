"""`gatekeeper serve` behind a reverse proxy: the public form's rate limit counts each forwarded
client, through the real waitress server."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import pytest
from live_server import serving

pytestmark = pytest.mark.slow


def _view(url: str, client: str) -> int:
    request = urllib.request.Request(url + "/withdraw", headers={"X-Forwarded-For": client})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_serve_behind_a_proxy_limits_the_public_form_per_forwarded_client(tmp_path: Path) -> None:
    settings = {"GATEKEEPER_PROXY_HOPS": "1", "GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT": "2 per minute"}
    with serving(tmp_path / "instance", **settings) as server:
        first = [_view(server.url, "198.51.100.1") for _ in range(3)]
        # Another parent behind the same proxy has a budget of their own.
        second = _view(server.url, "198.51.100.2")
    assert first == [200, 200, 429]
    assert second == 200


def test_serve_without_trusted_proxies_ignores_forwarded_addresses(tmp_path: Path) -> None:
    settings = {"GATEKEEPER_PUBLIC_PAGE_RATE_LIMIT": "2 per minute"}
    with serving(tmp_path / "instance", **settings) as server:
        # A client cannot buy a new budget by making up X-Forwarded-For.
        views = [_view(server.url, f"198.51.100.{n}") for n in range(1, 4)]
    assert views == [200, 200, 429]
