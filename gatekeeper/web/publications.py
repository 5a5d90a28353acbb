"""Publications and takedowns: where each photo went, and the external copies staff must remove."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gatekeeper.errors import InvalidInputError, NotFoundError
from gatekeeper.publishing import placements
from gatekeeper.publishing import takedowns as takedown_service
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import actor, permission_required
from gatekeeper.web.common import now, unit
from gatekeeper.web.forms import TakedownDoneForm

bp = Blueprint("publications", __name__)


@bp.get("/publications")
@permission_required(Permission.RECORD_PLACEMENTS)
def publications() -> ResponseReturnValue:
    live_only = request.args.get("live") == "1"
    with unit() as db:
        rows = placements.all_publications(db, live_only=live_only)
    return render_template("publications.html", publications=rows, live_only=live_only)


def _takedowns(
    form: TakedownDoneForm | None = None, failed: int | None = None, status: int = 200
) -> ResponseReturnValue:
    show_done = request.args.get("done") == "1"
    with unit() as db:
        open_tasks = placements.task_views(db, open_only=True)
        done = (
            [v for v in placements.task_views(db, open_only=False) if v.task.done_at is not None]
            if show_done
            else []
        )
    forms = {
        v.task.id: (
            form
            if failed == v.task.id and form is not None
            else TakedownDoneForm(formdata=None, prefix=f"t{v.task.id}")
        )
        for v in open_tasks
    }
    return render_template(
        "takedowns.html", open_tasks=open_tasks, done=done, show_done=show_done, forms=forms
    ), status


@bp.get("/takedowns")
@permission_required(Permission.RECORD_PLACEMENTS)
def takedowns() -> ResponseReturnValue:
    return _takedowns()


@bp.post("/takedowns/<int:task_id>/done")
@permission_required(Permission.RECORD_PLACEMENTS)
def takedown_done(task_id: int) -> ResponseReturnValue:
    form = TakedownDoneForm(prefix=f"t{task_id}")
    if not form.validate_on_submit():
        return _takedowns(form, task_id, 400)
    try:
        with unit() as db:
            task = takedown_service.complete_task(
                db, task_id, note=form.note.data or "", now=now(), actor=actor()
            )
            where = task.target
    except (InvalidInputError, NotFoundError) as exc:
        flash(f"Takedown task {task_id} was not changed: {exc}", "error")
        return redirect(url_for("publications.takedowns"))
    flash(f"Takedown task {task_id} marked done ({where}).", "info")
    return redirect(url_for("publications.takedowns"))
