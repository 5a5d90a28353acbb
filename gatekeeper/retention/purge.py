"""Retention in practice: what is due, purging it from every store and the database, and reports.

Deadlines come from the pure function in `gatekeeper.retention.deadlines`; this module gathers its inputs
and carries out the result. Each photo is purged in its own unit of work (the caller commits one
at a time), so a run that crashes resumes where it stopped; a deletion is recorded only once every
object and version is gone, and whatever could not be deleted is reported and stays due.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import (
    Decision,
    Face,
    Person,
    Photo,
    Publication,
    PurgeReport,
    UploadItem,
    WithdrawalRequest,
)
from gatekeeper import policy
from gatekeeper.config import RetentionSettings, Settings
from gatekeeper.consent import withdrawals
from gatekeeper.errors import StorageError
from gatekeeper.people.enrolment import delete_templates
from gatekeeper.photos.status import PhotoStatus
from gatekeeper.policy import PersonStatus
from gatekeeper.publishing import takedowns
from gatekeeper.retention import deadlines as retention
from gatekeeper.retention.holds import active_hold, held_photos
from gatekeeper.staff import alerts
from gatekeeper.storage import BlobStore, open_store


def schedule_for(settings: RetentionSettings) -> retention.Schedule:
    """The organisation's retention schedule from its retention settings."""
    return retention.Schedule(
        blocked_days=settings.blocked_days,
        review_days=settings.review_days,
        published_grace_days=settings.grace_days,
        taken_down_days=settings.taken_down_days,
        template_days=settings.template_days,
        request_days=settings.request_days,
        timezone=settings.timezone,
    )


def consent_end(person: Person, channel: str) -> datetime | None:
    """When `person`'s consent for `channel` ends: withdrawal or objection, expiry, or leaving (unless
    the grant continues after it); None if open."""
    ends: list[datetime] = []
    target = policy.Channel(channel)
    records = [r for r in person.consents if r.kind == "publication" and target.covered_by(r.channel)]
    survives_leaving = False
    if records:
        last = max(records, key=lambda r: (r.at, r.id))
        if last.action in ("withdraw", "object"):
            ends.append(last.at)
        else:
            survives_leaving = last.survives_leaving
            if last.valid_until is not None:
                ends.append(last.valid_until)
    else:
        ends.append(person.created_at)  # never consented: nothing to keep it for
    if person.left_on is not None and not survives_leaving:
        ends.append(datetime.combine(person.left_on, time.max, tzinfo=UTC))
    if person.status == PersonStatus.ERASED:
        ends.append(person.updated_at)
    return min(ends) if ends else None


def photo_facts(session: Session, photo: Photo) -> retention.PhotoFacts:
    """The inputs of a photo's retention deadline, read from the database."""
    publications = list(session.scalars(select(Publication).where(Publication.photo_id == photo.id)))
    live = [p for p in publications if p.taken_down_at is None]
    state: retention.State
    taken_down_at = None
    if live:
        state = "published"
    elif publications:
        state = "taken_down"
        taken_down_at = max(p.taken_down_at for p in publications if p.taken_down_at is not None)
    elif photo.status in (PhotoStatus.PENDING, PhotoStatus.BLOCKED, PhotoStatus.REVIEW):
        state = photo.status  # type: ignore[assignment]
    else:
        state = "publishable"
    ends: tuple[datetime | None, ...] = ()
    if state in ("published", "publishable"):
        decision = session.scalar(
            select(Decision).where(Decision.photo_id == photo.id).order_by(Decision.id.desc()).limit(1)
        )
        ids = sorted({pid for f in decision.faces if (pid := _shown(f)) is not None}) if decision else []
        people = session.scalars(
            select(Person).where(Person.id.in_(ids)).options(selectinload(Person.consents))
        )
        ends = tuple(consent_end(p, photo.channel) for p in people)
    return retention.PhotoFacts(state, photo.decided_at, ends, taken_down_at)


def _shown(face: Face) -> int | None:
    """The person a recorded face is decided as: a reviewer's identification, else its match."""
    if face.review_resolution is not None:
        return face.reviewed_person_id if face.review_resolution == "person" else None
    return face.person_id


@dataclass(frozen=True)
class PurgeDue:
    """Something past (or, with a later `as_of`, reaching) its retention deadline."""

    kind: str  # "photo", "templates" or "request" (a withdrawal request's contact details)
    id: int
    deadline: datetime
    state: str
    # A photo kept by a hold (another lawful reason): its reason; it is listed, never purged.
    held: str | None = None


def find_due(session: Session, settings: RetentionSettings, as_of: datetime) -> list[PurgeDue]:
    """Every photo and every person's templates due at `as_of`, oldest deadline first."""
    schedule = schedule_for(settings)
    holds = held_photos(session)
    due: list[PurgeDue] = []
    for photo in session.scalars(select(Photo).order_by(Photo.id)):
        facts = photo_facts(session, photo)
        deadline = retention.photo_deadline(facts, schedule)
        if deadline is not None and retention.is_due(deadline, as_of):
            due.append(PurgeDue("photo", photo.id, deadline, facts.state, holds.get(photo.id)))
    with_templates = select(Person).where(Person.templates.any()).options(selectinload(Person.consents))
    for person in session.scalars(with_templates):
        deadline = retention.template_deadline(_biometric_end(person), person.left_on, schedule)
        if deadline is not None and retention.is_due(deadline, as_of):
            due.append(PurgeDue("templates", person.id, deadline, person.status))
    for request in session.scalars(_decided_requests_with_details()):
        deadline = retention.request_deadline(request.decided_at, schedule)
        if deadline is not None and retention.is_due(deadline, as_of):
            due.append(PurgeDue("request", request.id, deadline, request.status))
    return sorted(due, key=lambda item: (item.deadline, item.kind, item.id))


def _decided_requests_with_details() -> Any:
    return (
        select(WithdrawalRequest)
        .where(
            WithdrawalRequest.status != withdrawals.PENDING,
            or_(
                WithdrawalRequest.claimed_name.is_not(None),
                WithdrawalRequest.claimed_date_of_birth.is_not(None),
                WithdrawalRequest.relationship_to_person.is_not(None),
                WithdrawalRequest.contact_email.is_not(None),
            ),
        )
        .order_by(WithdrawalRequest.id)
    )


def _biometric_end(person: Person) -> datetime | None:
    records = [r for r in person.consents if r.kind == "biometric"]
    if not records:
        return None
    last = max(records, key=lambda r: (r.at, r.id))
    return last.at if last.action == "withdraw" else last.valid_until


@dataclass
class PurgeResult:
    """What purging one item did: deletions by kind, and failures (kind, id, why)."""

    deleted: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)
    held: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def kept(cls, photo_id: int, reason: str) -> PurgeResult:
        """A photo left alone because a hold keeps it."""
        return cls(held=[{"kind": "photo", "id": photo_id, "reason": reason}])


def purge_photo(
    session: Session,
    photo_id: int,
    *,
    originals: BlobStore,
    settings: Settings,
    now: datetime,
    actor: str,
    why: str = "retention",
) -> PurgeResult:
    """Delete a photo's copies (every version), its original and its rows; audited.

    If a store refuses a deletion, or an external placement is still up, nothing is recorded as
    purged: the failure is returned and the photo stays due for the next run (a takedown task is
    opened for each such placement, and staff are told). A photo under a hold is left as it is
    and returned as held.
    """
    result = PurgeResult()
    photo = session.get(Photo, photo_id)
    if photo is None:
        return result
    hold = active_hold(session, photo_id)
    if hold is not None:
        return PurgeResult.kept(photo_id, hold.reason)
    publications = list(session.scalars(select(Publication).where(Publication.photo_id == photo_id)))
    outside = [p for p in publications if p.external and p.taken_down_at is None]
    if outside:
        opened = [
            task
            for publication in outside
            if (task := takedowns.take_down(session, publication, reasons=[why], now=now, actor=actor))
        ]
        alerts.takedowns_opened(session, opened, settings=settings, now=now, actor=actor)
        result.failures.append(
            {
                "kind": "photo",
                "id": photo_id,
                "why": "external placements still up: " + ", ".join(p.target for p in outside),
            }
        )
        return result
    try:
        for publication in publications:
            if publication.store is not None and publication.key is not None:
                versions = open_store(publication.store).delete(publication.key)
                result.deleted["object_versions"] += versions
                result.deleted["published_copies"] += 1 if versions else 0
        shared = session.scalar(
            select(func.count()).select_from(Photo).where(Photo.sha256 == photo.sha256, Photo.id != photo.id)
        )
        if photo.original_key is not None and not shared:
            versions = originals.delete(photo.original_key)
            result.deleted["object_versions"] += versions
            result.deleted["originals"] += 1 if versions else 0
    except StorageError as exc:
        result.failures.append({"kind": "photo", "id": photo_id, "why": str(exc)})
        return result
    # The database cascades to decisions, faces and publications; takedown tasks keep their record.
    session.flush()
    session.expunge_all()
    # The name it was uploaded under may name a child: it goes with the photo.
    session.execute(update(UploadItem).where(UploadItem.photo_id == photo_id).values(file_name=None))
    session.execute(delete(Photo).where(Photo.id == photo_id))
    result.deleted["photos"] += 1
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PHOTO_PURGED,
        subject=f"photo:{photo_id}",
        details={"why": why, "deleted": dict(result.deleted)},
    )
    return result


def purge_templates(session: Session, person_id: int, *, now: datetime, actor: str) -> PurgeResult:
    """Delete a person's templates past their time (audited)."""
    result = PurgeResult()
    person = session.get(Person, person_id, options=[selectinload(Person.templates)])
    if person is not None:
        result.deleted["templates"] += delete_templates(
            session, person, now=now, actor=actor, why="retention"
        )
    return result


def purge_request_details(session: Session, request_id: int, *, now: datetime, actor: str) -> PurgeResult:
    """Erase a decided withdrawal request's contact details past their time (audited)."""
    result = PurgeResult()
    request = session.get(WithdrawalRequest, request_id)
    if request is None or request.status == withdrawals.PENDING:
        return result
    if withdrawals.erase_details(session, request, now=now, actor=actor, why="retention"):
        result.deleted["request_details"] += 1
    return result


def write_report(
    session: Session,
    *,
    started_at: datetime,
    now: datetime,
    actor: str,
    results: Iterable[PurgeResult],
    settings: Settings,
) -> PurgeReport:
    """One audited report of a purge run: deletions by kind and what could not be deleted, and why
    (staff are told of that: `alerts.purge_failures`)."""
    deleted: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    for result in results:
        deleted.update(result.deleted)
        failures.extend(result.failures)
        held.extend(result.held)
    report = PurgeReport(
        started_at=started_at,
        finished_at=now,
        actor=actor,
        deleted=dict(sorted(deleted.items())),
        failures=failures,
        held=held,
    )
    session.add(report)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PURGE_REPORT,
        subject=f"purge:{report.id}",
        details={"deleted": report.deleted, "failures": failures, "held": held},
    )
    alerts.purge_failures(session, report, settings=settings, now=now, actor=actor)
    return report


# A write this recent may belong to a publish or gate still in flight, whose record is not yet committed.
ORPHAN_GRACE = timedelta(hours=1)


def sweep_orphans(
    session: Session, store: BlobStore, *, originals: bool, now: datetime, actor: str
) -> PurgeResult:
    """Delete objects no record refers to, left by a crash between a store write and its commit.

    In the originals store a key must be some photo's original; in the published store, a live
    publication's key. Only objects written more than ORPHAN_GRACE before `now` are touched.
    """
    result = PurgeResult()
    if originals:
        # Keys sit directly in the originals store (older photos' under `originals/`, kept in their row).
        query = select(Photo.original_key).where(Photo.original_key.is_not(None))
    else:
        query = select(Publication.key).where(
            Publication.store == store.url, Publication.taken_down_at.is_(None)
        )
    referenced = set(session.scalars(query))
    cutoff = now - ORPHAN_GRACE
    try:
        orphans = [
            key for key, written in store.iter_entries() if key not in referenced and written <= cutoff
        ]
    except StorageError as exc:
        result.failures.append({"kind": "store", "id": store.url, "why": str(exc)})
        return result
    if orphans:
        try:
            deleted, errors = store.delete_many(orphans)
        except StorageError as exc:  # the store could not even be listed
            deleted, errors = {}, dict.fromkeys(orphans, str(exc))
        result.deleted["object_versions"] += sum(deleted.values())
        result.deleted["orphans"] += len(deleted)
        for key, why in sorted(errors.items()):
            result.failures.append({"kind": "orphan", "id": f"{store.url}/{key}", "why": why})
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.ORPHANS_DELETED,
            subject=f"store:{store.url}",
            details={"keys": orphans, "failures": result.failures},
        )
    return result


def list_reports(session: Session, limit: int = 50) -> list[PurgeReport]:
    """The newest purge reports."""
    return list(session.scalars(select(PurgeReport).order_by(PurgeReport.id.desc()).limit(limit)))


# --- photos of a person ----------------------------------------------------------------


def photos_showing(session: Session, person_id: int) -> list[int]:
    """Ids of every photo whose recorded faces name the person as a candidate, or a reviewer
    identified as them."""
    query = (
        select(Decision.photo_id)
        .join(Face, Face.decision_id == Decision.id)
        .where(
            (Face.person_id == person_id)
            | (Face.second_person_id == person_id)
            | (Face.reviewed_person_id == person_id)
        )
        .distinct()
        .order_by(Decision.photo_id)
    )
    return list(session.scalars(query))
