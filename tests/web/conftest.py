"""Fixtures for the web app: an app on a fresh migrated database, its runtime and a client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gatekeeper import create_app


@pytest.fixture
def app(settings: Any) -> Iterator[Flask]:
    app = create_app(settings)
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
