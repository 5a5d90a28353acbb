"""Publishing a gated photo, recording placements outside our stores, and taking copies down.

Every use case takes ids, so a job can run it. Publishing decides again at that moment from the
recorded faces and today's consent; the clean copy is read from the gate's result or rebuilt from
the private original, written under an opaque key and made visible only once its record commits.
Taking down deletes the key (every version, on S3) before the record says so; an external
placement cannot be deleted by us and becomes a takedown task for staff.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.models import Decision, Face, Job, Person, Photo, Publication, TakedownTask
from consent_db.session import after_commit, after_rollback
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import (
    BlobNotFoundError,
    InvalidInputError,
    MediaError,
    RecordNotFoundError,
    StorageError,
)
from gatekeeper.faces import FaceEngine
from gatekeeper.queueing import JobKind
from gatekeeper.services.consent_state import check_channel
from gatekeeper.services.gate import recheck
from gatekeeper.storage import BlobStore, opaque_name, open_store


@dataclass(frozen=True)
class PublishOutcome:
    """What publishing did: a publication in `store` under `key`, or a refusal with reasons."""

    photo_id: int
    verdict: str
    reasons: tuple[str, ...]
    publication_id: int | None = None
    store: str | None = None
    key: str | None = None
    # True when the photo was already live under `key` and nothing new was written.
    reused: bool = False

    @property
    def published(self) -> bool:
        return self.publication_id is not None


def latest_decision(session: Session, photo_id: int) -> Decision:
    """The photo's most recent decision; raises RecordNotFoundError."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise RecordNotFoundError("photo", photo_id)
    decision = session.scalar(
        select(Decision)
        .where(Decision.photo_id == photo_id)
        .order_by(Decision.id.desc())
        .limit(1)
        .options(selectinload(Decision.faces))
    )
    if decision is None:
        raise RecordNotFoundError("decision of photo", photo_id)
    return decision


def _people_in(decision: Decision) -> set[int]:
    return {
        person_id
        for face in decision.faces
        for person_id in (face.person_id, face.second_person_id, face.reviewed_person_id)
        if person_id is not None
    }


def lock_people(session: Session, person_ids: Iterable[int]) -> None:
    """Hold the people's rows until this transaction ends (PostgreSQL; SQLite serialises writers).

    Publishing locks the people it shows before deciding; a takedown locks its person before
    looking for publications. So a takedown that follows a withdrawal waits for any publish already
    deciding, and then sees its publication: nothing published during a withdrawal stays up.
    The lock is FOR NO KEY UPDATE: it excludes other lockers, but not transactions that only refer
    to the person (a gate recording their face, a new consent record), whose foreign-key checks
    would otherwise wait on it while it waits on them for the audit chain's lock: a deadlock.
    """
    ids = sorted(set(person_ids))
    if ids:
        locking = select(Person.id).where(Person.id.in_(ids)).order_by(Person.id)
        session.execute(locking.with_for_update(key_share=True))


def _check_photo_channel(settings: Settings, photo: Photo, channel: str) -> None:
    check_channel(settings, channel)
    if channel != photo.channel:
        raise InvalidInputError(
            f"photo {photo.id} was gated for {photo.channel!r}; gate it for {channel!r} to publish it there",
            field="channel",
        )


def rebuild_clean(
    original: bytes,
    decision: Decision,
    *,
    channel: str,
    settings: Settings,
    engine: FaceEngine | None,
) -> media.CleanCopy:
    """The clean copy of a decision made again from the original, at `channel`'s published size;
    raises MediaError.

    A copy with covered faces is verified by detecting again, so it needs the face engine.
    """
    source = media.decode_source(
        original, max_pixels=settings.max_pixels, long_edge=settings.long_edge(channel)
    )
    # Faces are recorded in pixels of the full upright photo; the copy may be smaller.
    boxes = [_scaled_box((f.left, f.top, f.right, f.bottom), source) for f in decision.faces if f.covered]
    if not boxes:
        return media.sanitise(
            original, max_pixels=settings.max_pixels, jpeg_quality=settings.jpeg_quality, source=source
        )
    return covered_copy(source, boxes, settings=settings, engine=engine)


def covered_copy(
    source: media.DecodedSource,
    boxes: list[tuple[int, int, int, int]],
    *,
    settings: Settings,
    engine: FaceEngine | None,
) -> media.CleanCopy:
    """`source` with the faces in `boxes` (pixels of `source`) covered, as a JPEG, checked by
    detecting again; raises MediaError when no engine can check it or a covered face is still found."""
    if engine is None:
        raise MediaError("a copy with covered faces must be checked by face detection; no engine given")
    clean = media.encode_clean(
        media.cover(source.image.pixels, boxes),
        fmt="jpeg",
        jpeg_quality=settings.jpeg_quality,
        icc_profile=source.icc_profile,
    )
    again = engine.analyse(media.decode(clean.data, max_pixels=settings.max_pixels).pixels)
    for face in again.faces:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        if any(left <= cx <= right and top <= cy <= bottom for left, top, right, bottom in boxes):
            raise MediaError("detection still finds a face where one was covered")
    return clean


def _scaled_box(box: tuple[int, int, int, int], source: media.DecodedSource) -> tuple[int, int, int, int]:
    """A box in the full upright photo as a box in the decoded copy (rounded outwards)."""
    if source.full_size is None:
        return box
    height, width = source.image.pixels.shape[:2]
    scale = source.scale
    left, top, right, bottom = box
    return (
        max(0, math.floor(left * scale)),
        max(0, math.floor(top * scale)),
        min(width, math.ceil(right * scale)),
        min(height, math.ceil(bottom * scale)),
    )


def publish_photo(
    session: Session,
    photo_id: int,
    *,
    channel: str,
    store: BlobStore,
    originals: BlobStore,
    settings: Settings,
    now: datetime,
    actor: str,
    clean: media.CleanCopy | None = None,
    engine: FaceEngine | None = None,
    once: bool = False,
) -> PublishOutcome:
    """Decide again now; if publishable, write the clean copy to `store` and record the publication.

    The copy is visible under its key only after the session commits (a rollback removes it).
    With `once` (jobs, which may run twice; `gate --out`), a photo already live in `store` on
    `channel`, its copy still there, is left as it is and its publication returned (`reused`).
    A refusal is a value, audited. Raises RecordNotFoundError, UnknownChannelError,
    InvalidInputError (a channel the photo was not gated for), StorageError.
    """
    decision = latest_decision(session, photo_id)
    photo = decision.photo
    _check_photo_channel(settings, photo, channel)
    lock_people(session, _people_in(decision))
    fresh = recheck(session, decision.id, settings=settings, now=now, channel=channel)
    if once and fresh.verdict == policy.PUBLISHABLE:
        existing = _live_in(session, store, photo_id, channel)
        if existing is not None:
            return PublishOutcome(
                photo_id, fresh.verdict, fresh.reasons, existing.id, existing.store, existing.key, reused=True
            )
    if fresh.verdict == policy.PUBLISHABLE and clean is None:
        try:
            if photo.original_key is None:
                raise MediaError("no original was kept")
            clean = rebuild_clean(
                originals.get(photo.original_key), decision, channel=channel, settings=settings, engine=engine
            )
        except (MediaError, BlobNotFoundError) as exc:
            fresh = policy.PhotoVerdict("blocked", (*fresh.reasons, policy.CLEAN_COPY_FAILED), fresh.faces)
            audit.append(
                session,
                at=now,
                actor=actor,
                action="publication.refused",
                subject=f"photo:{photo_id}",
                details={"decision": decision.id, "error": str(exc), "reasons": list(fresh.reasons)},
            )
            return PublishOutcome(photo_id, fresh.verdict, fresh.reasons)
    if fresh.verdict != policy.PUBLISHABLE:
        audit.append(
            session,
            at=now,
            actor=actor,
            action="publication.refused",
            subject=f"photo:{photo_id}",
            details={"decision": decision.id, "verdict": fresh.verdict, "reasons": list(fresh.reasons)},
        )
        return PublishOutcome(photo_id, fresh.verdict, fresh.reasons)
    assert clean is not None
    key = opaque_name(clean.extension)
    staged = store.stage(key, clean.data, clean.media_type)
    after_rollback(session, staged.abort)
    after_commit(session, staged.commit)
    publication = Publication(
        photo_id=photo_id,
        decision_id=decision.id,
        channel=channel,
        target=f"{store.url}/{key}",
        sha256=hashlib.sha256(clean.data).hexdigest(),
        published_at=now,
        store=store.url,
        key=key,
        external=False,
        published_by=actor,
        long_edge=settings.long_edge(channel) or 0,
    )
    session.add(publication)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="photo.published",
        subject=f"photo:{photo_id}",
        details={
            "publication": publication.id,
            "store": store.url,
            "key": key,
            "sha256": publication.sha256,
            "lossless": clean.lossless,
        },
    )
    return PublishOutcome(photo_id, fresh.verdict, fresh.reasons, publication.id, store.url, key)


def _live_in(session: Session, store: BlobStore, photo_id: int, channel: str) -> Publication | None:
    """The photo's publication on `channel` in `store` that is not taken down and whose copy is
    still there (a copy deleted by hand is published again)."""
    candidates = session.scalars(
        select(Publication)
        .where(
            Publication.photo_id == photo_id,
            Publication.channel == channel,
            Publication.store == store.url,
            Publication.taken_down_at.is_(None),
        )
        .order_by(Publication.id)
    )
    for publication in candidates:
        if publication.key is not None and store.exists(publication.key):
            return publication
    return None


def publications_of(session: Session, photo_id: int) -> list[Publication]:
    """Every publication of a photo (live or taken down, downloads included), oldest first."""
    return list(
        session.scalars(select(Publication).where(Publication.photo_id == photo_id).order_by(Publication.id))
    )


def already_published(session: Session, store: BlobStore, photo_id: int, channel: str) -> Publication | None:
    """The photo's live copy on `channel` in `store`, its file still there, if it has one."""
    return _live_in(session, store, photo_id, channel)


def publish_pending(session: Session, photo_id: int, channel: str) -> Job | None:
    """A publish job for the photo and channel that is queued or running, if there is one."""
    jobs = session.scalars(
        select(Job).where(Job.task == JobKind.PUBLISH, Job.state.in_(("queued", "running"))).order_by(Job.id)
    )
    return next((job for job in jobs if list(job.args[:2]) == [photo_id, channel]), None)


def record_external(
    session: Session,
    photo_id: int,
    *,
    channel: str,
    where: str,
    settings: Settings,
    now: datetime,
    actor: str,
) -> tuple[Publication, TakedownTask | None]:
    """Record that a clean copy was placed outside our stores (a page URL, a post reference).

    The placement is a fact and is always recorded; if the photo does not pass today, a takedown
    task is opened for it at once. Raises RecordNotFoundError, InvalidInputError.
    """
    where = where.strip()
    if not where:
        raise InvalidInputError("say where the photo was placed (a URL or a post reference)", field="where")
    decision = latest_decision(session, photo_id)
    _check_photo_channel(settings, decision.photo, channel)
    publication = Publication(
        photo_id=photo_id,
        decision_id=decision.id,
        channel=channel,
        target=where,
        sha256=None,
        published_at=now,
        external=True,
        published_by=actor,
    )
    session.add(publication)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="publication.recorded",
        subject=f"photo:{photo_id}",
        details={"publication": publication.id, "where": where, "channel": channel},
    )
    fresh = recheck(session, decision.id, settings=settings, now=now)
    task = None
    if fresh.verdict != policy.PUBLISHABLE:
        task = _open_task(session, publication, fresh.reasons, person_id=None, now=now, actor=actor)
    return publication, task


@dataclass
class TakedownReport:
    """What a takedown or re-check run did."""

    checked: int = 0
    deleted: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    kept: int = 0


def take_down(
    session: Session,
    publication: Publication,
    *,
    reasons: Iterable[str],
    now: datetime,
    actor: str,
    person_id: int | None = None,
) -> TakedownTask | None:
    """Delete a copy from our store and record it, or open a task for an external placement.

    The key is deleted (every version) before the record changes, so a crash in between leaves a
    live record whose copy is gone: the next run deletes again (a missing key is fine) and records
    it. Raises StorageError when the store refuses, leaving the publication live.
    """
    reasons = list(reasons)
    if publication.external:
        return _open_task(session, publication, reasons, person_id=person_id, now=now, actor=actor)
    if publication.taken_down_at is not None:
        return None
    if publication.store is not None and publication.key is not None:
        open_store(publication.store).delete(publication.key)
    _record_takedown(session, publication, reasons, now=now, actor=actor)
    return None


def _record_takedown(
    session: Session, publication: Publication, reasons: list[str], *, now: datetime, actor: str
) -> None:
    publication.taken_down_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="publication.taken_down",
        subject=f"photo:{publication.photo_id}",
        details={
            "publication": publication.id,
            "store": publication.store,
            "key": publication.key,
            "reasons": reasons,
        },
    )


# Deletes to object stores are network round trips: a takedown sends this many at once.
DELETE_CONCURRENCY = 16
# From this many copies in one store, they are deleted from one listing of it (`delete_many`).
DELETE_MANY_FROM = 50


def _delete_copies(publications: list[Publication]) -> dict[int, StorageError]:
    """Delete every publication's key (every version); the errors by publication id.

    A few copies in a store are deleted concurrently, key by key; many are deleted together from
    one listing of the store (on S3, a request per 1,000 versions rather than three per copy).
    """
    by_store: dict[str, list[Publication]] = {}
    for publication in publications:
        if publication.store is not None and publication.key is not None:
            by_store.setdefault(publication.store, []).append(publication)
    errors: dict[int, StorageError] = {}
    singles: list[tuple[int, BlobStore, str]] = []
    for url, copies in by_store.items():
        store = open_store(url)
        if len(copies) < DELETE_MANY_FROM:
            singles.extend((p.id, store, p.key or "") for p in copies)
            continue
        try:
            _, failed = store.delete_many([p.key or "" for p in copies])
        except StorageError as exc:
            errors.update((p.id, exc) for p in copies)
            continue
        errors.update((p.id, StorageError(failed[p.key or ""])) for p in copies if p.key in failed)

    def delete(job: tuple[int, BlobStore, str]) -> tuple[int, StorageError | None]:
        publication_id, store, key = job
        try:
            store.delete(key)
            return publication_id, None
        except StorageError as exc:
            return publication_id, exc

    with ThreadPoolExecutor(max_workers=DELETE_CONCURRENCY) as pool:
        errors.update((pid, exc) for pid, exc in pool.map(delete, singles) if exc is not None)
    return errors


def _open_task(
    session: Session,
    publication: Publication,
    reasons: Iterable[str],
    *,
    person_id: int | None,
    now: datetime,
    actor: str,
) -> TakedownTask | None:
    existing = session.scalar(
        select(TakedownTask).where(
            TakedownTask.publication_id == publication.id, TakedownTask.done_at.is_(None)
        )
    )
    if existing is not None:
        return None
    task = TakedownTask(
        publication_id=publication.id,
        photo_id=publication.photo_id,
        person_id=person_id,
        channel=publication.channel,
        target=publication.target,
        reasons=list(reasons),
        since=now,
    )
    session.add(task)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="takedown.opened",
        subject=f"photo:{publication.photo_id}",
        details={"task": task.id, "publication": publication.id, "where": publication.target},
    )
    return task


def live_publications(session: Session, person_id: int | None = None) -> list[Publication]:
    """Publications still live: copies in our stores not taken down, external ones without a task.

    With `person_id`, only those of photos whose recorded faces name that person as a candidate or
    were identified as them by a reviewer.
    """
    query = select(Publication).where(Publication.taken_down_at.is_(None)).order_by(Publication.id)
    if person_id is not None:
        photos = (
            select(Decision.photo_id)
            .join(Face, Face.decision_id == Decision.id)
            .where(
                or_(
                    Face.person_id == person_id,
                    Face.second_person_id == person_id,
                    Face.reviewed_person_id == person_id,
                )
            )
        )
        query = query.where(Publication.photo_id.in_(photos))
    return list(session.scalars(query))


def settings_as_published(settings: Settings, publication: Publication) -> Settings:
    """`settings` with the publication's channel at the size its copy was made at.

    A copy is re-decided for what it shows: raising a channel's output size later must not make
    an existing smaller copy read as `analysis_too_coarse`. Copies from before the size was kept
    are decided at today's size.
    """
    if publication.long_edge is None or settings.long_edge(publication.channel) == (
        publication.long_edge or None
    ):
        return settings
    # Later entries win (`Settings.long_edge` reads them into a dict).
    sizes = (*settings.output_sizes, (publication.channel, publication.long_edge))
    return dataclasses.replace(settings, output_sizes=sizes)


def recheck_publications(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    person_id: int | None = None,
) -> TakedownReport:
    """Decide every live publication again (of one person's photos, or all) and take down what fails.

    Copies are deleted concurrently once every decision is made. Raises StorageError when a store
    refuses any delete: the job is retried, and copies already gone are then simply recorded.
    """
    report = TakedownReport()
    if person_id is not None:
        lock_people(session, [person_id])
    failing: list[tuple[Publication, list[str]]] = []
    for publication in live_publications(session, person_id):
        report.checked += 1
        fresh = recheck(
            session, publication.decision_id, settings=settings_as_published(settings, publication), now=now
        )
        if fresh.verdict == policy.PUBLISHABLE:
            report.kept += 1
        elif publication.external:
            who = person_id if person_id is not None else _blocking_person(fresh)
            task = take_down(session, publication, reasons=fresh.reasons, now=now, actor=actor, person_id=who)
            if task is not None:
                report.tasks.append(task.id)
        else:
            failing.append((publication, list(fresh.reasons)))
    errors = _delete_copies([p for p, _ in failing])
    for publication, reasons in failing:
        if publication.id not in errors:
            _record_takedown(session, publication, reasons, now=now, actor=actor)
            report.deleted.append(publication.id)
    if errors:
        # The copies that did go are deleted again (harmlessly) and recorded when the job is retried.
        raise StorageError(
            f"{len(errors)} copies could not be taken down: "
            + "; ".join(f"publication {pid}: {exc}" for pid, exc in sorted(errors.items()))
        )
    return report


def _blocking_person(verdict: policy.PhotoVerdict) -> int | None:
    """The first identified person without consent now, whose face keeps the photo from its channel."""
    for face in verdict.faces:
        if face.person is not None and face.outcome == "no_consent":
            return int(face.person)
    return None


def list_tasks(session: Session, *, open_only: bool) -> list[TakedownTask]:
    """Takedown tasks, oldest first; only those not yet done with `open_only`."""
    query = select(TakedownTask).order_by(TakedownTask.id)
    if open_only:
        query = query.where(TakedownTask.done_at.is_(None))
    return list(session.scalars(query))


def complete_task(session: Session, task_id: int, *, note: str, now: datetime, actor: str) -> TakedownTask:
    """Mark an external takedown done with a note; raises RecordNotFoundError, InvalidInputError."""
    task = session.get(TakedownTask, task_id)
    if task is None:
        raise RecordNotFoundError("takedown task", task_id)
    if not note.strip():
        raise InvalidInputError("say what was done (--note)", field="note")
    if task.done_at is not None:
        raise InvalidInputError(f"takedown task {task_id} was already done on {task.done_at.date()}")
    task.done_at, task.done_by, task.note = now, actor, note.strip()
    if task.publication_id is not None:
        publication = session.get(Publication, task.publication_id)
        if publication is not None and publication.taken_down_at is None:
            publication.taken_down_at = now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="takedown.done",
        subject=f"photo:{task.photo_id}",
        details={"task": task.id, "where": task.target, "note": task.note},
    )
    return task
