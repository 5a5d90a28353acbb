"""The review queue: faces a reviewer identifies by eye, and the crops they look at.

A reviewer says who a face is (a person, someone else, not a face) with a reason; the consent rules
then decide the photo again (photos/review.py). Crops are cut from the private original on
request, re-encoded without metadata and never cached.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from gatekeeper.errors import GatekeeperError, InvalidInputError, NotFoundError, StaleDecisionError
from gatekeeper.people import search
from gatekeeper.people.identity import masked_reasons
from gatekeeper.photos import face_crops
from gatekeeper.photos import review as review_service
from gatekeeper.policy import PersonStatus
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import actor, permission_required
from gatekeeper.web.common import now, runtime, unit
from gatekeeper.web.forms import ResolveForm, options
from gatekeeper.web.photos import role

bp = Blueprint("review", __name__)
SEARCH_LIMIT = 20
MIN_QUERY = 3
RESOLUTION_WORDS = {"person": "identified as", "stranger": "someone else", "not_a_face": "not a face"}


def _jpeg(data: bytes) -> Response:
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store, private"
    response.headers["Content-Disposition"] = "inline"
    return response


@bp.get("/review")
@permission_required(Permission.REVIEW)
def queue() -> ResponseReturnValue:
    with unit() as db:
        items = review_service.open_reviews(db, viewer=role())
    return render_template("review.html", items=items)


def _item(photo_id: int, position: int) -> review_service.ReviewItem | None:
    with unit() as db:
        return next(
            (
                i
                for i in review_service.open_reviews(db, viewer=role())
                if (i.photo_id, i.position) == (photo_id, position)
            ),
            None,
        )


def _item_page(
    photo_id: int, position: int, form: ResolveForm | None = None, status: int = 200
) -> ResponseReturnValue:
    item = _item(photo_id, position)
    if item is None:
        flash(f"Photo {photo_id}, face {position + 1} is not waiting for review (already resolved?).", "info")
        return redirect(url_for("review.queue"))
    query = request.args.get("q", "").strip()[:200]
    # A short query would list most people on record: at least MIN_QUERY characters, matched literally.
    searchable = len(query) >= MIN_QUERY
    with unit() as db:
        found = search.search_people(db, query, limit=SEARCH_LIMIT) if searchable else []
        candidate = None
        has_reference = False
        if item.candidate is not None:
            candidate = search.search_people(db, item.candidate, limit=1)
            candidate = next((p for p in candidate if p.external_id == item.candidate), None)
            has_reference = face_crops.reference_face(db, item.candidate, exclude_photo=photo_id) is not None
        people = ([candidate] if candidate is not None else []) + [
            p for p in found if candidate is None or p.id != candidate.id
        ]
        choices = [
            (p.external_id, f"{p.display_name} ({p.external_id})")
            for p in people
            if p.status != PersonStatus.ERASED
        ]
    form = form or ResolveForm(formdata=None, decision=str(item.decision_id), learn=True)
    form.person.choices = options(*choices)
    if item.candidate and not form.person.data:
        form.person.data = item.candidate
    return (
        render_template(
            "review_item.html",
            item=item,
            form=form,
            query=query,
            has_reference=has_reference,
            searched=searchable,
            too_short=bool(query) and not searchable,
            min_query=MIN_QUERY,
        ),
        status,
    )


@bp.get("/review/<int:photo_id>/<int:position>")
@permission_required(Permission.REVIEW)
def item(photo_id: int, position: int) -> ResponseReturnValue:
    return _item_page(photo_id, position)


@bp.post("/review/<int:photo_id>/<int:position>")
@permission_required(Permission.REVIEW)
def resolve(photo_id: int, position: int) -> ResponseReturnValue:
    form = ResolveForm()
    if not form.validate_on_submit():
        return _item_page(photo_id, position, form, 400)
    resolution = form.resolution.data or ""
    person = (form.person.data or "").strip() or None
    if resolution == "person" and person is None:
        form.person.errors = ["Choose the person (search by name or MIS id)."]
        return _item_page(photo_id, position, form, 400)
    rt = runtime()
    try:
        with unit() as db:
            result = review_service.resolve_face(
                db,
                photo_id,
                position,
                resolution,
                person_external_id=person if resolution == "person" else None,
                reason=form.reason.data or "",
                decision_id=int(form.decision.data or 0),
                settings=rt.settings,
                engine=rt.faces,
                originals=rt.originals,
                now=now(),
                actor=actor(),
                learn=bool(form.learn.data),
            )
    except StaleDecisionError:
        flash("Someone changed this photo's decision while you looked at it; here it is again.", "error")
        return redirect(url_for("review.queue"))
    except (InvalidInputError, NotFoundError) as exc:
        form.reason.errors = [*form.reason.errors, str(exc)]
        return _item_page(photo_id, position, form, 400)
    who = f" {person}" if resolution == "person" else ""
    # A reviewer never learns of a safeguarding flag: it reads "cannot be published" as for uploaders.
    shown = masked_reasons(result.reasons, role())
    reasons = f" ({', '.join(shown).replace('_', ' ')})" if shown else ""
    flash(
        f"Photo {photo_id}, face {position + 1}: {RESOLUTION_WORDS[resolution]}{who}. "
        f"The consent rules decided again: {result.verdict}{reasons}.",
        "info",
    )
    if result.template_id is not None:
        flash("The face was added as a template: the person's biometric consent allows it.", "info")
    elif result.template_note:
        flash(f"No template was made: {result.template_note}", "info")
    return redirect(url_for("review.queue"))


@bp.get("/review/crops/<int:photo_id>/<int:position>.jpg")
@permission_required(Permission.REVIEW)
def face_crop(photo_id: int, position: int) -> ResponseReturnValue:
    rt = runtime()
    try:
        with unit() as db:
            data = face_crops.face_crop(db, photo_id, position, originals=rt.originals, settings=rt.settings)
    except GatekeeperError:
        abort(404)
    return _jpeg(data)


@bp.get("/review/references/<external_id>.jpg")
@permission_required(Permission.REVIEW)
def reference_crop(external_id: str) -> ResponseReturnValue:
    rt = runtime()
    photo_id = request.args.get("photo", type=int)
    position = request.args.get("face", type=int)
    # Only the possible match of a face waiting for review: never any person's face on request.
    item = _item(photo_id, position) if photo_id is not None and position is not None else None
    if item is None or item.candidate != external_id:
        abort(404)
    try:
        with unit() as db:
            data = face_crops.reference_crop(
                db, external_id, originals=rt.originals, settings=rt.settings, exclude_photo=photo_id
            )
    except GatekeeperError:
        abort(404)
    return _jpeg(data)
