"""The outbox for admins: every email, failed and uncertain ones first, with the server's answer."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from gatekeeper.mail import outbox as mail_outbox
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import permission_required
from gatekeeper.web.common import runtime, unit
from gatekeeper.web.wording import MAIL_STATE_WORDS

bp = Blueprint("outbox", __name__)


@bp.get("/outbox")
@permission_required(Permission.READ_OUTBOX)
def outbox_page() -> ResponseReturnValue:
    attention_only = request.args.get("failed") == "1"
    with unit() as db:
        lines = mail_outbox.list_messages(db, attention_only=attention_only)
    configured = runtime().settings.mail.configured
    return render_template(
        "outbox.html",
        lines=lines,
        attention_only=attention_only,
        configured=configured,
        words=MAIL_STATE_WORDS,
    )
