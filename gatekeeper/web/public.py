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
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from gatekeeper.consent import withdrawals
from gatekeeper.errors import InvalidInputError
from gatekeeper.policy import Channel
from gatekeeper.web.common import now, runtime, unit
from gatekeeper.web.forms import LinkWithdrawForm, NoLinkWithdrawForm, options
from gatekeeper.web.wording import spoken

bp = Blueprint("public", __name__)
LABELS = {
    "website": "The school website",
    "social_media": "Social media",
    "print": "Printed material (prospectus, newsletters)",
    "press": "Newspapers and other press",
    "internal": "Inside the school (displays, internal newsletters)",
}


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
    """A channel as a parent reads it: `Social media: instagram`.

    The staff pages' words (`wording.channel_words`) are for people who know the channel list; a
    parent is told what each known channel covers (LABELS), as a phrase with a capital, and a
    sub-channel's name after a colon.
    """
    named = Channel(channel)
    base = LABELS.get(named.base, spoken(named.base).capitalize())
    return f"{base}: {spoken(named.sub)}" if named.sub else base


@bp.route("/withdraw", methods=["GET", "POST"])
def withdraw_form() -> ResponseReturnValue:
    form = NoLinkWithdrawForm()
    if form.validate_on_submit():
        assert form.date_of_birth.data is not None
        # Only recorded here; the job that matches it runs after the commit, so this answer's
        # content and timing are the same whether or not the learner is on record.
        # The receipt to the email typed is queued in the same unit of work, and reads the same too.
        try:
            with unit() as db:
                received = withdrawals.request_withdrawal(
                    db,
                    name=form.name.data or "",
                    date_of_birth=form.date_of_birth.data,
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
