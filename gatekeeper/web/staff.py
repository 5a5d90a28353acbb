"""The home page of signed-in staff: what each role may do, as links."""

from __future__ import annotations

from typing import cast

from flask import (
    Blueprint,
    render_template,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from gatekeeper.consent import withdrawals
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import Principal
from gatekeeper.web.common import unit

bp = Blueprint("staff", __name__)


@bp.get("/")
@login_required
def home() -> ResponseReturnValue:
    me = cast(Principal, current_user)
    pending = 0
    if me.may(Permission.MANAGE_PEOPLE):
        with unit() as db:
            pending = len(withdrawals.pending_requests(db))
    return render_template("home.html", pending=pending)
