"""People pages for consent admins: the list, a person's record, adding and correcting, safeguarding,
enrolment, their photos and subject access export, and importing the MIS roll.

Each route names the permission it needs (staff/roles.py: PERMISSIONS). The safeguarding flag
appears only on consent admins' pages.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import cast

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from gatekeeper import policy
from gatekeeper.consent import forms as consent_forms
from gatekeeper.consent import mis_upload as people_admin
from gatekeeper.consent import summary as person_summary
from gatekeeper.consent import withdrawals
from gatekeeper.consent.mis_import import ImportReport
from gatekeeper.consent.state import matching_reasons, policy_for
from gatekeeper.errors import DpiaRequiredError, GatekeeperError, InvalidInputError
from gatekeeper.people import contacts, enrolment, search
from gatekeeper.people import edit as people_edit
from gatekeeper.people import lookup as people
from gatekeeper.policy import PersonStatus
from gatekeeper.retention import subject_access
from gatekeeper.staff.roles import Permission
from gatekeeper.storage.base import make_private_dirs, write_atomic
from gatekeeper.web.auth import Principal, actor, permission_required
from gatekeeper.web.common import PAGE, form_errors, now, page_number, runtime, unit
from gatekeeper.web.forms import (
    ActionForm,
    BiometricForm,
    ConfirmImportForm,
    ConsentRequestForm,
    ContactForm,
    ContactRemoveForm,
    EnrolForm,
    GrantForm,
    ImportForm,
    PersonForm,
    SafeguardingForm,
    StaffWithdrawForm,
    options,
)
from gatekeeper.web.wording import BIOMETRIC_WORDS

bp = Blueprint("people", __name__)
PREVIEW_HOURS = 24
_UPLOAD_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,40}$")


# --- people and consent ------------------------------------------------------------------------------


@bp.get("/people")
@permission_required(Permission.MANAGE_PEOPLE)
def people_list() -> ResponseReturnValue:
    query = request.args.get("q", "")[:200]
    page = page_number()
    with unit() as db:
        found = search.search_people(db, query, limit=PAGE + 1, offset=(page - 1) * PAGE)
    return render_template("people.html", people=found[:PAGE], query=query, page=page, more=len(found) > PAGE)


def person_page(
    external_id: str,
    *,
    new_link: str | None = None,
    status: int = 200,
    contact_form: ContactForm | None = None,
) -> ResponseReturnValue:
    settings = runtime().settings
    with unit() as db:
        summary = person_summary.summarise_person(db, external_id, settings=settings, now=now())
        person = people.find_person(db, external_id)
        safeguarding = person.safeguarding
        notes = people.safeguarding_notes(db, person)
        consented = withdrawals.consented_channels(db, person, settings=settings, now=now())
        answers_for = policy.answers_for(person.date_of_birth, now().date(), policy_for(settings.policy))
        contact_rows = [(c.email, c.role, c.relationship_to_person) for c in contacts.contacts_of(db, person)]
    grant = GrantForm(prefix="grant")
    grant.channel.choices = options(*((c, c) for c in settings.policy.channels))
    withdraw = StaffWithdrawForm(prefix="withdraw")
    withdraw.channels.choices = options(*((c, c) for c in consented))
    return (
        render_template(
            "person.html",
            summary=summary,
            safeguarding=safeguarding,
            safeguarding_notes=notes,
            grant=grant,
            withdraw=withdraw,
            flag_form=SafeguardingForm(prefix="flag"),
            action=ActionForm(prefix="link"),
            new_link=new_link,
            enrol_form=EnrolForm(prefix="enrol"),
            biometric_form=BiometricForm(prefix="bio"),
            contacts=contact_rows,
            answers_for=answers_for,
            contact_form=contact_form or ContactForm(prefix="contact"),
            remove_form=ContactRemoveForm(prefix="remove"),
            request_form=_request_form(settings.policy.channels),
        ),
        status,
    )


def _request_form(channels: tuple[str, ...]) -> ConsentRequestForm:
    form = ConsentRequestForm(prefix="ask")
    form.channels.choices = options(*((c, c.replace("_", " ")) for c in channels))
    if not form.is_submitted():
        form.channels.data = list(channels)
    return form


@bp.post("/people/<external_id>/contacts")
@permission_required(Permission.MANAGE_PEOPLE)
def contact_add(external_id: str) -> ResponseReturnValue:
    form = ContactForm(prefix="contact")
    if not form.validate_on_submit():
        flash("The contact was not added: " + form_errors(form), "error")
        return person_page(external_id, status=400, contact_form=form)
    given = contacts.Contact(
        form.email.data or "", form.role.data or "", (form.relationship.data or "").strip() or None
    )
    try:
        with unit() as db:
            person = people.find_person(db, external_id)
            added = contacts.add_contact(db, person, given, now=now(), actor=actor())
    except InvalidInputError as exc:
        form.email.errors = [str(exc)]
        flash("The contact was not added: " + str(exc), "error")
        return person_page(external_id, status=400, contact_form=form)
    flash("Contact added." if added is not None else "That address is already a contact.", "info")
    return redirect(url_for("people.person", external_id=external_id) + "#contacts-h")


@bp.post("/people/<external_id>/contacts/remove")
@permission_required(Permission.MANAGE_PEOPLE)
def contact_remove(external_id: str) -> ResponseReturnValue:
    form = ContactRemoveForm(prefix="remove")
    if not form.validate_on_submit():
        abort(400)
    try:
        with unit() as db:
            person = people.find_person(db, external_id)
            found = contacts.find_contact(db, person, form.email.data or "")
            contacts.remove_contact(db, person, found, now=now(), actor=actor())
    except InvalidInputError as exc:
        flash(str(exc), "error")
        return person_page(external_id, status=400)
    flash("Contact removed: consent links sent to it no longer open.", "info")
    return redirect(url_for("people.person", external_id=external_id) + "#contacts-h")


@bp.post("/people/<external_id>/consent-request")
@permission_required(Permission.MANAGE_PEOPLE)
def consent_request(external_id: str) -> ResponseReturnValue:
    settings = runtime().settings
    form = _request_form(settings.policy.channels)
    if not form.validate_on_submit() or not form.channels.data:
        flash("No consent form was sent: choose at least one channel.", "error")
        return person_page(external_id, status=400)
    try:
        with unit() as db:
            person = people.find_person(db, external_id)
            links = consent_forms.send_request(
                db, person, list(form.channels.data), settings=settings, now=now(), actor=actor()
            )
    except InvalidInputError as exc:
        flash(f"No consent form was sent: {exc}.", "error")
        return person_page(external_id, status=400)
    sent = "1 consent form" if len(links) == 1 else f"{len(links)} consent forms"
    flash(f"{sent} sent by email.", "info")
    return redirect(url_for("people.person", external_id=external_id) + "#contacts-h")


@bp.get("/people/<external_id>")
@permission_required(Permission.MANAGE_PEOPLE)
def person(external_id: str) -> ResponseReturnValue:
    return person_page(external_id)


@bp.post("/people/<external_id>/safeguarding")
@permission_required(Permission.MANAGE_PEOPLE)
def safeguarding(external_id: str) -> ResponseReturnValue:
    form = SafeguardingForm(prefix="flag")
    if form.flag.data not in ("on", "off"):
        abort(400)
    if not form.validate_on_submit():
        flash("The flag was not changed: give the reason.", "error")
        return person_page(external_id, status=400)
    with unit() as db:
        people.set_safeguarding(
            db, external_id, form.flag.data == "on", reason=form.reason.data or "", now=now(), actor=actor()
        )
    flash("Safeguarding flag " + ("set: never published." if form.flag.data == "on" else "cleared."), "info")
    return redirect(url_for("people.person", external_id=external_id))


@bp.route("/people/new", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_PEOPLE)
def person_new() -> ResponseReturnValue:
    form = PersonForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("person_edit.html", form=form, creating=True), status
    external_id = (form.external_id.data or "").strip()
    try:
        with unit() as db:
            added = people_edit.add_person(
                db,
                external_id,
                form.name.data or "",
                date_of_birth=form.date_of_birth.data,
                now=now(),
                actor=actor(),
            )
    except InvalidInputError as exc:
        getattr(form, exc.field or "name", form.name).errors = [str(exc)]
        return render_template("person_edit.html", form=form, creating=True), 400
    flash(f"{added.display_name} ({external_id}) added. No consent is recorded yet.", "info")
    return redirect(url_for("people.person", external_id=external_id))


@bp.route("/people/<external_id>/edit", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_PEOPLE)
def person_edit(external_id: str) -> ResponseReturnValue:
    with unit() as db:
        person = people.find_person(db, external_id)
        current = {
            "external_id": person.external_id,
            "name": person.display_name,
            "date_of_birth": person.date_of_birth,
            "left_on": person.left_on,
        }
    form = PersonForm(data=current) if request.method == "GET" else PersonForm()
    # The MIS id is shown, never taken from the form.
    form.external_id.data = external_id
    if request.method == "GET" or not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        return render_template("person_edit.html", form=form, creating=False), status
    try:
        with unit() as db:
            changed = people_edit.update_person(
                db,
                external_id,
                name=form.name.data or "",
                date_of_birth=form.date_of_birth.data,
                left_on=form.left_on.data,
                now=now(),
                actor=actor(),
            )
    except InvalidInputError as exc:
        getattr(form, exc.field or "name", form.name).errors = [str(exc)]
        return render_template("person_edit.html", form=form, creating=False), 400
    words = {"display_name": "name", "date_of_birth": "date of birth", "left_on": "last day"}
    flash(
        ("Changed: " + ", ".join(words[c] for c in changed) + ".") if changed else "Nothing was changed.",
        "info",
    )
    return redirect(url_for("people.person", external_id=external_id))


@bp.post("/people/<external_id>/enrol")
@permission_required(Permission.MANAGE_PEOPLE)
def enrol(external_id: str) -> ResponseReturnValue:
    form = EnrolForm(prefix="enrol")
    if not form.validate_on_submit():
        flash("Choose a photo to enrol.", "error")
        return person_page(external_id, status=400)
    rt = runtime()
    data = form.photo.data.read()
    try:
        with unit() as db:
            person = people.find_person(db, external_id)
            blockers = matching_reasons(person, rt.settings.policy, now())
            if person.status == PersonStatus.ERASED or blockers:
                why = "; ".join(BIOMETRIC_WORDS.get(b, b) for b in blockers) or "the person was erased"
                raise InvalidInputError(f"No photo was enrolled: {why}.")
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "enrolment"
                path.write_bytes(data)
                added = enrolment.enrol(
                    db, person, [path], engine=rt.faces, settings=rt.settings, now=now(), actor=actor()
                )
    except DpiaRequiredError as exc:
        flash(f"No photo was enrolled: {exc}", "error")
        return person_page(external_id, status=409)
    except InvalidInputError as exc:
        message = str(exc)
        flash(message if message.startswith("No photo") else f"No photo was enrolled: {message}", "error")
        return person_page(external_id, status=400)
    flash("Enrolled: a face template was made." if added else "That photo was already enrolled.", "info")
    return redirect(url_for("people.person", external_id=external_id))


@bp.get("/people/<external_id>/photos")
@permission_required(Permission.MANAGE_PEOPLE)
def person_photos(external_id: str) -> ResponseReturnValue:
    with unit() as db:
        person, items = subject_access.photos_of(db, external_id)
        possible = subject_access.possible_matches(db, external_id)
    return render_template(
        "person_photos.html",
        person=person,
        items=items,
        possible=possible,
        export=ActionForm(prefix="export"),
    )


@bp.post("/people/<external_id>/export")
@permission_required(Permission.MANAGE_PEOPLE)
def person_export(external_id: str) -> ResponseReturnValue:
    if not ActionForm(prefix="export").validate_on_submit():
        abort(400)
    rt = runtime()
    with unit() as db:
        data = subject_access.export_person(
            db,
            external_id,
            originals=rt.originals,
            settings=rt.settings,
            engine=rt.faces,
            now=now(),
            actor=actor(),
        )
    name = re.sub(r"[^A-Za-z0-9_-]", "_", external_id)
    return Response(
        data,
        mimetype="application/zip",
        headers={"Content-Disposition": f"attachment; filename=subject-access-{name}.zip"},
    )


def _uploads() -> Path:
    folder = runtime().settings.instance_path / "uploads" / "imports"
    make_private_dirs(folder)
    return folder


def _forget_stale_previews(folder: Path) -> None:
    # A preview never confirmed is not kept: its file (people's data) goes after PREVIEW_HOURS.
    limit = time.time() - PREVIEW_HOURS * 3600
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < limit:
                path.unlink()


def _import(data: bytes, *, dry_run: bool, source: str) -> ImportReport:
    rt = runtime()
    with unit() as db:
        return people_admin.import_upload(
            db,
            data,
            engine=lambda: rt.faces,
            settings=rt.settings,
            now=now(),
            actor=actor(),
            source=source,
            dry_run=dry_run,
        )


@bp.route("/people/import", methods=["GET", "POST"])
@permission_required(Permission.MANAGE_PEOPLE)
def people_import() -> ResponseReturnValue:
    form = ImportForm()
    if not form.validate_on_submit():
        return render_template("import.html", form=form, report=None, confirm=None)
    data = form.file.data.read()
    try:
        report = _import(data, dry_run=True, source="web-preview")
    except GatekeeperError as exc:
        flash(f"The file cannot be imported: {exc}", "error")
        return render_template("import.html", form=form, report=None, confirm=None), 400
    me = cast(Principal, current_user)
    key = f"{me.user_id}-{secrets.token_urlsafe(16)}"
    folder = _uploads()
    _forget_stale_previews(folder)
    write_atomic(folder / key, data, private=True)
    confirm = ConfirmImportForm(upload=key)
    return render_template("import.html", form=ImportForm(formdata=None), report=report, confirm=confirm)


@bp.post("/people/import/confirm")
@permission_required(Permission.MANAGE_PEOPLE)
def people_import_confirm() -> ResponseReturnValue:
    form = ConfirmImportForm()
    me = cast(Principal, current_user)
    key = form.upload.data or ""
    owner, _, token = key.partition("-")
    if not form.validate_on_submit() or owner != str(me.user_id) or not _UPLOAD_TOKEN.match(token):
        abort(400)
    path = _uploads() / key
    if not path.is_file():
        flash("That preview has already been imported or has expired; upload the file again.", "error")
        return redirect(url_for("people.people_import"))
    try:
        report = _import(path.read_bytes(), dry_run=False, source="web-import")
    finally:
        path.unlink(missing_ok=True)
    return render_template(
        "import.html", form=ImportForm(formdata=None), report=report, confirm=None, done=True
    )
