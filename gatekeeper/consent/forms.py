"""The online consent form: personal links sent by email, the answers they record, and reminders.

A link is for one person and one contact: a 256-bit token of which only the sha256 is kept, that
expires after `FormSettings.link_days`. Who is asked follows the consent rules (`policy.answers_for`):
a learner's parents or guardians below the age threshold, the learner from it; a link whose
contact may no longer answer (the learner came of age, the contact was removed) stops opening.

An answer records one consent record per channel (a grant for yes, a withdrawal for no) with how
`online_form`, the link and the moment as evidence and the wording's version, and, where the
rules let this contact's answer count, the biometric answer. It changes only the link's person,
and a second answer is recorded beside the first, never over it. Every message carries the
person's own withdrawal link, so withdrawing is as easy as granting.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentLink, ConsentRecord, ConsentReminder, Person, PersonContact
from gatekeeper import policy
from gatekeeper.config import FormSettings, Settings
from gatekeeper.consent import due as renewal_dates
from gatekeeper.consent import records as consent
from gatekeeper.consent.state import check_channel, latest, person_state, policy_for
from gatekeeper.consent.withdrawals import issue_link
from gatekeeper.errors import ConfigError, InvalidInputError
from gatekeeper.mail import messages
from gatekeeper.people.contacts import SELF, contacts_of
from gatekeeper.people.lookup import find_person, first_name, subject
from gatekeeper.policy import PersonStatus
from gatekeeper.staff import alerts
from gatekeeper.staff.accounts import token_hash

ONLINE_FORM = "online_form"
REQUEST, REMINDER = "request", "reminder"
# The deadline of a parent's consent lapsing when the learner comes of age (`ConsentReminder`).
RECONSENT = "reconsent"
# The built-in wording (gatekeeper/consent/wording.txt), used until an organisation sets its own.
DEFAULT_WORDING = "built-in-1"


@dataclass(frozen=True)
class Wording:
    """The consent text a form shows, and the version recorded with every answer given under it."""

    version: str
    text: str


def wording(settings: FormSettings) -> Wording:
    """The organisation's wording (GATEKEEPER_CONSENT_WORDING_FILE), else the built-in one.

    A file's version is its name and the start of its sha256, so any edit is a new version and an
    answer always names the exact text it was given under. Raises ConfigError for a file that
    cannot be read as UTF-8 text.
    """
    if not settings.wording_file:
        text = resources.files("gatekeeper.consent").joinpath("wording.txt").read_text("utf-8")
        return Wording(DEFAULT_WORDING, text.strip())
    path = Path(settings.wording_file)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"GATEKEEPER_CONSENT_WORDING_FILE {path}: cannot be read as UTF-8 text ({exc})"
        ) from None
    if not text.strip():
        raise ConfigError(f"GATEKEEPER_CONSENT_WORDING_FILE {path} is empty")
    return Wording(f"{path.stem}-{hashlib.sha256(raw).hexdigest()[:12]}", text.strip())


def form_url(public_url: str, token: str) -> str:
    """The consent form for `token` under the app's public address."""
    return f"{public_url.rstrip('/')}/consent/{token}"


def askable(
    person: Person, contacts: Sequence[PersonContact], day: date, settings: Settings
) -> list[PersonContact]:
    """Which of the person's contacts are asked on `day`: parents and guardians below the age
    threshold (or with no date of birth), the person's own address from it."""
    who = policy.answers_for(person.date_of_birth, day, policy_for(settings.policy))
    if who == "self":
        return [c for c in contacts if c.role == SELF]
    return [c for c in contacts if c.role in policy.GUARDIANS]


def send_request(
    session: Session,
    person: Person,
    channels: Sequence[str],
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    reason: str = REQUEST,
) -> list[ConsentLink]:
    """Write a link and a message to each contact who may answer for `person` (flushes only).

    Raises InvalidInputError for an erased person, an unknown channel, or no contact who may answer.
    """
    if person.status == PersonStatus.ERASED:
        raise InvalidInputError(f"{person.external_id} was erased")
    if person.status == PersonStatus.LEFT:
        raise InvalidInputError(f"{person.external_id} has left")
    asked = list(dict.fromkeys(check_channel(settings.policy, c) for c in channels))
    if not asked:
        raise InvalidInputError("ask about at least one channel", field="channels")
    contacts = askable(person, contacts_of(session, person), now.date(), settings)
    if not contacts:
        who = policy.answers_for(person.date_of_birth, now.date(), policy_for(settings.policy))
        missing = "their own email address" if who == "self" else "a parent's or guardian's email address"
        raise InvalidInputError(f"{person.external_id} has no contact who may answer: add {missing}")
    rules = settings.policy.biometric_rules
    links: list[ConsentLink] = []
    for contact in contacts:
        token = secrets.token_urlsafe(32)
        role = contact.role
        link = ConsentLink(
            person_id=person.id,
            contact_id=contact.id,
            token_hash=token_hash(token),
            role=role,
            channels=asked,
            biometric=policy.biometric_answer_counts(role, person.date_of_birth, now.date(), rules),  # type: ignore[arg-type]
            reason=reason,
            created_at=now,
            created_by=actor,
            expires_at=now + timedelta(days=settings.forms.link_days),
            answers=0,
        )
        session.add(link)
        session.flush()
        withdraw_url = issue_link(session, person.external_id, settings=settings, now=now, actor=actor)
        messages.queue(
            session,
            "consent_reminder" if reason == REMINDER else "consent_request",
            to=[contact.email],
            about=subject(person),
            settings=settings.mail,
            now=now,
            actor=actor,
            first_name=first_name(person),
            for_self=role == SELF,
            form_url=form_url(settings.web.public_address, token),
            withdraw_url=withdraw_url,
            expires_on=(link.expires_at - timedelta(microseconds=1)).date(),
        )
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.CONSENT_FORM_SENT,
            subject=subject(person),
            details={"link": link.id, "role": role, "channels": asked, "reason": reason},
        )
        links.append(link)
    return links


@dataclass
class RequestReport:
    """What `request_consent` did: links sent per person, and who could not be asked and why."""

    sent: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "sent": [{"external_id": e, "links": n} for e, n in self.sent],
            "skipped": [{"external_id": e, "why": why} for e, why in self.skipped],
        }


def request_consent(
    session: Session,
    *,
    external_ids: Sequence[str] = (),
    due: bool = False,
    without_answer: bool = False,
    channels: Sequence[str] = (),
    settings: Settings,
    now: datetime,
    actor: str,
) -> RequestReport:
    """Send consent forms to the people named, those whose consent is due for renewal (within the
    longest reminder period), or every active person with no answer for the channels.

    `channels` empty: every configured channel. One person who cannot be asked is reported and the
    others still are. Raises InvalidInputError when no group is chosen, PersonNotFoundError for an
    unknown id.
    """
    if not (external_ids or due or without_answer):
        raise InvalidInputError("name people, or choose those due or those without an answer")
    asked = list(channels) or list(settings.policy.channels)
    for channel in asked:
        check_channel(settings.policy, channel)
    people: dict[str, tuple[Person, list[str]]] = {}
    for external_id in external_ids:
        person = find_person(session, external_id)
        people[person.external_id] = (person, asked)
    if due:
        within = max(settings.forms.reminder_days, default=30)
        for item in renewal_dates.consent_due(session, settings=settings, now=now, within_days=within):
            if channels and item.channel not in asked:
                continue
            person = find_person(session, item.external_id)
            chosen = people.setdefault(person.external_id, (person, []))[1]
            if item.channel not in chosen:
                chosen.append(item.channel)
    if without_answer:
        for person in session.scalars(
            select(Person)
            .where(Person.status == PersonStatus.ACTIVE)
            .options(selectinload(Person.consents))
            .order_by(Person.external_id)
        ):
            answered = {r.channel for r in person.consents if r.kind == "publication"}
            missing = [c for c in asked if c not in answered]
            if missing and person.external_id not in people:
                people[person.external_id] = (person, missing)
    report = RequestReport()
    for external_id, (person, chosen) in people.items():
        try:
            with session.begin_nested():
                links = send_request(session, person, chosen, settings=settings, now=now, actor=actor)
        except InvalidInputError as exc:
            report.skipped.append((external_id, str(exc)))
        else:
            report.sent.append((external_id, len(links)))
    return report


# --- the form -----------------------------------------------------------------------------------------

NOT_FOUND = "not_found"
EXPIRED = "expired"
NOT_YOURS = "not_yours"


class LinkProblem(InvalidInputError):
    """A consent link that does not open: unknown, expired, or no longer this contact's to answer."""

    def __init__(self, why: str, message: str) -> None:
        super().__init__(message)
        self.why = why


@dataclass(frozen=True)
class ChannelAnswer:
    """What a form shows for one channel: the current answer, if any, and the naming choice."""

    channel: str
    granted: bool | None
    named: str


@dataclass(frozen=True)
class FormView:
    """What the form for one link shows, and what it was sent about: never more than a first name."""

    link_id: int
    first_name: str
    role: str
    channels: tuple[ChannelAnswer, ...]
    biometric: bool
    wording: Wording
    expires_at: datetime
    answered_at: datetime | None


def _link(session: Session, token: str, settings: Settings, now: datetime) -> tuple[ConsentLink, Person]:
    """The link `token` opens now, and its person; raises LinkProblem."""
    if not token or len(token) > 100:
        raise LinkProblem(NOT_FOUND, "this consent link does not work")
    link = session.scalar(select(ConsentLink).where(ConsentLink.token_hash == token_hash(token)))
    if link is None:
        raise LinkProblem(NOT_FOUND, "this consent link does not work")
    person = session.get(Person, link.person_id)
    if person is None or person.status == PersonStatus.ERASED or link.contact_id is None:
        raise LinkProblem(EXPIRED, "this consent link no longer works")
    if now >= link.expires_at:
        raise LinkProblem(EXPIRED, "this consent link has expired")
    who = policy.answers_for(person.date_of_birth, now.date(), policy_for(settings.policy))
    if (who == "self") != (link.role == SELF):
        raise LinkProblem(
            NOT_YOURS,
            "this consent link can no longer be used: the learner now answers for themselves"
            if who == "self"
            else "this consent link can no longer be used",
        )
    return link, person


def open_form(session: Session, token: str, *, settings: Settings, now: datetime) -> FormView:
    """What the form behind `token` shows now; raises LinkProblem for a link that does not open."""
    link, person = _link(session, token, settings, now)
    state = person_state(person)
    answers = []
    for channel in link.channels:
        current = policy.current_record(state.records, channel, now)
        granted = None if current is None or current.channel != channel else current.action == "grant"
        previous = latest((r for r in person.consents if r.kind == "publication"), channel, action="grant")
        answers.append(ChannelAnswer(channel, granted, previous.named if previous is not None else "no"))
    return FormView(
        link_id=link.id,
        first_name=first_name(person),
        role=link.role,
        channels=tuple(answers),
        biometric=link.biometric,
        wording=wording(settings.forms),
        expires_at=link.expires_at,
        answered_at=link.answered_at,
    )


@dataclass(frozen=True)
class Answer:
    """One channel's answer on the form: yes or no, and for a yes how the learner may be named."""

    granted: bool
    named: str = "no"


@dataclass(frozen=True)
class FormAnswer:
    """What an answer recorded: the records, and the channels granted and refused."""

    records: tuple[ConsentRecord, ...]
    granted: tuple[str, ...]
    refused: tuple[str, ...]


def answer_form(
    session: Session,
    token: str,
    answers: Mapping[str, Answer],
    *,
    biometric: bool | None,
    answered_by: str,
    wording_version: str,
    settings: Settings,
    now: datetime,
) -> FormAnswer:
    """Record the answers given with `token` (flushes only): a record per channel, and the biometric
    answer where this contact's counts.

    Raises LinkProblem for a link that does not open now; InvalidInputError (with `field`) for a
    channel not asked or not answered, a naming choice not offered, a missing name, or a
    `wording_version` that is not the wording in force (the text changed since the form was shown).
    """
    link, person = _link(session, token, settings, now)
    current = wording(settings.forms)
    if wording_version != current.version:
        raise InvalidInputError(
            "the consent wording has changed since this form was opened: read it again and answer",
            field="wording",
        )
    extra = sorted(set(answers) - set(link.channels))
    if extra:
        raise InvalidInputError(f"not asked on this form: {', '.join(extra)}", field="channels")
    for index, channel in enumerate(link.channels):
        if channel not in answers:
            raise InvalidInputError(f"answer yes or no for {channel}", field=f"channel_{index}")
        if answers[channel].named not in policy.NAMED:
            raise InvalidInputError(f"choose how {channel} may name the learner", field=f"named_{index}")
    if link.biometric and biometric is None:
        raise InvalidInputError("answer yes or no to face recognition", field="biometric")
    name = " ".join(answered_by.split())
    if link.role != SELF and not name:
        raise InvalidInputError("give your name", field="answered_by")
    if len(name) > 200:
        raise InvalidInputError("a name is at most 200 characters", field="answered_by")
    actor = f"consent_link:{link.id}"
    evidence = f"online form, link {link.id}, {now.isoformat(timespec='seconds')}"
    valid_until = (
        policy.end_of_day(now.date() + timedelta(days=settings.forms.valid_days))
        if settings.forms.valid_days
        else None
    )
    made: list[ConsentRecord] = []
    for channel in link.channels:
        given = answers[channel]
        made.append(
            consent.add_record(
                session,
                person,
                kind="publication",
                channel=channel,
                action="grant" if given.granted else "withdraw",
                at=now,
                how=ONLINE_FORM,
                now=now,
                actor=actor,
                granted_by=link.role,
                granted_by_name=name or None,
                valid_until=valid_until if given.granted else None,
                named=given.named if given.granted else "no",
                evidence_ref=evidence,
                wording_version=current.version,
            )
        )
    if link.biometric and biometric is not None:
        action = "grant" if biometric else ("refuse" if link.role == SELF else "object")
        change = consent.record_biometric_answer(
            session,
            person.external_id,
            action,
            given_by=link.role,
            name=name or None,
            settings=settings,
            now=now,
            actor=actor,
            how=ONLINE_FORM,
            evidence_ref=evidence,
            wording_version=current.version,
        )
        made.extend(change.records)
    link.answered_at, link.answers = now, link.answers + 1
    granted = tuple(c for c in link.channels if answers[c].granted)
    refused = tuple(c for c in link.channels if not answers[c].granted)
    contact = session.get(PersonContact, link.contact_id)
    if contact is not None:
        messages.queue(
            session,
            "consent_answer_receipt",
            to=[contact.email],
            about=subject(person),
            settings=settings.mail,
            now=now,
            actor=actor,
            first_name=first_name(person),
            for_self=link.role == SELF,
            at=now,
            granted=[messages.channel_label(c) for c in granted],
            refused=[messages.channel_label(c) for c in refused],
            withdraw_url=issue_link(session, person.external_id, settings=settings, now=now, actor=actor),
        )
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.CONSENT_FORM_ANSWERED,
        subject=subject(person),
        details={
            "link": link.id,
            "granted": list(granted),
            "refused": list(refused),
            "biometric": biometric if link.biometric else None,
            "wording": current.version,
            "answer": link.answers,
        },
    )
    return FormAnswer(tuple(made), granted, refused)


# --- reminders -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """A consent of one person that ends on `due_on`: `expiry:<channel>` or `reconsent`."""

    key: str
    due_on: date
    channels: tuple[str, ...]


def deadlines(person: Person, settings: Settings, now: datetime, *, until: datetime) -> list[Deadline]:
    """The person's consents in force that end by `until` (`due.renewals`): each channel's expiry
    on its own, and every channel a parent's consent holds together, lapsing once the learner
    comes of age."""
    found: list[Deadline] = []
    lapsing: list[str] = []
    due_on: date | None = None
    for item in renewal_dates.renewals(person, settings=settings, now=now, until=until):
        if item.why == renewal_dates.RECONSENT:
            lapsing.append(item.channel)
            due_on = item.due
        else:
            found.append(Deadline(f"expiry:{item.channel}", item.due, (item.channel,)))
    if lapsing and due_on is not None:
        found.append(Deadline(RECONSENT, due_on, tuple(lapsing)))
    return found


def reminder_step(
    deadline: Deadline, today: date, reminder_days: Sequence[int], *, asked_from: date | None
) -> list[int]:
    """The reminder days reached on `today` for `deadline` (pure): empty before the first, after
    the deadline, or before `asked_from` (the day the person can first be asked)."""
    if today > deadline.due_on or (asked_from is not None and today < asked_from):
        return []
    return [days for days in reminder_days if today >= deadline.due_on - timedelta(days=days)]


@dataclass
class ReminderReport:
    """What a reminder run did."""

    sent: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


# The reminder row of a deadline that records that staff were told nobody can be asked (reminder
# days are 1 or more, so 0 is free for it).
STAFF_TOLD = 0


def _recorded(session: Session, person: Person, deadline: Deadline, days: int) -> bool:
    return (
        session.scalar(
            select(ConsentReminder.id).where(
                ConsentReminder.person_id == person.id,
                ConsentReminder.deadline == deadline.key,
                ConsentReminder.due_on == deadline.due_on,
                ConsentReminder.days == days,
            )
        )
        is not None
    )


def _record(session: Session, person: Person, deadline: Deadline, days: int, now: datetime) -> None:
    if not _recorded(session, person, deadline, days):
        session.add(
            ConsentReminder(
                person_id=person.id, deadline=deadline.key, due_on=deadline.due_on, days=days, sent_at=now
            )
        )


def send_reminders(session: Session, *, settings: Settings, now: datetime, actor: str) -> ReminderReport:
    """Send a consent form for every deadline whose reminder day has come, once per reminder day.

    A run that finds several reminder days reached (the scheduler did not run for a while) sends
    one request and counts them all as sent, so a parent is never sent two the same morning. A
    coming-of-age deadline is asked of the learner, from the day they reach the threshold. Someone
    with no contact who may answer is reported, and consent admins are told once per deadline
    (`staff.alerts.nobody_to_ask`, by MIS id).
    """
    report = ReminderReport()
    today = now.date()
    rules = policy_for(settings.policy)
    unaskable: list[alerts.Unaskable] = []
    horizon = now + timedelta(days=max(settings.forms.reminder_days, default=0))
    people = session.scalars(
        select(Person)
        .where(Person.status == PersonStatus.ACTIVE)
        .options(selectinload(Person.consents))
        .order_by(Person.external_id)
    )
    for person in people:
        reached: list[tuple[Deadline, list[int]]] = []
        for deadline in deadlines(person, settings, now, until=horizon):
            asked_from = None
            if deadline.key == RECONSENT and person.date_of_birth is not None:
                asked_from = policy.coming_of_age(person.date_of_birth, rules.age_threshold)
            days = reminder_step(deadline, today, settings.forms.reminder_days, asked_from=asked_from)
            if days and not _recorded(session, person, deadline, min(days)):
                reached.append((deadline, days))
        if not reached:
            continue
        channels = list(dict.fromkeys(c for deadline, _ in reached for c in deadline.channels))
        try:
            with session.begin_nested():
                send_request(
                    session, person, channels, settings=settings, now=now, actor=actor, reason=REMINDER
                )
        except InvalidInputError as exc:
            report.skipped.append((person.external_id, str(exc)))
            untold = [d for d, _ in reached if not _recorded(session, person, d, STAFF_TOLD)]
            if untold:
                ends = min(d.due_on for d in untold)
                unaskable.append(alerts.Unaskable(person.external_id, ends, str(exc)))
                for deadline in untold:
                    _record(session, person, deadline, STAFF_TOLD, now)
            continue
        for deadline, days in reached:
            for day in days:
                _record(session, person, deadline, day, now)
            report.sent.append((person.external_id, deadline.key))
        session.flush()
    alerts.nobody_to_ask(session, unaskable, settings=settings, now=now, actor=actor)
    session.flush()
    return report
