"""Every HTML form (Flask-WTF: each carries a CSRF token and is validated on the server)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from gatekeeper.staff.accounts import MIN_PASSWORD_LENGTH


def options(*pairs: tuple[str, str]) -> list[SelectChoice]:
    """Choices for a select, radio or checkbox list: (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=120)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class PasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField(
        f"New password (at least {MIN_PASSWORD_LENGTH} characters)",
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=200)],
    )
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new", message="The two new passwords differ.")],
    )


class CheckboxList(SelectMultipleField):
    """A list of checkboxes: usable with a keyboard and a screen reader, no script needed."""

    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class LinkWithdrawForm(FlaskForm):
    channels = CheckboxList("Stop using photos on", choices=[], validate_choice=True)
    everything = BooleanField("Withdraw from everything")


class NoLinkWithdrawForm(FlaskForm):
    name = StringField("Learner's full name", validators=[DataRequired(), Length(max=200)])
    date_of_birth = DateField("Learner's date of birth", validators=[DataRequired()])
    relationship = RadioField(
        "You are the learner's",
        choices=options(
            ("parent", "Parent"),
            ("guardian", "Guardian"),
            ("self", "I am the learner"),
            ("other", "Other"),
        ),
        validators=[DataRequired()],
    )
    contact_email = EmailField(
        "Your email address (we use it only to confirm this request)",
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )


class GrantForm(FlaskForm):
    channel = SelectField("Channel", choices=[])
    granted_by = SelectField(
        "Given by",
        choices=options(("parent", "Parent"), ("guardian", "Guardian"), ("self", "The person themselves")),
    )
    granted_by_name = StringField("Name of the parent or guardian", validators=[Optional(), Length(max=200)])
    valid_until = DateField("Valid until (last day, optional)", validators=[Optional()])
    named = SelectField(
        "May be named in captions",
        choices=options(("no", "No"), ("first_name", "First name only"), ("yes", "Full name")),
    )
    evidence_ref = StringField(
        "Evidence reference (where the signed form or email is kept)",
        validators=[Optional(), Length(max=200)],
    )
    wording_version = StringField("Consent wording version", validators=[Optional(), Length(max=80)])


class StaffWithdrawForm(FlaskForm):
    channels = CheckboxList("Withdraw from", choices=[])


class SafeguardingForm(FlaskForm):
    flag = HiddenField()
    reason = StringField("Reason (recorded in the audit log)", validators=[DataRequired(), Length(max=500)])


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


class DecisionForm(FlaskForm):
    note = TextAreaField("Note (how you checked)", validators=[Optional(), Length(max=2000)])


class ImportForm(FlaskForm):
    file = FileField("People CSV, or a zip of the CSV and its enrolment photos", validators=[FileRequired()])


class ConfirmImportForm(FlaskForm):
    upload = HiddenField(validators=[DataRequired(), Length(max=80)])


class PersonForm(FlaskForm):
    """Add a person (with their MIS id) or correct one (the MIS id never changes)."""

    external_id = StringField("MIS id", validators=[DataRequired(), Length(max=120)])
    name = StringField("Full name", validators=[DataRequired(), Length(max=200)])
    date_of_birth = DateField("Date of birth", validators=[Optional()])
    left_on = DateField("Last day at the organisation (optional)", validators=[Optional()])


class EnrolForm(FlaskForm):
    photo = FileField("Enrolment photo (one face, looking at the camera)", validators=[FileRequired()])


class BiometricForm(FlaskForm):
    answer = SelectField(
        "Answer",
        choices=options(
            ("grant", "Consent given"),
            ("object", "A parent or guardian objects"),
            ("refuse", "The person refuses"),
            ("withdraw", "Consent withdrawn"),
        ),
    )
    role = SelectField(
        "Given by",
        choices=options(("parent", "Parent"), ("guardian", "Guardian"), ("self", "The person themselves")),
    )
    by = StringField("Name of the parent or guardian", validators=[Optional(), Length(max=200)])


class ResolveForm(FlaskForm):
    """A reviewer's identification of one face."""

    decision = HiddenField(validators=[DataRequired(), Length(max=20)])
    resolution = RadioField(
        "Who is this?",
        choices=options(
            ("person", "This is the person chosen below"),
            ("stranger", "Someone else, or I do not know who"),
            ("not_a_face", "Not a face"),
        ),
        validators=[DataRequired(message="Choose one answer.")],
    )
    person = RadioField("Person", choices=[], validate_choice=False)
    reason = TextAreaField(
        "Reason (how you know; kept in the audit log)",
        validators=[DataRequired(message="Give the reason."), Length(max=1000)],
    )
    learn = BooleanField("Use this face as a template for the person when their biometric consent allows it")


class TakedownDoneForm(FlaskForm):
    note = TextAreaField(
        "What was done (kept in the audit log)",
        validators=[DataRequired(message="Say what was done."), Length(max=2000)],
    )


class ScanForm(FlaskForm):
    source = StringField(
        "The website's address (http:// or https://)",
        validators=[DataRequired(message="Give the website's address."), Length(max=2000)],
    )
    channel = SelectField("The channel it publishes on")
    max_pages = StringField("At most this many pages (empty: the setting)", validators=[Optional()])
    max_images = StringField("At most this many images (empty: the setting)", validators=[Optional()])
    watch = BooleanField("Scan it again on the schedule (GATEKEEPER_SCAN_SCHEDULE)")
