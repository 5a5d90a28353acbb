"""Consent Gatekeeper: no photo leaves without valid consent for every face in it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

DEV_SECRET_WARNING = (
    "development mode: sessions and forms are signed with the fixed, published development secret "
    "(GATEKEEPER_SECRET_KEY); anyone can forge a staff sign-in. Unset it to use the instance's own secret"
)

if TYPE_CHECKING:
    from flask import Flask

    from gatekeeper.config import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """The web application for `settings` (default: read from GATEKEEPER_* variables)."""
    from gatekeeper.config import Settings
    from gatekeeper.runtime import Runtime
    from gatekeeper.web import build_app
    from workers import JobQueue

    runtime = Runtime(settings or Settings.from_env(), sender=JobQueue)
    if runtime.uses_development_secret:
        logging.getLogger("gatekeeper").warning(DEV_SECRET_WARNING)
    if not runtime.settings.policy.dpia_required:
        logging.getLogger("gatekeeper").warning(
            "GATEKEEPER_DPIA_REQUIRED=0: faces are matched without a recorded DPIA"
        )
    return build_app(runtime)
