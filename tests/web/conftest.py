"""Fixtures for the web app: an app on a fresh migrated database, its runtime and a client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from engines import compose_app, engine_for
from flask import Flask
from flask.testing import FlaskClient


@pytest.fixture
def app(request: pytest.FixtureRequest, settings: Any) -> Iterator[Flask]:
    """The app as create_app composes it; its face engine answers from recorded answers (engines.py)."""
    app = compose_app(settings, engine_for(request, settings))
    app.config["TESTING"] = True
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


@pytest.fixture
def rt(app: Flask) -> Any:
    """The app's own runtime (the same database the requests use)."""
    return app.extensions["gatekeeper"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's Chromium, the browser the end-to-end tests drive (never downloaded)."""
    from pathlib import Path

    from conftest import require

    path = "/usr/bin/chromium"
    require(Path(path).is_file(), f"Chromium not installed at {path} (Debian package chromium)")
    return path


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis for shared rate limits (database 15)."""
    import redis
    from conftest import require

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).ping()
        reachable = True
    except redis.RedisError:
        reachable = False
    require(reachable, f"Redis not reachable at {url}")
    return url
