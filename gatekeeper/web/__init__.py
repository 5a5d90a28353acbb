"""The web layer: blueprints and the one mapping from gatekeeper errors to HTTP."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from gatekeeper import errors
from gatekeeper.runtime import Runtime

STATUS = {
    errors.NotFoundError: 404,
    errors.InvalidInputError: 400,
    errors.MediaError: 422,
    errors.BackendError: 503,
}


def build_app(runtime: Runtime) -> Flask:
    """A Flask app bound to `runtime` (its collaborators are built on first use)."""
    app = Flask("gatekeeper")
    app.config["SECRET_KEY"] = runtime.settings.secret_key
    app.extensions["gatekeeper"] = runtime

    @app.errorhandler(errors.GatekeeperError)
    def _error(exc: errors.GatekeeperError) -> ResponseReturnValue:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
        return jsonify(error=exc.code, message=str(exc)), status

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        from sqlalchemy import text

        with runtime.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify(status="ok")

    return app
