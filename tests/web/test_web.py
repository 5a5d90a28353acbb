"""The web app's composition: health check on a migrated database, errors mapped to HTTP once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from gatekeeper import create_app


@pytest.fixture
def app(settings: Any) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    runtime = app.extensions["gatekeeper"]
    if "db" in runtime.__dict__:
        runtime.db.dispose()


def test_health_check_migrates_and_answers(app: Flask) -> None:
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_unknown_pages_are_404(app: Flask) -> None:
    assert app.test_client().get("/nope").status_code == 404
