"""Publishing a gated photo, recording placements outside our stores, and taking copies down.

Every use case takes ids, so a job can run it. Publishing decides again at that moment from the
recorded faces and today's consent; the clean copy is read from the gate's result or rebuilt from
the private original, written under an opaque key and made visible only once its record commits.
Taking down deletes the key (every version, on S3) before the record says so; an external
placement cannot be deleted by us and becomes a takedown task for staff.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Decision, Job, Person, Photo, Publication
from consent_db.session import after_commit, after_rollback
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import check_channel
from gatekeeper.errors import (
    BlobNotFoundError,
    InvalidInputError,
    MediaError,
)
from gatekeeper.faces import FaceEngine
from gatekeeper.photos.gate import latest_decision, recheck
from gatekeeper.queueing import JobKind
from gatekeeper.storage import BlobStore, opaque_name


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


def check_photo_channel(settings: Settings, photo: Photo, channel: str) -> None:
    check_channel(settings.policy, channel)
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
        original, max_pixels=settings.media.max_pixels, long_edge=settings.media.long_edge(channel)
    )
    # Faces are recorded in pixels of the full upright photo; the copy may be smaller.
    boxes = [_scaled_box((f.left, f.top, f.right, f.bottom), source) for f in decision.faces if f.covered]
    if not boxes:
        return media.sanitise(
            original,
            max_pixels=settings.media.max_pixels,
            jpeg_quality=settings.media.jpeg_quality,
            source=source,
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
        jpeg_quality=settings.media.jpeg_quality,
        icc_profile=source.icc_profile,
    )
    again = engine.analyse(media.decode(clean.data, max_pixels=settings.media.max_pixels).pixels)
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
    check_photo_channel(settings, photo, channel)
    lock_people(session, _people_in(decision))
    fresh = recheck(session, decision.id, settings=settings, now=now, channel=channel)
    if once and fresh.verdict == policy.Verdict.PUBLISHABLE:
        existing = _live_in(session, store, photo_id, channel)
        if existing is not None:
            return PublishOutcome(
                photo_id, fresh.verdict, fresh.reasons, existing.id, existing.store, existing.key, reused=True
            )
    if fresh.verdict == policy.Verdict.PUBLISHABLE and clean is None:
        try:
            if photo.original_key is None:
                raise MediaError("no original was kept")
            clean = rebuild_clean(
                originals.get(photo.original_key), decision, channel=channel, settings=settings, engine=engine
            )
        except (MediaError, BlobNotFoundError) as exc:
            fresh = policy.PhotoVerdict(
                policy.Verdict.BLOCKED, (*fresh.reasons, policy.CLEAN_COPY_FAILED), fresh.faces
            )
            audit.append(
                session,
                at=now,
                actor=actor,
                action=AuditAction.PUBLICATION_REFUSED,
                subject=f"photo:{photo_id}",
                details={"decision": decision.id, "error": str(exc), "reasons": list(fresh.reasons)},
            )
            return PublishOutcome(photo_id, fresh.verdict, fresh.reasons)
    if fresh.verdict != policy.Verdict.PUBLISHABLE:
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.PUBLICATION_REFUSED,
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
        long_edge=settings.media.long_edge(channel) or 0,
    )
    session.add(publication)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.PHOTO_PUBLISHED,
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
