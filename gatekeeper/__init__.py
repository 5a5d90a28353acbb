"""Consent Gatekeeper: no photo leaves without valid consent for every face in it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from gatekeeper.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The web application for `settings` (default: read from GATEKEEPER_* variables)."""
    from gatekeeper.config import Settings
    from gatekeeper.runtime import Runtime
    from gatekeeper.web import build_app

    return build_app(Runtime(settings or Settings.from_env()))
