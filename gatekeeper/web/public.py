"""The public withdrawal form: no sign-in, built for a parent on a phone.

It never grants or widens anything, answers the same whether or not anyone matched (a request
without a link is matched by a background job), is rate limited per client (the app factory
attaches the limits) and CSRF protected, and ends on a receipt. The receipt is shown only to the
browser that made the request, for RECEIPT_MINUTES, by a signed cookie; anyone else opening its
address gets a neutral page, so a made-up reference proves nothing.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from gatekeeper.consent import forms, withdrawals
from gatekeeper.errors import InvalidInputError
from gatekeeper.mail import messages
from gatekeeper.web.common import now, runtime, unit
from gatekeeper.web.forms import LinkWithdrawForm, NoLinkWithdrawForm, consent_form_class, options

bp = Blueprint("public", __name__)


RECEIPT_COOKIE = "gatekeeper_receipt"
RECEIPT_PATH = "/withdraw/receipt/"
RECEIPT_MINUTES = 30


def _receipts() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="gatekeeper.withdrawal-receipt")


def _to_receipt(kind: str, reference: str) -> Response:
    """Redirect to the receipt, giving this browser (and only it) the signed right to see it."""
    response = redirect(url_for("public.receipt", reference=reference, kind=kind))
    response.set_cookie(
        RECEIPT_COOKIE,
        _receipts().dumps([kind, reference]),
        max_age=RECEIPT_MINUTES * 60,
        path=RECEIPT_PATH,
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )
    return response


def _holds_receipt(kind: str, reference: str) -> bool:
    token = request.cookies.get(RECEIPT_COOKIE, "")
    try:
        held = _receipts().loads(token, max_age=RECEIPT_MINUTES * 60)
    except BadSignature:  # also an expired one (SignatureExpired)
        return False
    return bool(held == [kind, reference])


def label(channel: str) -> str:
    """A channel as a parent reads it (`messages.channel_label`): the staff pages' words
    (`wording.channel_words`) are for people who know the channel list."""
    return messages.channel_label(channel)


@bp.route("/withdraw", methods=["GET", "POST"])
def withdraw_form() -> ResponseReturnValue:
    form = NoLinkWithdrawForm()
    valid = form.validate_on_submit()
    date_of_birth = form.date_of_birth() if form.is_submitted() else None
    if valid and date_of_birth is not None:
        # Only recorded here; the job that matches it runs after the commit, so this answer's
        # content and timing are the same whether or not the learner is on record.
        # The receipt to the email typed is queued in the same unit of work, and reads the same too.
        try:
            with unit() as db:
                received = withdrawals.request_withdrawal(
                    db,
                    name=form.name.data or "",
                    date_of_birth=date_of_birth,
                    relationship=form.relationship.data or "other",
                    contact_email=form.contact_email.data or "",
                    settings=runtime().settings,
                    now=now(),
                )
                reference = received.reference
        except InvalidInputError as exc:
            # Only what was typed is checked here (an address a receipt cannot be sent to), never a record.
            field = getattr(form, exc.field or "", None) or form.contact_email
            field.errors = [*field.errors, str(exc)[:1].upper() + str(exc)[1:] + "."]
        else:
            return _to_receipt("suspended", reference)
    status = 400 if form.is_submitted() else 200
    return render_template("withdraw.html", form=form), status


@bp.route("/withdraw/<token>", methods=["GET", "POST"])
def withdraw_link(token: str) -> ResponseReturnValue:
    settings = runtime().settings
    with unit() as db:
        view = withdrawals.view_link(db, token, settings=settings, now=now())
    if view is None:
        return render_template("withdraw_bad_link.html"), 404
    form = LinkWithdrawForm()
    form.channels.choices = options(*((c, label(c)) for c in view.channels))
    if form.validate_on_submit():
        chosen = [] if form.everything.data else list(form.channels.data or [])
        if not chosen and not form.everything.data:
            form.channels.errors = ["Choose at least one, or tick “Withdraw from everything”."]
        else:
            try:
                with unit() as db:
                    done = withdrawals.withdraw_with_link(db, token, chosen, settings=settings, now=now())
                    reference = done.reference
            except InvalidInputError:
                abort(400)
            return _to_receipt("withdrawn", reference)
    status = 400 if form.is_submitted() else 200
    return render_template("withdraw_link.html", form=form, view=view, label=label), status


@bp.route("/consent/<token>", methods=["GET", "POST"])
def consent_form(token: str) -> ResponseReturnValue:
    """The online consent form behind a personal link: one yes / no per channel, "no to
    everything" as one button, and after an answer the same form showing what is recorded."""
    settings = runtime().settings
    try:
        with unit() as db:
            view = forms.open_form(db, token, settings=settings, now=now())
    except forms.LinkProblem as exc:
        return render_template(
            "consent_bad_link.html", why=exc.why
        ), 404 if exc.why == forms.NOT_FOUND else 410
    labels = [(c.channel, label(c.channel)) for c in view.channels]
    form_class = consent_form_class(
        labels, biometric=view.biometric, for_self=view.role == "self", first_name=view.first_name
    )
    current: dict[str, object] = {"wording_version": view.wording.version}
    for index, answer in enumerate(view.channels):
        if answer.granted is not None:
            current[f"channel_{index}"] = "yes" if answer.granted else "no"
        current[f"named_{index}"] = answer.named
    # The answers on record are shown only when the form opens: what is sent is what is recorded.
    form = form_class(data=current) if request.method == "GET" else form_class()
    notice = None
    all_no = request.method == "POST" and "all_no" in request.form
    if form.is_submitted():
        if all_no:
            # "No to everything" needs nothing but who is answering.
            for index in range(len(labels)):
                form[f"channel_{index}"].data = "no"
            if view.biometric:
                form["biometric"].data = "no"
        valid = _only_name_valid(form) if all_no else form.validate_on_submit()
        if valid:
            answers = {
                channel: forms.Answer(
                    form[f"channel_{index}"].data == "yes", form[f"named_{index}"].data or "no"
                )
                for index, (channel, _) in enumerate(labels)
            }
            try:
                with unit() as db:
                    forms.answer_form(
                        db,
                        token,
                        answers,
                        biometric=(form["biometric"].data == "yes") if view.biometric else None,
                        answered_by=form["answered_by"].data or "",
                        wording_version=form["wording_version"].data or "",
                        settings=settings,
                        now=now(),
                    )
            except forms.LinkProblem as exc:
                return render_template("consent_bad_link.html", why=exc.why), 410
            except InvalidInputError as exc:
                if exc.field == "wording":
                    form["wording_version"].data = view.wording.version
                    notice = (
                        "The wording below has changed since you opened the form. "
                        "Read it again and send your answer."
                    )
                else:
                    target = form._fields.get(exc.field or "") or form["answered_by"]
                    target.errors = [*target.errors, str(exc)[:1].upper() + str(exc)[1:] + "."]
            else:
                return redirect(url_for("public.consent_form", token=token, saved=1))
    status = 400 if form.is_submitted() else 200
    saved = request.args.get("saved") == "1" and view.answered_at is not None
    return (
        render_template(
            "consent_form.html",
            form=form,
            view=view,
            labels=labels,
            notice=notice,
            saved=saved,
            count=len(labels),
        ),
        status,
    )


def _only_name_valid(form: FlaskForm) -> bool:
    """For "no to everything": the CSRF token and who is answering are all that is checked."""
    ok = form["csrf_token"].validate(form) if "csrf_token" in form else True
    return bool(form["answered_by"].validate(form) and ok)


@bp.get("/withdraw/receipt/<kind>/<reference>")
def receipt(kind: str, reference: str) -> ResponseReturnValue:
    if kind not in ("withdrawn", "suspended") or not reference.startswith("WD-") or len(reference) > 20:
        abort(404)
    if not _holds_receipt(kind, reference):
        # Whether the reference exists or not: a receipt is proof only in the browser that asked.
        return render_template("receipt_elsewhere.html", minutes=RECEIPT_MINUTES)
    return render_template("receipt.html", reference=reference, kind=kind)


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    return render_template("privacy.html", request_days=runtime().settings.retention.request_days)
