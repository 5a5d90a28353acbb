"""Staff sign-in (Flask-Login sessions), API tokens, and the permission every staff route declares."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from consent_db.models import StaffUser
from gatekeeper.errors import InvalidInputError
from gatekeeper.staff import accounts
from gatekeeper.staff.roles import Permission, may
from gatekeeper.web.common import now, unit
from gatekeeper.web.forms import LoginForm, PasswordForm

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("auth", __name__)
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please sign in to see that page."
login_manager.session_protection = "strong"


@dataclass(frozen=True)
class Principal(UserMixin):  # type: ignore[misc]
    """The signed-in member of staff, as the web layer sees them (no ORM object outlives a request)."""

    user_id: int
    username: str
    role: str
    must_change_password: bool
    stamp: str
    generation: int = 0

    def get_id(self) -> str:
        # The stamp changes with the password, so changing it signs out every other session; the
        # generation advances on signing out, so a cookie copied before then is refused after it.
        return f"{self.user_id}:{self.generation}:{self.stamp}"

    def may(self, permission: Permission) -> bool:
        """True when this account's role has `permission`."""
        return may(self.role, permission)


def _stamp(user: StaffUser) -> str:
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def principal(user: StaffUser) -> Principal:
    """The session's view of an account."""
    return Principal(
        user.id, user.username, user.role, user.must_change_password, _stamp(user), user.session_generation
    )


def _binding() -> str:
    """What ties a session to the client that signed in: its address and its browser."""
    client = f"{request.remote_addr}|{request.headers.get('User-Agent', '')}"
    return hashlib.sha256(client.encode("utf-8", "replace")).hexdigest()


@login_manager.user_loader
def _load(user_id: str) -> Principal | None:
    # Flask-Login's "strong" protection does nothing for permanent sessions (ours all are), so the
    # binding is checked here: a cookie replayed from another address or browser signs nobody in.
    if session.get(_BINDING) != _binding():
        return None
    parts = user_id.split(":")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    raw_id, generation, stamp = parts
    with unit() as db:
        user = db.get(StaffUser, int(raw_id))
        if (
            user is None
            or not user.active
            or _stamp(user) != stamp
            or user.session_generation != int(generation)
        ):
            return None
        return principal(user)


_BINDING = "gk_binding"
# Endpoints an account on its one-time password may still reach: the page that replaces it,
# signing out, and the style sheet and script those pages load.
_BEFORE_PASSWORD = frozenset({"auth.password", "auth.logout", "static"})


@bp.before_app_request
def _password_first() -> ResponseReturnValue | None:
    # One check for every blueprint, present and future: a one-time password opens nothing else.
    # The API is not reached by session cookies; its tokens are checked in api_permission.
    if request.blueprint == "api" or request.endpoint in _BEFORE_PASSWORD:
        return None
    user = current_user
    if user.is_authenticated and cast(Principal, user).must_change_password:
        return redirect(url_for("auth.password"))
    return None


def permission_required(permission: Permission) -> Callable[[F], F]:
    """Signed-in staff whose role has `permission` only: others get 403, anonymous visitors the
    sign-in page."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not cast(Principal, current_user).may(permission):
                abort(403)
            return view(*args, **kwargs)

        return _declare(cast(F, wrapper), permission)

    return decorate


def api_permission(permission: Permission) -> Callable[[F], F]:
    """A bearer API token of an account whose role has `permission`: 401 without a valid token, 403
    for another role."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return _api_error(
                    401, "unauthorized", "an API token is required (Authorization: Bearer TOKEN)"
                )
            with unit() as db:
                user = accounts.user_for_token(db, token.strip())
                found = principal(user) if user is not None else None
            if found is None:
                return _api_error(401, "unauthorized", "the API token is not valid")
            if found.must_change_password:
                return _api_error(
                    403, "password_change_required", "sign in and replace the one-time password first"
                )
            if not found.may(permission):
                return _api_error(403, "forbidden", f"the {found.role} role may not do this")
            g.api_user = found
            return view(*args, **kwargs)

        return _declare(cast(F, wrapper), permission)

    return decorate


_PERMISSION = "gatekeeper_permission"


def _declare(view: F, permission: Permission) -> F:
    # Kept on the view, so the route x role test reads what each route requires.
    setattr(view, _PERMISSION, permission)
    return view


def declared_permission(view: Callable[..., Any]) -> Permission | None:
    """The permission a route's view declared (`permission_required`, `api_permission`), else None."""
    found = getattr(view, _PERMISSION, None)
    return found if isinstance(found, Permission) else None


def _api_error(status: int, code: str, message: str) -> ResponseReturnValue:
    response = jsonify(error=code, message=message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="gatekeeper"'
    return response, status


# A path on this site: one leading slash, then printable characters other than whitespace and
# backslash, never a second slash straight after the first (browsers read `//host` and `/\\host` as
# another site, and drop tabs and newlines before reading it).
_LOCAL_PATH = re.compile(r"/(?![/\\])[!-\[\]-~]*")


def _local(target: str) -> str | None:
    """`target` if it is a path on this site (never another host: no open redirect), else None."""
    return target if _LOCAL_PATH.fullmatch(target) else None


def actor() -> str:
    """Who is acting, as the audit log names them."""
    user = g.get("api_user") or current_user
    return f"user:{cast(Principal, user).username}"


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm()
    if form.validate_on_submit():
        with unit() as db:
            user = accounts.authenticate(db, form.username.data or "", form.password.data or "", now=now())
            found = principal(user) if user is not None else None
        if found is None:
            flash("That username and password do not match an account.", "error")
        else:
            session.clear()
            login_user(found)
            session[_BINDING] = _binding()
            session.permanent = True
            if found.must_change_password:
                return redirect(url_for("auth.password"))
            return redirect(_local(request.args.get("next", "")) or url_for("staff.home"))
    return render_template("login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> ResponseReturnValue:
    with unit() as db:
        accounts.end_sessions(db, cast(Principal, current_user).user_id)
    logout_user()
    session.clear()
    flash("You have signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password() -> ResponseReturnValue:
    form = PasswordForm()
    me = cast(Principal, current_user)
    if form.validate_on_submit():
        try:
            with unit() as db:
                user = accounts.change_password(
                    db, me.user_id, form.current.data or "", form.new.data or "", now=now()
                )
                updated = principal(user)
        except InvalidInputError as exc:
            flash(str(exc), "error")
        else:
            login_user(updated)
            session.permanent = True
            flash("Your password has been changed.", "info")
            return redirect(url_for("staff.home"))
    return render_template("password.html", form=form, forced=me.must_change_password)
