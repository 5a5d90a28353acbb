"""The public withdrawal form: no sign-in, built for a parent on a phone.

It never grants or widens anything, answers the same whether or not anyone matched, is rate
limited per client (the app factory attaches the limits) and CSRF protected, and ends on a receipt.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from gatekeeper.errors import InvalidInputError
from gatekeeper.services import withdrawals
from gatekeeper.web.common import now, runtime, unit
from gatekeeper.web.forms import LinkWithdrawForm, NoLinkWithdrawForm, options

bp = Blueprint("public", __name__)
LABELS = {
    "website": "The school website",
    "social_media": "Social media",
    "print": "Printed material (prospectus, newsletters)",
    "press": "Newspapers and other press",
    "internal": "Inside the school (displays, internal newsletters)",
}


def label(channel: str) -> str:
    """A channel as a parent reads it."""
    head, _, sub = channel.partition(":")
    base = LABELS.get(head, head.replace("_", " ").capitalize())
    return f"{base}: {sub.replace('_', ' ')}" if sub else base


@bp.route("/withdraw", methods=["GET", "POST"])
def withdraw_form() -> ResponseReturnValue:
    form = NoLinkWithdrawForm()
    if form.validate_on_submit():
        assert form.date_of_birth.data is not None
        with unit() as db:
            request = withdrawals.request_withdrawal(
                db,
                name=form.name.data or "",
                date_of_birth=form.date_of_birth.data,
                relationship=form.relationship.data or "other",
                contact_email=form.contact_email.data or "",
                settings=runtime().settings,
                now=now(),
            )
            reference = request.reference
        return redirect(url_for("public.receipt", reference=reference, kind="suspended"))
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
                    request = withdrawals.withdraw_with_link(db, token, chosen, settings=settings, now=now())
                    reference = request.reference
            except InvalidInputError:
                abort(400)
            return redirect(url_for("public.receipt", reference=reference, kind="withdrawn"))
    status = 400 if form.is_submitted() else 200
    return render_template("withdraw_link.html", form=form, view=view, label=label), status


@bp.get("/withdraw/receipt/<kind>/<reference>")
def receipt(kind: str, reference: str) -> ResponseReturnValue:
    # The receipt shows only what the visitor already holds: the reference in its own address.
    if kind not in ("withdrawn", "suspended") or not reference.startswith("WD-") or len(reference) > 20:
        abort(404)
    return render_template("receipt.html", reference=reference, kind=kind)


@bp.get("/privacy")
def privacy() -> ResponseReturnValue:
    return render_template("privacy.html", request_days=runtime().settings.retention_request_days)
