"""Photo upload for staff: batches, each photo's progress and verdict, boxed faces, clean copies.

No request waits for face matching: an upload keeps the originals and requests one gate job per
photo (the runtime's job queue sends it after the commit); pages show each photo's progress and
refresh themselves without JavaScript (meta refresh while anything is still queued), and
static/photos.js polls the batch's JSON instead when scripts run. Every clean copy, single or in
the batch zip, is decided again at the moment it is asked for.
"""

from __future__ import annotations

from typing import Any, cast

from flask import (
    Blueprint,
    Response,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.orm import Session
from wtforms import MultipleFileField, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Photo
from gatekeeper.errors import RecordNotFoundError
from gatekeeper.people.identity import masked_reasons
from gatekeeper.photos import access, views
from gatekeeper.photos import intake as uploads
from gatekeeper.publishing import downloads
from gatekeeper.publishing import publish as publish_service
from gatekeeper.queueing import JobKind, request_job
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import Principal, actor, permission_required
from gatekeeper.web.common import now, plural, runtime, unit
from gatekeeper.web.wording import channel_words, face_colour, face_text, reason_words, refusal

bp = Blueprint("photos", __name__)

REFRESH_SECONDS = 3
MAX_FLASHED = 15


def job_queue() -> Any:
    """The process's job queue: the runtime's, which the app factory composed it with."""
    return runtime().queue()


@bp.teardown_app_request
def _close_uploads(exc: BaseException | None) -> None:
    # Large uploads are spooled to temporary files: close them whatever the view did with them
    # (a form that failed validation never reads its files). Never parses a body not yet read.
    if "files" in request.__dict__:
        for storage in request.files.values():
            storage.close()


def role() -> str:
    """The role of whoever is asking (web session or API token)."""
    from flask import g

    user = g.get("api_user") or current_user
    return cast(Principal, user).role


class UploadForm(FlaskForm):
    channel = SelectField("Channel: where the photos will be published", validators=[DataRequired()])
    photos = MultipleFileField(
        "Photos, or a zip of photos", render_kw={"accept": "image/*,.heic,.heif,.zip,application/zip"}
    )
    caption = TextAreaField(
        "Caption or alt text (optional)", validators=[Optional(), Length(max=uploads.MAX_CAPTION)]
    )


def _form() -> UploadForm:
    form = UploadForm()
    form.channel.choices = [(c, channel_words(c).capitalize()) for c in runtime().settings.policy.channels]
    return form


def do_upload(files: list[uploads.UploadFile], channel: str, caption: str | None) -> uploads.UploadResult:
    """Receive, keep and queue the files (shared with the API)."""
    rt = runtime()
    accepted, refused = uploads.receive(files, rt.settings)
    with unit() as db:
        return uploads.submit_batch(
            db,
            accepted,
            channel=channel,
            caption=caption,
            refused=refused,
            settings=rt.settings,
            originals=rt.originals,
            now=now(),
            actor=actor(),
        )


@bp.route("/upload", methods=["GET", "POST"])
@permission_required(Permission.UPLOAD)
def upload() -> ResponseReturnValue:
    form = _form()
    status = 200
    if form.validate_on_submit():
        files = []
        for storage in request.files.getlist(form.photos.name):
            try:
                content = storage.read()
            finally:
                storage.close()
            if storage.filename or content:
                files.append(uploads.UploadFile(storage.filename or "file", content))
        if not files:
            form.photos.errors = ["Choose at least one photo or zip."]
            status = 400
        else:
            result = do_upload(files, form.channel.data or "", form.caption.data)
            for refusal in result.refused[:MAX_FLASHED]:
                flash(f"Not uploaded: {refusal.name}: {refusal.reason}.", "error")
            if len(result.refused) > MAX_FLASHED:
                flash(f"…and {plural(len(result.refused) - MAX_FLASHED, 'more file')} not uploaded.", "error")
            if result.batch_id is not None:
                flash(
                    f"{plural(len(result.photo_ids), 'photo')} uploaded; each is checked in the background.",
                    "info",
                )
                return redirect(url_for("photos.batch", batch_id=result.batch_id))
            status = 422
    elif request.method == "POST":
        status = 400
    with unit() as db:
        batches = access.visible_batches(db, role=role(), actor=actor())
    return render_template("upload.html", form=form, batches=batches), status


def _filtered(view: views.BatchView, verdict: str, reason: str) -> list[views.PhotoView]:
    return [
        p
        for p in view.photos
        if (not verdict or p.verdict == verdict or (verdict == "waiting" and p.verdict is None))
        and (not reason or reason in p.reasons)
    ]


@bp.get("/batches/<int:batch_id>")
@permission_required(Permission.UPLOAD)
def batch(batch_id: int) -> ResponseReturnValue:
    verdict = request.args.get("verdict", "")
    reason = request.args.get("reason", "")
    with unit() as db:
        check_batch(db, batch_id)
        view = views.batch_view(db, batch_id, role=role(), viewer=actor())
    return render_template(
        "batch.html",
        view=view,
        photos=_filtered(view, verdict, reason),
        verdict=verdict,
        reason=reason,
        words=reason_words,
        refusal=refusal,
        refresh=None if view.finished else REFRESH_SECONDS,
    )


def check_batch(db: Session, batch_id: int) -> None:
    """404 (RecordNotFoundError) unless whoever asks may open the batch: an uploader only their own."""
    access.check_batch(db, batch_id, role=role(), actor=actor())


def check_photo(db: Session, photo_id: int) -> None:
    """404 (RecordNotFoundError) unless whoever asks may open the photo: an uploader only their own."""
    access.check_photo(db, photo_id, role=role(), actor=actor())


def photo_json(view: views.PhotoView) -> dict[str, Any]:
    """A photo as the API and the batch's JSON give it (the fields of `gate --json`; faces are
    numbered from 1 in the order of the list, as on the photo page)."""
    return {
        "id": view.id,
        "status": view.status,
        "verdict": view.verdict,
        "reasons": list(view.reasons),
        "faces": [
            {
                "number": f.number,
                "box": list(f.box),
                "person": f.person,
                "distance": f.distance,
                "outcome": f.outcome,
                **({"covered": True} if f.covered else {}),
            }
            for f in view.faces
        ],
        "caption": view.caption,
        "error": view.error,
        "error_code": view.error_code,
    }


@bp.get("/batches/<int:batch_id>.json")
@permission_required(Permission.UPLOAD)
def batch_json(batch_id: int) -> ResponseReturnValue:
    with unit() as db:
        check_batch(db, batch_id)
        view = views.batch_view(db, batch_id, role=role())
    return jsonify(
        id=view.id,
        finished=view.finished,
        counts=view.counts,
        photos=[
            {
                "position": p.position,
                "id": p.id,
                "status": p.status,
                "verdict": p.verdict,
                "reasons": [reason_words(r, view.channel) for r in p.reasons],
                "error": p.error,
                "url": url_for("photos.photo", photo_id=p.id) if p.id else None,
            }
            for p in view.photos
        ],
    )


@bp.post("/batches/<int:batch_id>/publishable.zip")
@permission_required(Permission.UPLOAD)
def batch_zip(batch_id: int) -> ResponseReturnValue:
    rt = runtime()
    with unit() as db:
        check_batch(db, batch_id)
    # The copies are built first, with the database free; then given out in one unit of work that
    # decides every photo again at that moment.
    copies = downloads.build_batch_copies(
        rt.sessions,
        batch_id,
        settings=rt.settings,
        originals=rt.originals,
        engine=lambda: rt.faces,
        now=now(),
    )
    with unit() as db:
        data, held, refused = downloads.release_batch(
            db,
            copies,
            settings=rt.settings,
            originals=rt.originals,
            engine=lambda: rt.faces,
            now=now(),
            actor=actor(),
        )
    if not held:
        flash("No photo of this batch can be published now: nothing to download.", "error")
        return redirect(url_for("photos.batch", batch_id=batch_id))
    response = Response(data, mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="batch-{batch_id}-publishable.zip"'
    response.headers["X-Gatekeeper-Refused"] = str(refused)
    return response


@bp.get("/photos/<int:photo_id>")
@permission_required(Permission.VIEW_PHOTOS)
def photo(photo_id: int) -> ResponseReturnValue:
    with unit() as db:
        check_photo(db, photo_id)
        # Decided again now: a withdrawal since the check shows at once.
        view = views.photo_view(
            db, photo_id, role=role(), now=now(), settings=runtime().settings, viewer=actor()
        )
        publications = publish_service.publications_of(db, photo_id)
    return render_template(
        "photo.html",
        view=view,
        publications=publications,
        words=reason_words,
        refusal=refusal,
        colour=face_colour,
        face_text=face_text,
        channel=channel_words(view.channel),
        may_publish=cast(Principal, current_user).may(Permission.UPLOAD),
        refresh=REFRESH_SECONDS if view.status in ("queued", "processing") else None,
    )


@bp.get("/photos/<int:photo_id>/preview.jpg")
@permission_required(Permission.VIEW_PHOTOS)
def preview(photo_id: int) -> ResponseReturnValue:
    return _private_image(photo_id, edge=views.PREVIEW_EDGE)


@bp.get("/photos/<int:photo_id>/thumbnail.jpg")
@permission_required(Permission.VIEW_PHOTOS)
def thumbnail(photo_id: int) -> ResponseReturnValue:
    return _private_image(photo_id, edge=views.THUMBNAIL_EDGE)


def _private_image(photo_id: int, *, edge: int) -> ResponseReturnValue:
    """The photo's private preview or thumbnail (`edge` px) for whoever may open it; never cached."""
    rt = runtime()
    with unit() as db:
        check_photo(db, photo_id)
        found = db.get(Photo, photo_id)
        if found is None:
            raise RecordNotFoundError("photo", photo_id)
        data = views.preview(rt.originals, found, rt.settings, edge=edge)
    response = Response(data, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "no-store, private"
    return response


def clean_copy(db: Session, photo_id: int) -> downloads.CleanDownload:
    """A photo's clean copy for download, decided again now (a download is a publication).

    Raises RecordNotFoundError for a photo the asker may not open."""
    check_photo(db, photo_id)
    rt = runtime()
    return downloads.clean_download(
        db,
        photo_id,
        settings=rt.settings,
        originals=rt.originals,
        engine=lambda: rt.faces,
        now=now(),
        actor=actor(),
    )


def attachment(got: downloads.CleanDownload) -> Response:
    """The clean copy as a file to save, under its opaque name."""
    assert got.data is not None
    response = Response(got.data, mimetype=got.media_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{got.name}"'
    return response


@bp.post("/photos/<int:photo_id>/clean")
@permission_required(Permission.UPLOAD)
def clean(photo_id: int) -> ResponseReturnValue:
    with unit() as db:
        got = clean_copy(db, photo_id)
    if got.data is None:
        channel = db_channel(photo_id)
        why = "; ".join(reason_words(r, channel) for r in masked_reasons(got.reasons, role()))
        flash(f"This photo cannot be published now: {why}.", "error")
        return redirect(url_for("photos.photo", photo_id=photo_id))
    return attachment(got)


def db_channel(photo_id: int) -> str:
    with unit() as db:
        found = db.get(Photo, photo_id)
        return found.channel if found is not None else ""


@bp.post("/photos/<int:photo_id>/publish")
@permission_required(Permission.UPLOAD)
def publish(photo_id: int) -> ResponseReturnValue:
    rt = runtime()
    with unit() as db:
        check_photo(db, photo_id)
        found = db.get(Photo, photo_id)
        if found is None:
            raise RecordNotFoundError("photo", photo_id)
        where = channel_words(found.channel)
        live = publish_service.already_published(db, rt.published, photo_id, found.channel)
        if live is not None:
            # Nothing new is written: the copy already there is the publication.
            flash(
                f"Already published to {where} on {live.published_at:%Y-%m-%d %H:%M} UTC "
                f"by {(live.published_by or 'unknown').split(':', 1)[-1]}: nothing new was published.",
                "info",
            )
            return redirect(url_for("photos.photo", photo_id=photo_id))
        if publish_service.publish_pending(db, photo_id, found.channel) is not None:
            flash(f"Publishing to {where} is already queued: nothing new was queued.", "info")
            return redirect(url_for("photos.photo", photo_id=photo_id))
        job_id = request_job(db, JobKind.PUBLISH, [photo_id, found.channel, actor()], now=now()).id
        audit.append(
            db,
            at=now(),
            actor=actor(),
            action=AuditAction.PUBLICATION_REQUESTED,
            subject=f"photo:{photo_id}",
            details={"channel": found.channel, "job": job_id},
        )
    flash(
        "Publishing is queued: consent is checked again when it runs, and the photo is published "
        "only if it still passes.",
        "info",
    )
    return redirect(url_for("photos.photo", photo_id=photo_id))
