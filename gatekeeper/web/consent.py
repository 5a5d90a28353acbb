"""Consent pages for consent admins: recording a grant or a withdrawal from paper, biometric consent,
withdrawal links, and verifying withdrawal requests made through the public form.

Each route names the permission it needs (staff/roles.py: PERMISSIONS).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue

from gatekeeper.consent import forms as consent_forms
from gatekeeper.consent import records as consent
from gatekeeper.consent import withdrawals
from gatekeeper.errors import InvalidInputError
from gatekeeper.staff.roles import Permission
from gatekeeper.web.auth import actor, permission_required
from gatekeeper.web.common import form_errors, now, runtime, unit
from gatekeeper.web.forms import (
    ActionForm,
    BiometricForm,
    BulkConsentRequestForm,
    DecisionForm,
    GrantForm,
    StaffWithdrawForm,
    options,
)
from gatekeeper.web.people import person_page
from gatekeeper.web.wording import BIOMETRIC_WORDS

bp = Blueprint("consent", __name__)


@bp.post("/people/<external_id>/grant")
@permission_required(Permission.MANAGE_PEOPLE)
def grant(external_id: str) -> ResponseReturnValue:
    settings = runtime().settings
    form = GrantForm(prefix="grant")
    form.channel.choices = options(*((c, c) for c in settings.policy.channels))
    if not form.validate_on_submit():
        flash("The grant was not recorded: " + form_errors(form), "error")
        return person_page(external_id, status=400)
    try:
        with unit() as db:
            consent.grant_consent(
                db,
                external_id,
                form.channel.data or "",
                settings=settings,
                now=now(),
                actor=actor(),
                granted_by=form.granted_by.data or "",
                granted_by_name=(form.granted_by_name.data or "").strip() or None,
                valid_until=form.valid_until.data,
                named=form.named.data or "no",
                evidence_ref=form.evidence_ref.data,
                wording_version=form.wording_version.data,
            )
    except InvalidInputError as exc:
        flash(f"The grant was not recorded: {exc}", "error")
        return person_page(external_id, status=400)
    flash(f"Consent recorded for {form.channel.data}.", "info")
    return redirect(url_for("people.person", external_id=external_id))


@bp.post("/people/<external_id>/withdraw")
@permission_required(Permission.MANAGE_PEOPLE)
def withdraw(external_id: str) -> ResponseReturnValue:
    settings = runtime().settings
    form = StaffWithdrawForm(prefix="withdraw")
    form.channels.choices = options(*((c, c) for c in request.form.getlist("withdraw-channels")))
    if not form.validate_on_submit() or not form.channels.data:
        flash("Choose at least one channel to withdraw.", "error")
        return person_page(external_id, status=400)
    with unit() as db:
        added = withdrawals.withdraw(
            db, external_id, form.channels.data, settings=settings, now=now(), actor=actor(), how="staff"
        )
    flash(
        "Withdrawn: " + (", ".join(r.channel for r in added) or "nothing (already withdrawn)") + ".", "info"
    )
    return redirect(url_for("people.person", external_id=external_id))


@bp.post("/people/<external_id>/link")
@permission_required(Permission.MANAGE_PEOPLE)
def issue_link(external_id: str) -> ResponseReturnValue:
    if not ActionForm(prefix="link").validate_on_submit():
        abort(400)
    with unit() as db:
        url = withdrawals.issue_link(db, external_id, settings=runtime().settings, now=now(), actor=actor())
    return person_page(external_id, new_link=url)


# Plain English for why a face may not be matched (policy.biometric_reasons codes).


@bp.post("/people/<external_id>/biometric")
@permission_required(Permission.MANAGE_PEOPLE)
def biometric(external_id: str) -> ResponseReturnValue:
    form = BiometricForm(prefix="bio")
    if not form.validate_on_submit():
        flash("The biometric answer was not recorded: " + form_errors(form), "error")
        return person_page(external_id, status=400)
    answer, role = form.answer.data or "", form.role.data or ""
    try:
        with unit() as db:
            change = consent.record_biometric_answer(
                db,
                external_id,
                answer,
                given_by=None if answer in ("refuse", "withdraw") else role,
                name=((form.by.data or "").strip() or None) if answer in ("grant", "object") else None,
                settings=runtime().settings,
                now=now(),
                actor=actor(),
            )
    except InvalidInputError as exc:
        flash(f"The biometric answer was not recorded: {exc}", "error")
        return person_page(external_id, status=400)
    message = "Biometric answer recorded."
    if change.templates_deleted:
        message += f" {change.templates_deleted} face template(s) deleted."
    if change.blockers:
        message += (
            " Face matching is still not allowed: "
            + "; ".join(BIOMETRIC_WORDS.get(b, b) for b in change.blockers)
            + "."
        )
    flash(message, "info")
    return redirect(url_for("people.person", external_id=external_id))


# --- withdrawals without a link ----------------------------------------------------------------------


@bp.get("/withdrawals")
@permission_required(Permission.MANAGE_PEOPLE)
def requests_list() -> ResponseReturnValue:
    moment = now()
    with unit() as db:
        pending = withdrawals.pending_requests(db)
        matched = {r.reference: withdrawals.people_of(db, r) for r in pending}
        near = {r.reference: withdrawals.near_matches(db, r) for r in pending}
    waiting = {r.reference: withdrawals.waiting(r, moment) for r in pending}
    return render_template(
        "requests.html",
        pending=pending,
        matched=matched,
        near=near,
        waiting=waiting,
        act_within=withdrawals.ACT_WITHIN_HOURS,
    )


@bp.get("/withdrawals/<reference>")
@permission_required(Permission.MANAGE_PEOPLE)
def request_page(reference: str) -> ResponseReturnValue:
    with unit() as db:
        req = withdrawals.find_request(db, reference)
        matched = withdrawals.people_of(db, req)
        near = withdrawals.near_matches(db, req) if req.status == withdrawals.PENDING else []
    return render_template("request.html", req=req, matched=matched, near=near, form=DecisionForm())


@bp.post("/withdrawals/<reference>/<decision>")
@permission_required(Permission.MANAGE_PEOPLE)
def decide_request(reference: str, decision: str) -> ResponseReturnValue:
    form = DecisionForm()
    if decision not in ("confirm", "reject") or not form.validate_on_submit():
        abort(400)
    act = withdrawals.confirm_request if decision == "confirm" else withdrawals.reject_request
    try:
        with unit() as db:
            note = form.note.data or ""
            act(db, reference, settings=runtime().settings, now=now(), actor=actor(), note=note)
    except InvalidInputError as exc:
        flash(str(exc), "error")
        return redirect(url_for("consent.request_page", reference=reference))
    flash(
        f"Request {reference} "
        + (
            "confirmed: the withdrawal stands."
            if decision == "confirm"
            else "rejected: the suspension is lifted."
        ),
        "info",
    )
    return redirect(url_for("consent.requests_list"))


@bp.route("/consent/ask", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_PEOPLE)
def ask() -> ResponseReturnValue:
    """Email consent forms to a group: everyone due for renewal, or everyone with no answer yet."""
    settings = runtime().settings
    form = BulkConsentRequestForm()
    form.channels.choices = options(*((c, c.replace("_", " ")) for c in settings.policy.channels))
    if not form.is_submitted():
        form.channels.data = list(settings.policy.channels)
    report = None
    if form.validate_on_submit():
        if not form.channels.data:
            form.channels.errors = ["Choose at least one channel."]
        else:
            with unit() as db:
                report = consent_forms.request_consent(
                    db,
                    due=form.group.data == "due",
                    without_answer=form.group.data == "without_answer",
                    channels=list(form.channels.data),
                    settings=settings,
                    now=now(),
                    actor=actor(),
                )
    status = 400 if form.is_submitted() and report is None else 200
    return (
        render_template(
            "consent_ask.html",
            form=form,
            report=report,
            mail_configured=settings.mail.configured,
            reminder_days=settings.forms.reminder_days,
        ),
        status,
    )
