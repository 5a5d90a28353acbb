"""The web layer: the app factory, its blueprints and the one mapping from gatekeeper errors to HTTP.

Blueprints, one per subject: `auth` (sign-in, password), `staff` (the home page), `people`,
`consent` (grants from paper, withdrawal requests), `audit`, `photos` (uploads, batches, publishing),
`review`, `publications` (publications and takedowns), `public` (the withdrawal form, no sign-in)
and `api` (`/api/v1`, bearer tokens, JSON only).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask, jsonify, render_template, request, session
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from gatekeeper import errors
from gatekeeper.media.refusals import explain
from gatekeeper.runtime import Runtime
from gatekeeper.staff.roles import Permission
from gatekeeper.web.common import plural

STATUS = {
    errors.NotFoundError: 404,
    errors.InvalidInputError: 400,
    errors.MediaError: 422,
    errors.BackendError: 503,
}
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
# A key no blob has: looking it up shows that a store answers.
READY_PROBE_KEY = "readyz-probe"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def build_app(runtime: Runtime) -> Flask:
    """A Flask app bound to `runtime` (its collaborators are built on first use).

    Raises ConfigError for a rate limit that does not parse.
    """
    settings = runtime.settings
    app = Flask("gatekeeper", root_path=__path__[0])
    from gatekeeper.web.common import DatabaseIntConverter

    # Before any route is added: every `<int:...>` is bounded by what the database can hold.
    app.url_map.converters["int"] = DatabaseIntConverter
    production = settings.env == "production"
    app.config.update(
        SECRET_KEY=runtime.secret_key,
        SESSION_COOKIE_NAME="gatekeeper_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        REMEMBER_COOKIE_SECURE=production,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.web.session_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=production,
    )
    app.extensions["gatekeeper"] = runtime
    app.jinja_env.filters["plural"] = plural
    # Pages show a role only what it may do: `current_user.may(Permission.X)`.
    app.jinja_env.globals["Permission"] = Permission
    if hops := settings.web.proxy_hops:
        # Behind a reverse proxy: the client's address (rate limits) and scheme come from its headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    from gatekeeper.web import (
        api,
        audit,
        auth,
        consent,
        limits,
        outbox,
        people,
        photos,
        public,
        publications,
        review,
        scan,
        staff,
    )

    limits.install(
        app,
        settings.web,
        sign_in=auth.bp,
        public=public.bp,
        api=api.bp,
        staff=(
            staff.bp,
            people.bp,
            consent.bp,
            audit.bp,
            photos.bp,
            review.bp,
            publications.bp,
            outbox.bp,
            scan.bp,
        ),
    )
    # After the limiter, so a client over its limit is refused before anything else is checked.
    csrf = CSRFProtect(app)
    csrf.exempt(api.bp)
    auth.login_manager.init_app(app)
    for blueprint in (auth.bp, staff.bp, people.bp, consent.bp, audit.bp, public.bp, api.bp, photos.bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(review.bp)
    app.register_blueprint(publications.bp)
    app.register_blueprint(outbox.bp)
    app.register_blueprint(scan.bp)

    @app.before_request
    def _idle_timeout() -> None:
        # A permanent session expires after session_minutes without a request (refreshed each one).
        session.permanent = True

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if production:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if not request.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    def _is_api() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(errors.GatekeeperError)
    def _error(exc: errors.GatekeeperError) -> ResponseReturnValue:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 500)
        # A decoder's message (Pillow's, an object's address) is never shown: the refusal's words are.
        message = explain(exc).words if isinstance(exc, errors.MediaError) else str(exc)
        code = explain(exc).code if isinstance(exc, errors.MediaError) else exc.code
        if _is_api() or request.path in ("/healthz", "/readyz"):
            return jsonify(error=code, message=message), status
        return render_template("error.html", status=status, message=message, code=code), status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> ResponseReturnValue:
        message = (
            "This form has expired or was not sent from this site. Go back, reload the page and try again."
        )
        return render_template("error.html", status=400, message=message), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> ResponseReturnValue:
        status = exc.code or 500
        if _is_api():
            code = (exc.name or "error").lower().replace(" ", "_")
            return jsonify(error=code, message=exc.description or exc.name), status
        return render_template(
            "error.html", status=status, message=_MESSAGES.get(status, exc.description)
        ), status

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        from sqlalchemy import text

        with runtime.db.connect() as conn:
            conn.execute(text("SELECT 1"))
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> ResponseReturnValue:
        checks = readiness(runtime)
        ready = all(check["ok"] for check in checks.values())
        return jsonify(status="ready" if ready else "not ready", **checks), 200 if ready else 503

    @app.context_processor
    def _organisation() -> dict[str, object]:
        # Public pages name the organisation, with its address and privacy contact, when configured.
        from gatekeeper.mail.messages import organisation

        return {"organisation": organisation(runtime.settings.mail)}

    @app.context_processor
    def _jobs_banner() -> dict[str, object]:
        # Staff see when jobs cannot be sent (they are recorded and go out when the queue is back).
        from flask_login import current_user

        if not current_user.is_authenticated:
            return {}
        from gatekeeper.web.photos import job_queue

        return {"jobs_unsendable": not job_queue().reachable()}

    return app


def readiness(runtime: Runtime) -> dict[str, dict[str, object]]:
    """Whether the database, the queue and each store answer now; errors by type, never their text."""
    from sqlalchemy import text

    from gatekeeper.web.photos import job_queue

    def check(probe: Callable[[], object]) -> dict[str, object]:
        try:
            probe()
        except Exception as exc:
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True}

    def database() -> None:
        with runtime.db.connect() as conn:
            conn.execute(text("SELECT 1"))

    def queue() -> None:
        if not job_queue().reachable():
            raise ConnectionError("the queue cannot be reached")

    return {
        "database": check(database),
        "queue": check(queue),
        "originals": check(lambda: runtime.originals.exists(READY_PROBE_KEY)),
        "published": check(lambda: runtime.published.exists(READY_PROBE_KEY)),
    }


_MESSAGES = {
    403: "Your role does not give access to this page.",
    404: "There is no page at this address.",
    405: "This page cannot be used that way.",
    413: "The file is too large.",
    429: "Too many requests. Please wait a few minutes and try again.",
}
