"""Scanning what is already public, from the web: start a website scan (a background job), follow its
progress, read its report (also as CSV). For admins and consent admins (they see placements and
takedowns). A social media archive can be uploaded and scanned the same way (kept only until its
scan ends); folders on the server are scanned with `gatekeeper scan`."""

from __future__ import annotations

import io

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent_db.models import ScanRun
from gatekeeper.errors import InvalidInputError, NotFoundError
from gatekeeper.people.identity import masked_reasons
from gatekeeper.queueing import JobKind, request_job
from gatekeeper.scan import report, runner, scanning
from gatekeeper.staff.roles import Permission
from gatekeeper.web import wording
from gatekeeper.web.auth import actor, permission_required
from gatekeeper.web.common import now, runtime, unit
from gatekeeper.web.forms import ScanForm, options
from gatekeeper.web.photos import role

bp = Blueprint("scan", __name__)
VERDICT_LABELS = {"publishable": "Publishable", "blocked": "Blocked", "review": "Needs review"}


def _form() -> ScanForm:
    form = ScanForm()
    form.channel.choices = options(
        *((c, wording.channel_words(c)) for c in runtime().settings.policy.channels)
    )
    return form


def _cap(text: str | None, label: str) -> int | None:
    if not text or not text.strip():
        return None
    if not text.strip().isdigit() or int(text) < 1:
        raise InvalidInputError(f"{label} must be a whole number of at least 1")
    return int(text)


def _list(form: ScanForm, status: int = 200) -> ResponseReturnValue:
    with unit() as db:
        runs = list(db.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(100)))
        rows = [(run, run.source) for run in runs]
    return render_template("scans.html", form=form, rows=rows, labels=VERDICT_LABELS), status


@bp.get("/scans")
@permission_required(Permission.RECORD_PLACEMENTS)
def scans() -> ResponseReturnValue:
    return _list(_form())


@bp.post("/scans")
@permission_required(Permission.RECORD_PLACEMENTS)
def start() -> ResponseReturnValue:
    form = _form()
    if not form.validate_on_submit():
        return _list(form, 400)
    source = (form.source.data or "").strip()
    upload = form.archive.data
    settings = runtime().settings
    try:
        if upload is not None and getattr(upload, "filename", ""):
            if source:
                raise InvalidInputError("give a website's address or an archive, not both")
            if form.watch.data:
                raise InvalidInputError(
                    "an uploaded archive is scanned once: upload a newer one to scan again"
                )
            source = str(runner.keep_upload(settings, upload.read(), upload.filename or ""))
        elif not source:
            raise InvalidInputError("give the website's address, or choose an archive to upload")
        elif not source.lower().startswith(("http://", "https://")):
            raise InvalidInputError(
                "only a website (http:// or https://) or an uploaded archive can be scanned from here"
            )
        with unit() as db:
            run_id = runner.start_scan(
                db,
                source,
                channel=form.channel.data or "",
                settings=settings,
                now=now(),
                actor=actor(),
                max_pages=_cap(form.max_pages.data, "The page cap"),
                max_images=_cap(form.max_images.data, "The image cap"),
                state=scanning.QUEUED,
            )
            run = scanning.get_run(db, run_id)
            if form.watch.data:
                run.source.watch = True
            request_job(db, JobKind.SCAN, [run_id], now=now())
    except InvalidInputError as exc:
        form.source.errors = [str(exc)]
        return _list(form, 400)
    flash(f"Scan {run_id} is queued: this page shows its progress.", "info")
    return redirect(url_for("scan.scan_page", run_id=run_id))


@bp.get("/scans/<int:run_id>")
@permission_required(Permission.RECORD_PLACEMENTS)
def scan_page(run_id: int) -> ResponseReturnValue:
    try:
        with unit() as db:
            run = scanning.get_run(db, run_id)
            source = run.source
            rows = report.findings(db, run_id)
    except NotFoundError:
        abort(404)
    channel, viewer = source.channel, role()
    pictures = [
        {
            "finding": f,
            "verdict": VERDICT_LABELS.get(f.verdict, f.verdict),
            "reasons": [wording.reason_words(r, channel) for r in masked_reasons(f.reasons, viewer)],
            "faces": [
                wording.face_words(
                    face.get("person"),
                    face["outcome"],
                    masked_reasons(face.get("reasons", []), viewer),
                    channel,
                    covered=bool(face.get("covered")),
                )
                for face in f.faces
            ],
        }
        for f in rows
    ]
    return render_template(
        "scan.html",
        run=run,
        source=source,
        channel=wording.channel_words(channel),
        pictures=pictures,
        running=run.state in (scanning.QUEUED, scanning.RUNNING),
    )


@bp.get("/scans/<int:run_id>.csv")
@permission_required(Permission.RECORD_PLACEMENTS)
def scan_csv(run_id: int) -> ResponseReturnValue:
    try:
        with unit() as db:
            run = scanning.get_run(db, run_id)
            out = io.StringIO()
            report.write_csv(out, run, report.findings(db, run_id), viewer=role())
    except NotFoundError:
        abort(404)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="scan-{run_id}.csv"'},
    )
