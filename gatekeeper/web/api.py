"""The JSON API under /api/v1: bearer tokens (`gatekeeper users token NAME`), JSON errors.

POST routes that change something honour an `Idempotency-Key` header (web/idempotency.py), except
`/people/<id>/link`, whose answer is a secret that is never stored.

docs/openapi.yaml describes every route here; a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from consent_db import audit
from gatekeeper.consent import mis_upload as people_admin
from gatekeeper.consent import summary as person_summary
from gatekeeper.consent import withdrawals
from gatekeeper.errors import InvalidInputError, RecordNotFoundError
from gatekeeper.people import lookup as people
from gatekeeper.people.identity import masked_reasons
from gatekeeper.photos import views
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import actor, api_permission
from gatekeeper.web.common import DB_INT_MAX, now, runtime, unit
from gatekeeper.web.idempotency import idempotent
from gatekeeper.web.photos import attachment, clean_copy

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.post("/people/import")
@api_permission(Permission.MANAGE_PEOPLE)
@idempotent
def people_import() -> ResponseReturnValue:
    upload = request.files.get("file")
    if upload is None:
        raise InvalidInputError("send the CSV (or a zip of it and its photos) as the multipart field 'file'")
    dry_run = request.form.get("dry_run", request.args.get("dry_run", "0")) in ("1", "true", "yes")
    rt = runtime()
    with unit() as db:
        report = people_admin.import_upload(
            db,
            upload.read(),
            engine=lambda: rt.faces,
            settings=rt.settings,
            now=now(),
            actor=actor(),
            source=f"api:{upload.filename or 'upload'}",
            dry_run=dry_run,
        )
    return jsonify({"dry_run": dry_run, **report.as_json()}), 200 if report.ok else 422


@bp.get("/people/<external_id>")
@api_permission(Permission.MANAGE_PEOPLE)
def person(external_id: str) -> ResponseReturnValue:
    with unit() as db:
        summary = person_summary.summarise_person(db, external_id, settings=runtime().settings, now=now())
        safeguarding = people.find_person(db, external_id).safeguarding
    return jsonify(
        external_id=summary.external_id,
        name=summary.name,
        date_of_birth=summary.date_of_birth.isoformat() if summary.date_of_birth else None,
        status=summary.status,
        safeguarding=safeguarding,
        templates=summary.templates,
        biometric_consent=summary.biometric_consent,
        channels=[c.as_json() for c in summary.channels],
    )


@bp.post("/people/<external_id>/withdraw")
@api_permission(Permission.MANAGE_PEOPLE)
@idempotent
def withdraw(external_id: str) -> ResponseReturnValue:
    body = request.get_json(silent=True) if request.is_json else None
    if request.is_json and not isinstance(body, dict):
        raise InvalidInputError("the body must be a JSON object")
    channels: Any = (body or {}).get("channels")
    if channels is None:
        channels = request.form.getlist("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise InvalidInputError("channels must be a list of channel names", field="channels")
    with unit() as db:
        added = withdrawals.withdraw(
            db, external_id, channels, settings=runtime().settings, now=now(), actor=actor(), how="api"
        )
    return jsonify(external_id=external_id, withdrawn=[r.channel for r in added])


@bp.post("/people/<external_id>/link")
@api_permission(Permission.MANAGE_PEOPLE)
def link(external_id: str) -> ResponseReturnValue:
    with unit() as db:
        url = withdrawals.issue_link(db, external_id, settings=runtime().settings, now=now(), actor=actor())
    return jsonify(external_id=external_id, url=url), 201


@bp.get("/withdrawals")
@api_permission(Permission.MANAGE_PEOPLE)
def pending() -> ResponseReturnValue:
    moment = now()
    with unit() as db:
        found = [
            {
                "reference": r.reference,
                "created_at": r.created_at.isoformat(),
                "name": r.claimed_name,
                "date_of_birth": r.claimed_date_of_birth.isoformat() if r.claimed_date_of_birth else None,
                "relationship": r.relationship_to_person,
                "contact_email": r.contact_email,
                "people": [p.external_id for p in withdrawals.people_of(db, r)],
                "matched": r.matched_at is not None,
                "near_matches": [p.external_id for p in withdrawals.near_matches(db, r)],
                "waiting_minutes": int((moment - r.created_at).total_seconds() // 60),
            }
            for r in withdrawals.pending_requests(db)
        ]
    return jsonify(requests=found)


@bp.post("/withdrawals/<reference>/<decision>")
@api_permission(Permission.MANAGE_PEOPLE)
@idempotent
def decide(reference: str, decision: str) -> ResponseReturnValue:
    if decision not in ("confirm", "reject"):
        return jsonify(error="not_found", message="decision must be confirm or reject"), 404
    body = request.get_json(silent=True) if request.is_json else None
    note = str((body or {}).get("note", "")) if isinstance(body, dict) else ""
    act = withdrawals.confirm_request if decision == "confirm" else withdrawals.reject_request
    with unit() as db:
        req = act(db, reference, settings=runtime().settings, now=now(), actor=actor(), note=note)
        status = req.status
    return jsonify(reference=reference, status=status)


@bp.get("/audit/verify")
@api_permission(Permission.READ_AUDIT)
def audit_verify() -> ResponseReturnValue:
    with unit() as db:
        check = audit.verify(db)
    return jsonify(ok=check.ok, events=check.events, first_bad_id=check.first_bad_id)


# --- photos ---------------------------------------------------------------------------------------


def _photo_id(raw: str) -> int:
    """A photo id from the path (numbers only: anything else is a photo that does not exist)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > DB_INT_MAX:
        raise RecordNotFoundError("photo", 0)
    return int(raw)


@bp.post("/photos")
@api_permission(Permission.PHOTO_API)
@idempotent
def photos_upload() -> ResponseReturnValue:
    from gatekeeper.photos.intake import ZIP_MAGIC, UploadFile, receive
    from gatekeeper.web.photos import do_upload

    upload = request.files.get("file")
    channel = request.form.get("channel", "").strip()
    if upload is None:
        raise InvalidInputError("send the photo as the multipart field 'file'", field="file")
    if not channel:
        raise InvalidInputError("say which channel the photo is for ('channel')", field="channel")
    try:
        received = UploadFile(upload.filename or "file", upload.read())
    finally:
        upload.close()
    # Every check before anything is kept: a refused call stores nothing and queues nothing.
    if received.data.startswith(ZIP_MAGIC):
        raise InvalidInputError("send one photo per call, not a zip", field="file")
    _, refused = receive([received], runtime().settings)
    if refused:
        refusal = refused[0]
        # The refusal's own reason code, as `gate --json` gives it in `error_code`.
        return jsonify(error=refusal.code, message=f"{refusal.name}: {refusal.reason}"), 400
    result = do_upload([received], channel, request.form.get("caption"))
    return jsonify(id=result.photo_ids[0], batch=result.batch_id), 202


@bp.get("/photos/<photo_id>")
@api_permission(Permission.PHOTO_API)
def photos_show(photo_id: str) -> ResponseReturnValue:
    from gatekeeper.web.photos import check_photo, photo_json, role

    with unit() as db:
        check_photo(db, _photo_id(photo_id))
        view = views.photo_view(db, _photo_id(photo_id), role=role())
    return jsonify(photo_json(view))


@bp.get("/photos/<photo_id>/clean")
@api_permission(Permission.PHOTO_API)
def photos_clean(photo_id: str) -> ResponseReturnValue:
    from gatekeeper.web.photos import check_photo, role

    number = _photo_id(photo_id)
    with unit() as db:
        check_photo(db, number)
        view = views.photo_view(db, number, role=role(), with_faces=False)
        if view.status != "done":
            return jsonify(
                error="not_ready", message=f"photo {photo_id} is {view.status}, not checked yet"
            ), 409
        got = clean_copy(db, number)
    if got.data is None:
        reasons = masked_reasons(got.reasons, role())
        return jsonify(
            error="not_publishable",
            message=f"photo {photo_id} cannot be published now ({got.verdict}: {', '.join(reasons)})",
        ), 409
    return attachment(got)
