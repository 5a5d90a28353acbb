"""Every HTML form (Flask-WTF: each carries a CSRF token and is validated on the server)."""

from __future__ import annotations

from datetime import date

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


def date_from_parts(day: str | None, month: str | None, year: str | None) -> tuple[date | None, str | None]:
    """A date typed as day, month and year fields (`27`, `3`, `2014`), or the error to show."""
    parts = [(value or "").strip() for value in (day, month, year)]
    if not any(parts):
        return None, "Enter the date of birth."
    if not all(parts):
        missing = [name for name, value in zip(("day", "month", "year"), parts, strict=True) if not value]
        return None, f"The date of birth must include a {' and '.join(missing)}."
    if not all(value.isdigit() for value in parts) or len(parts[2]) != 4:
        return None, "Enter the date of birth as numbers, for example 27 3 2014."
    try:
        return date(int(parts[2]), int(parts[1]), int(parts[0])), None
    except ValueError:
        return None, "The date of birth must be a real date."


class DateOfBirthFields:
    """Day, month and year fields for a date of birth, as people write one (no date picker, whose
    format follows the browser's locale); `date_of_birth()` is the date, or None with the error set
    on `dob_day` (the first field, where the error summary links)."""

    dob_day: StringField
    dob_month: StringField
    dob_year: StringField

    def date_of_birth(self) -> date | None:
        value, error = date_from_parts(self.dob_day.data, self.dob_month.data, self.dob_year.data)
        if error is None and value is not None and value > date.today():
            error = "The date of birth must be in the past."
        if error is not None:
            self.dob_day.errors = [*self.dob_day.errors, error]
            return None
        return value


class NoLinkWithdrawForm(DateOfBirthFields, FlaskForm):
    name = StringField(
        "Learner's full name",
        validators=[DataRequired("Enter the learner's full name."), Length(max=200)],
    )
    dob_day = StringField("Day", validators=[Length(max=2)])
    dob_month = StringField("Month", validators=[Length(max=2)])
    dob_year = StringField("Year", validators=[Length(max=4)])
    relationship = RadioField(
        "You are the learner's",
        choices=options(
            ("parent", "Parent"),
            ("guardian", "Guardian"),
            ("self", "I am the learner"),
            ("other", "Other"),
        ),
        validators=[
            DataRequired("Choose who you are: the learner's parent, guardian, the learner or other.")
        ],
    )
    contact_email = EmailField(
        "Your email address (we use it only to confirm this request)",
        validators=[
            DataRequired("Enter your email address."),
            Email("Enter an email address like name@example.org.", check_deliverability=False),
            Length(max=254),
        ],
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


NAMING = options(("no", "No name"), ("first_name", "First name only"), ("yes", "Full name"))
YES_NO = options(("yes", "Yes"), ("no", "No"))


def consent_form_class(
    channels: list[tuple[str, str]], *, biometric: bool, for_self: bool, first_name: str
) -> type[FlaskForm]:
    """The online consent form for one link: per channel (value, label) a yes / no and, for a yes,
    how the learner may be named; the biometric question where this contact's answer counts; who
    is answering. Fields are `channel_<n>` and `named_<n>` in the channels' order."""
    whose = "you" if for_self else first_name
    fields: dict[str, object] = {}
    for index, (_, label) in enumerate(channels):
        fields[f"channel_{index}"] = RadioField(
            label, choices=YES_NO, validators=[DataRequired(f"Answer yes or no for: {label}.")]
        )
        fields[f"named_{index}"] = RadioField(
            "If yes, may we give your name with photos?"
            if for_self
            else f"If yes, may we give {whose}'s name with photos?",
            choices=NAMING,
            default="no",
            validators=[Optional()],
        )
    if biometric:
        fields["biometric"] = RadioField(
            "Face recognition",
            choices=YES_NO,
            validators=[DataRequired("Answer yes or no to face recognition.")],
        )
    fields["answered_by"] = StringField(
        "Your full name",
        validators=[Length(max=200)]
        + ([Optional()] if for_self else [DataRequired("Enter your full name.")]),
    )
    fields["wording_version"] = HiddenField()
    return type("ConsentForm", (FlaskForm,), fields)


class ContactForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter an email address."),
            Email("Enter an email address like name@example.org.", check_deliverability=False),
            Length(max=254),
        ],
    )
    role = SelectField(
        "Whose address",
        choices=options(
            ("parent", "A parent"), ("guardian", "A guardian or carer"), ("self", "The person's own")
        ),
    )
    relationship = StringField(
        "Relationship (mother, father, carer...; optional)", validators=[Optional(), Length(max=40)]
    )


class ContactRemoveForm(FlaskForm):
    email = HiddenField(validators=[DataRequired()])


class ConsentRequestForm(FlaskForm):
    channels = CheckboxList("Ask about", choices=[], validate_choice=True)


class BulkConsentRequestForm(FlaskForm):
    group = RadioField(
        "Who to ask",
        choices=options(
            ("due", "Everyone whose consent ends within the reminder period"),
            ("without_answer", "Everyone with no answer recorded for these channels"),
        ),
        validators=[DataRequired("Choose who to ask.")],
    )
    channels = CheckboxList("Ask about", choices=[], validate_choice=True)


class ScanForm(FlaskForm):
    source = StringField(
        "The website's address (http:// or https://)",
        validators=[Optional(), Length(max=2000)],
    )
    archive = FileField("Or a social media archive: the zip downloaded from Facebook, Instagram (JSON) or X")
    channel = SelectField("The channel it publishes on")
    max_pages = StringField("At most this many pages (empty: the setting)", validators=[Optional()])
    max_images = StringField("At most this many images (empty: the setting)", validators=[Optional()])
    watch = BooleanField("Scan it again on the schedule (GATEKEEPER_SCAN_SCHEDULE)")
