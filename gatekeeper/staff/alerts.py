"""Alerts to staff by email: what waits for them, written in the unit of work of its cause.

Each alert goes to the active accounts with an email whose role may act on it (`PERMISSIONS`):
a withdrawal request without a link to consent admins (`MANAGE_PEOPLE`, the only role that opens
its page); opened takedown tasks to consent admins and admins (`RECORD_PLACEMENTS`), and to
whoever recorded each placement; what a purge could not delete to consent admins and admins. The
daily digest lists what has waited more than a day, each part to the roles that may act on it.

No account with an email: nothing is written, and nothing fails. An alert names a request by its
reference, a placement by where it is and its channel, a photo by its number: never a learner,
and so never a name in a subject; it carries no photo. The consent, publishing and retention
domains call these in their own units of work; this layer reads their rows from `consent_db`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db.models import (
    OutboxMessage,
    Publication,
    PurgeReport,
    StaffUser,
    TakedownTask,
    WithdrawalRequest,
)
from gatekeeper.config import Settings
from gatekeeper.mail import messages, outbox
from gatekeeper.staff.roles import PERMISSIONS, Permission, Role

log = logging.getLogger(__name__)

# Who is told of what: the roles that may act on it.
REQUEST_ROLES = PERMISSIONS[Permission.MANAGE_PEOPLE]
TAKEDOWN_ROLES = PERMISSIONS[Permission.RECORD_PLACEMENTS]
PURGE_ROLES = frozenset({Role.CONSENT_ADMIN, Role.ADMIN})

# The kinds of message written here (keys of messages.SUBJECTS, and the outbox's `kind`).
REQUEST_WAITING = "staff_withdrawal_waiting"
TAKEDOWNS_OPENED = "staff_takedowns"
PLACEMENT_TAKEDOWN = "placement_takedown"
PURGE_FAILURES = "staff_purge_failures"
DIGEST = "staff_digest"
NOBODY_TO_ASK = "staff_nobody_to_ask"

# The digest lists what has waited at least this long.
DIGEST_AFTER = timedelta(hours=24)
# A request without a link waiting for staff (`gatekeeper.consent.withdrawals.PENDING`).
_PENDING = "pending"


@dataclass(frozen=True)
class Line:
    """One thing an alert lists: what it is, where to act on it, and how long it has waited."""

    label: str
    detail: str
    waited: str
    url: str


def waited(since: datetime, now: datetime) -> str:
    """How long since `since`, in words ("40 min", "5 h", "3 days"), as the staff pages say it."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} days"


def staff_addresses(session: Session, roles: Collection[str]) -> list[str]:
    """The email addresses of the active accounts of `roles`, by user name (accounts without one,
    or with one no message can be sent to, are left out)."""
    accounts = session.scalars(
        select(StaffUser)
        .where(StaffUser.active.is_(True), StaffUser.role.in_(sorted(roles)), StaffUser.email.is_not(None))
        .order_by(StaffUser.username)
    )
    return [address for account in accounts if (address := _address(account))]


def request_url(settings: Settings, reference: str) -> str:
    """The staff page of a withdrawal request."""
    return f"{settings.web.public_address.rstrip('/')}/withdrawals/{reference}"


def takedowns_url(settings: Settings) -> str:
    """The staff page listing open takedown tasks."""
    return f"{settings.web.public_address.rstrip('/')}/takedowns"


def request_waiting(
    session: Session, request: WithdrawalRequest, *, settings: Settings, now: datetime, actor: str
) -> OutboxMessage | None:
    """Tell consent admins that a request without a link waits for them to check it: once per
    request, naming its reference and its page (never what was typed). None: nobody to tell, or
    already told."""
    to = staff_addresses(session, REQUEST_ROLES)
    about = f"request:{request.id}"
    if not to or _written(session, REQUEST_WAITING, about):
        return None
    return _queue(
        session,
        REQUEST_WAITING,
        to,
        about,
        settings=settings,
        now=now,
        actor=actor,
        reference=request.reference,
        waited=waited(request.created_at, now),
        url=request_url(settings, request.reference),
    )


def takedowns_opened(
    session: Session, tasks: Sequence[TakedownTask], *, settings: Settings, now: datetime, actor: str
) -> list[OutboxMessage]:
    """Tell consent admins and admins of the takedown tasks just opened (one message naming every
    place), and each member of staff who recorded one of those placements of theirs."""
    if not tasks:
        return []
    written = []
    about = f"takedown:{tasks[0].id}"
    to = staff_addresses(session, TAKEDOWN_ROLES)
    if to:
        written.append(
            _queue(
                session,
                TAKEDOWNS_OPENED,
                to,
                about,
                settings=settings,
                now=now,
                actor=actor,
                tasks=[_task_line(task, settings, now) for task in tasks],
                url=takedowns_url(settings),
            )
        )
    by_recorder: dict[str, list[TakedownTask]] = {}
    for task in tasks:
        recorder = _recorder_address(session, task)
        if recorder is not None:
            by_recorder.setdefault(recorder, []).append(task)
    for address, theirs in by_recorder.items():
        written.append(
            _queue(
                session,
                PLACEMENT_TAKEDOWN,
                [address],
                f"takedown:{theirs[0].id}",
                settings=settings,
                now=now,
                actor=actor,
                tasks=[_task_line(task, settings, now) for task in theirs],
                url=takedowns_url(settings),
            )
        )
    return written


def purge_failures(
    session: Session, report: PurgeReport, *, settings: Settings, now: datetime, actor: str
) -> OutboxMessage | None:
    """Tell consent admins and admins what a purge run could not delete, and why; None when it
    deleted everything due, or nobody is there to tell."""
    if not report.failures:
        return None
    to = staff_addresses(session, PURGE_ROLES)
    if not to:
        return None
    failures = [
        {"kind": str(f.get("kind", "")), "id": str(f.get("id", "")), "why": str(f.get("why", ""))}
        for f in report.failures
    ]
    return _queue(
        session,
        PURGE_FAILURES,
        to,
        f"purge:{report.id}",
        settings=settings,
        now=now,
        actor=actor,
        report=report.id,
        failures=failures,
    )


@dataclass(frozen=True)
class Unaskable:
    """A person whose consent ends soon with no contact who may be sent the form: by MIS id only."""

    external_id: str
    ends_on: date
    why: str


def nobody_to_ask(
    session: Session, people: Sequence[Unaskable], *, settings: Settings, now: datetime, actor: str
) -> OutboxMessage | None:
    """Tell consent admins whose consent ends soon with nobody to send the renewal form to (each
    named by MIS id and a link to their page, never by name); None when nobody is there to tell."""
    if not people:
        return None
    to = staff_addresses(session, REQUEST_ROLES)
    if not to:
        return None
    base = settings.web.public_address.rstrip("/")
    lines = [
        Line(
            p.external_id,
            f"ends {p.ends_on.isoformat()}: {p.why}",
            "",
            f"{base}/people/{quote(p.external_id)}",
        )
        for p in people
    ]
    return _queue(
        session,
        NOBODY_TO_ASK,
        to,
        f"reminders:{now.date().isoformat()}",
        settings=settings,
        now=now,
        actor=actor,
        lines=lines,
    )


def digest_day(settings: Settings, now: datetime) -> str:
    """The organisation's day at `now` (in its time zone), as the digest's `about` names it."""
    return now.astimezone(ZoneInfo(settings.retention.timezone)).strftime("%Y%m%d")


def send_digest(session: Session, *, settings: Settings, now: datetime, actor: str) -> list[OutboxMessage]:
    """Write the day's digest of what has waited more than a day: withdrawal requests without a
    link still unchecked (to consent admins) and takedown tasks still open (to consent admins and
    admins). At most once a day (the organisation's day); nothing when nothing has waited that
    long, or nobody is there to tell."""
    about = f"digest:{digest_day(settings, now)}"
    if _written(session, DIGEST, about):
        return []
    cutoff = now - DIGEST_AFTER
    requests = [
        Line(r.reference, "", waited(r.created_at, now), request_url(settings, r.reference))
        for r in session.scalars(
            select(WithdrawalRequest)
            .where(WithdrawalRequest.status == _PENDING, WithdrawalRequest.created_at <= cutoff)
            .order_by(WithdrawalRequest.created_at, WithdrawalRequest.id)
        )
    ]
    tasks = [
        _task_line(task, settings, now)
        for task in session.scalars(
            select(TakedownTask)
            .where(TakedownTask.done_at.is_(None), TakedownTask.since <= cutoff)
            .order_by(TakedownTask.since, TakedownTask.id)
        )
    ]
    if not requests and not tasks:
        return []
    # One message per set of parts its readers may act on (consent admins: both; admins: takedowns).
    audiences: dict[tuple[bool, bool], list[str]] = {}
    accounts = session.scalars(
        select(StaffUser)
        .where(StaffUser.active.is_(True), StaffUser.email.is_not(None))
        .order_by(StaffUser.username)
    )
    for account in accounts:
        parts = (
            bool(requests) and account.role in REQUEST_ROLES,
            bool(tasks) and account.role in TAKEDOWN_ROLES,
        )
        address = _address(account)
        if any(parts) and address:
            audiences.setdefault(parts, []).append(address)
    return [
        _queue(
            session,
            DIGEST,
            to,
            about,
            settings=settings,
            now=now,
            actor=actor,
            requests=requests if with_requests else [],
            tasks=tasks if with_tasks else [],
            takedowns_url=takedowns_url(settings),
        )
        for (with_requests, with_tasks), to in sorted(audiences.items(), reverse=True)
    ]


def _address(account: StaffUser) -> str | None:
    address = (account.email or "").strip()
    if not address:
        return None
    if not outbox.is_plain_address(address):
        log.warning("staff account %s: its email is not one plain address, so it gets no alerts", account.id)
        return None
    return address


def _recorder_address(session: Session, task: TakedownTask) -> str | None:
    """The address of the active account that recorded the task's placement, if it has one."""
    if task.publication_id is None:
        return None
    publication = session.get(Publication, task.publication_id)
    if publication is None or not publication.external or not publication.published_by:
        return None
    account = session.scalar(
        select(StaffUser).where(StaffUser.username == publication.published_by, StaffUser.active.is_(True))
    )
    return _address(account) if account is not None else None


def _task_line(task: TakedownTask, settings: Settings, now: datetime) -> Line:
    return Line(task.target, task.channel, waited(task.since, now), takedowns_url(settings))


def _written(session: Session, kind: str, about: str) -> bool:
    return (
        session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.kind == kind, OutboxMessage.about == about).limit(1)
        )
        is not None
    )


def _queue(
    session: Session,
    kind: str,
    to: list[str],
    about: str,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    **context: object,
) -> OutboxMessage:
    return messages.queue(
        session, kind, to=to, about=about, settings=settings.mail, now=now, actor=actor, **context
    )
