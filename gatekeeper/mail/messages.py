"""What messages say: their subjects, and their plain text and HTML bodies from templates.

The bodies are Jinja templates in `gatekeeper/mail/templates/` (`<kind>.txt` and `<kind>.html`,
the HTML autoescaped), each ending with the organisation's footer: its name, postal address and
privacy contact from `MailSettings`. A template is given only what its message may say: a
reference, a decision, a first name at most; never a full name, and a subject never names anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy.orm import Session

from consent_db.models import OutboxMessage
from gatekeeper.config import MailSettings
from gatekeeper.mail import outbox
from gatekeeper.policy import Channel

_ENVIRONMENT = Environment(
    loader=PackageLoader("gatekeeper.mail", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)

# Each kind of message's subject: fixed words, so a subject can never carry a name.
SUBJECTS = {
    "withdrawal_receipt": "We have received your request to stop using photos",
    "withdrawal_decision": "Your request to stop using photos: our decision",
    "withdrawal_link_receipt": "Photos: consent withdrawn",
    "consent_request": "Photos at school: please give or refuse consent",
    "consent_reminder": "Photos at school: consent needs renewing",
    "consent_answer_receipt": "Photos at school: we have recorded your answer",
    # To staff (gatekeeper.staff.alerts): what waits for them.
    "staff_withdrawal_waiting": "A request to stop using photos is waiting to be checked",
    "staff_takedowns": "Photos to take down from places outside the gatekeeper",
    "placement_takedown": "A photo you placed must be taken down",
    "staff_purge_failures": "The purge could not delete everything that was due",
    "staff_digest": "Still waiting after a day: requests and takedowns",
    "staff_nobody_to_ask": "Consent is ending for learners we have no address to ask",
}


# What each known channel covers, as a parent reads it (messages and the public pages).
CHANNEL_LABELS = {
    "website": "The school website",
    "social_media": "Social media",
    "print": "Printed material (prospectus, newsletters)",
    "press": "Newspapers and other press",
    "internal": "Inside the school (displays, internal newsletters)",
}


def channel_label(channel: str) -> str:
    """A channel as a parent reads it: `Social media: instagram`, a sub-channel after a colon."""
    named = Channel(channel)
    base = CHANNEL_LABELS.get(named.base, named.base.replace("_", " ").capitalize())
    return f"{base}: {named.sub.replace('_', ' ')}" if named.sub else base


@dataclass(frozen=True)
class Rendered:
    """A message ready for `outbox.queue_message`: its subject, text and HTML."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Organisation:
    """Who a message is from, as its footer and the public pages show it."""

    name: str
    address_lines: tuple[str, ...]
    privacy_contact: str

    @property
    def privacy_href(self) -> str:
        """A link to the privacy contact: a web page as given, an email address as `mailto:`."""
        contact = self.privacy_contact
        if contact.startswith(("https://", "http://")):
            return contact
        if "@" in contact and " " not in contact:
            return f"mailto:{contact}"
        return ""


def organisation(settings: MailSettings) -> Organisation:
    """The organisation's details from the mail settings (its address on lines, split at commas
    or line breaks)."""
    raw = settings.org_address.replace("\r", "\n").replace(",", "\n")
    lines = tuple(line.strip() for line in raw.split("\n") if line.strip())
    return Organisation(settings.org_name.strip(), lines, settings.privacy_contact.strip())


def render(kind: str, settings: MailSettings, **context: Any) -> Rendered:
    """The message of `kind` (a key of SUBJECTS) with `context`, and the organisation's footer."""
    values = {**context, "subject": SUBJECTS[kind], "org": organisation(settings)}
    text = _ENVIRONMENT.get_template(f"{kind}.txt").render(values)
    html = _ENVIRONMENT.get_template(f"{kind}.html").render(values)
    return Rendered(SUBJECTS[kind], text, html)


def queue(
    session: Session,
    kind: str,
    *,
    to: Sequence[str],
    about: str | None,
    settings: MailSettings,
    now: datetime,
    actor: str,
    **context: Any,
) -> OutboxMessage:
    """Render the message of `kind` with `context` and write it to the outbox for `to`, in the
    caller's unit of work (`outbox.queue_message`: sent by a job after the commit)."""
    rendered = render(kind, settings, **context)
    return outbox.queue_message(
        session,
        to=to,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        kind=kind,
        about=about,
        settings=settings,
        now=now,
        actor=actor,
    )
