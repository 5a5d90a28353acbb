"""The audit log for auditors and admins: filtered pages, the chain's check, and the CSV export."""

from __future__ import annotations

from datetime import date

from flask import (
    Blueprint,
    Response,
    render_template,
    request,
    stream_with_context,
)
from flask.typing import ResponseReturnValue

from consent_db import audit
from gatekeeper.audit import log as audit_log
from gatekeeper.errors import InvalidInputError
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import permission_required
from gatekeeper.web.common import PAGE, page_number, unit

bp = Blueprint("audit", __name__)


# --- audit ---------------------------------------------------------------------------------------------


def _audit_filter() -> audit_log.AuditFilter:
    def day(name: str) -> date | None:
        value = request.args.get(name, "")
        try:
            return date.fromisoformat(value) if value else None
        except ValueError:
            raise InvalidInputError(f"{name} must be a date YYYY-MM-DD", field=name) from None

    return audit_log.AuditFilter(
        action=request.args.get("action", "").strip()[:60],
        actor=request.args.get("actor", "").strip()[:120],
        subject=request.args.get("subject", "").strip()[:200],
        since=day("since"),
        until=day("until"),
    )


@bp.get("/audit")
@permission_required(Permission.READ_AUDIT)
def audit_page() -> ResponseReturnValue:
    flt = _audit_filter()
    page = page_number()
    with unit() as db:
        check = audit.verify(db)
        events = audit_log.find_events(db, flt, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template(
        "audit.html", events=events[:PAGE], more=len(events) > PAGE, page=page, flt=flt, check=check
    )


@bp.get("/audit.csv")
@permission_required(Permission.READ_AUDIT)
def audit_csv() -> ResponseReturnValue:
    flt = _audit_filter()

    def lines() -> object:
        with unit() as db:
            yield from audit_log.export_csv(db, flt)

    return Response(
        stream_with_context(lines()),  # type: ignore[arg-type]
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )
