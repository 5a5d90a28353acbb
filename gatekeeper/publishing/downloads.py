"""Clean copies downloaded by staff, one photo or a whole batch.

A download is a publication path: the consent decision is made again at that moment
(`photos.gate.recheck`), the copy rebuilt from the original, and the download recorded as a
placement outside our stores, so a later withdrawal opens a takedown task for it.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Decision, Photo, UploadBatch
from consent_db.session import unit_of_work
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import (
    BlobNotFoundError,
    MediaError,
    RecordNotFoundError,
)
from gatekeeper.photos.gate import latest_decision, recheck
from gatekeeper.photos.intake import EngineFactory
from gatekeeper.photos.status import PhotoStatus
from gatekeeper.publishing.placements import record_external
from gatekeeper.publishing.publish import lock_people, rebuild_clean
from gatekeeper.storage import BlobStore, opaque_name


@dataclass(frozen=True)
class CleanDownload:
    """The outcome of asking for a clean copy now: the copy under an opaque name, or the reasons."""

    photo_id: int
    verdict: str
    reasons: tuple[str, ...]
    name: str | None = None
    data: bytes | None = None
    media_type: str | None = None


def clean_download(
    session: Session,
    photo_id: int,
    *,
    settings: Settings,
    originals: BlobStore,
    engine: EngineFactory,
    now: datetime,
    actor: str,
) -> CleanDownload:
    """Decide again now and, if the photo passes, its clean copy, recorded as a placement.

    A refusal is a value, audited. Raises RecordNotFoundError.
    """
    decision = latest_decision(session, photo_id)
    return _release(
        session,
        decision,
        lambda: _build(decision, settings=settings, originals=originals, engine=engine),
        settings=settings,
        now=now,
        actor=actor,
    )


def _build(
    decision: Decision, *, settings: Settings, originals: BlobStore, engine: EngineFactory
) -> media.CleanCopy | None:
    """The clean copy of a decision's photo, rebuilt from its original; None if it cannot be made."""
    photo = decision.photo
    try:
        if photo.original_key is None:
            raise MediaError("no original was kept")
        covered = any(f.covered for f in decision.faces)
        return rebuild_clean(
            originals.get(photo.original_key),
            decision,
            channel=photo.channel,
            settings=settings,
            engine=engine() if covered else None,
        )
    except (MediaError, BlobNotFoundError):
        return None


def _release(
    session: Session,
    decision: Decision,
    build: Callable[[], media.CleanCopy | None],
    *,
    settings: Settings,
    now: datetime,
    actor: str,
) -> CleanDownload:
    """With the people shown locked, decide again now; record the copy `build` gives as a placement,
    or the refusal (audited)."""
    photo = decision.photo
    lock_people(
        session,
        {p for f in decision.faces for p in (f.person_id, f.second_person_id, f.reviewed_person_id) if p},
    )
    fresh = recheck(session, decision.id, settings=settings, now=now)
    reasons = fresh.reasons
    data: media.CleanCopy | None = None
    if fresh.verdict == policy.Verdict.PUBLISHABLE:
        data = build()
        if data is None:
            reasons = (*reasons, policy.CLEAN_COPY_FAILED)
    if data is None:
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.PUBLICATION_REFUSED,
            subject=f"photo:{photo.id}",
            details={"decision": decision.id, "reasons": list(reasons), "via": "download"},
        )
        verdict = fresh.verdict if fresh.verdict != policy.Verdict.PUBLISHABLE else policy.Verdict.BLOCKED
        return CleanDownload(photo.id, verdict, reasons)
    name = opaque_name(data.extension)
    record_external(
        session,
        photo.id,
        channel=photo.channel,
        where=f"downloaded by {actor} as {name}",
        settings=settings,
        now=now,
        actor=actor,
    )
    return CleanDownload(photo.id, fresh.verdict, reasons, name, data.data, data.media_type)


@dataclass(frozen=True)
class BatchCopies:
    """The clean copies of a batch's publishable photos, built but not yet given out: by photo id,
    the decision each was built from and the copy (None: it could not be made)."""

    batch_id: int
    photo_ids: tuple[int, ...]
    built: dict[int, tuple[int, media.CleanCopy | None]]


def build_batch_copies(
    sessions: sessionmaker[Session],
    batch_id: int,
    *,
    settings: Settings,
    originals: BlobStore,
    engine: EngineFactory,
    now: datetime,
) -> BatchCopies:
    """Build the clean copy of every photo of the batch that passes at `now`, outside any transaction.

    Each photo's decision is read in a short unit of work of its own and its copy built after it,
    so on SQLite (where every transaction holds the write lock) a withdrawal or an upload never
    waits for the copies. Nothing is given out or recorded: `release_batch` does that, deciding
    again. Raises RecordNotFoundError.
    """
    with unit_of_work(sessions) as session:
        batch = session.get(UploadBatch, batch_id)
        if batch is None:
            raise RecordNotFoundError("batch", batch_id)
        photo_ids: list[int] = []
        for item in batch.items:
            photo = session.get(Photo, item.photo_id) if item.photo_id is not None else None
            if photo is not None and photo.status == PhotoStatus.PUBLISHABLE and photo.id not in photo_ids:
                photo_ids.append(photo.id)
    built: dict[int, tuple[int, media.CleanCopy | None]] = {}
    for photo_id in photo_ids:
        with unit_of_work(sessions) as session:
            decision = latest_decision(session, photo_id)
            verdict = recheck(session, decision.id, settings=settings, now=now).verdict
            _ = (decision.photo, list(decision.faces))  # loaded: the copy is built outside the unit
        if verdict == policy.Verdict.PUBLISHABLE:
            copy = _build(decision, settings=settings, originals=originals, engine=engine)
            built[photo_id] = (decision.id, copy)
    return BatchCopies(batch_id, tuple(photo_ids), built)


def release_batch(
    session: Session,
    copies: BatchCopies,
    *,
    settings: Settings,
    originals: BlobStore,
    engine: EngineFactory,
    now: datetime,
    actor: str,
) -> tuple[bytes, int, int]:
    """A zip of the batch's clean copies that pass at `now`, under opaque names, each recorded.

    With the people shown locked, every photo is decided again, so a withdrawal that committed
    while the copies were built keeps its photos out. Returns the zip, how many copies it holds
    and how many photos did not pass now (each refusal audited).
    """
    out = io.BytesIO()
    held = refused = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for photo_id in copies.photo_ids:
            decision = latest_decision(session, photo_id)
            ready = copies.built.get(photo_id)

            def build(
                decision: Decision = decision, ready: tuple[int, media.CleanCopy | None] | None = ready
            ) -> media.CleanCopy | None:
                # A copy built from an older decision (a review since) is built again from this one.
                if ready is not None and ready[0] == decision.id:
                    return ready[1]
                return _build(decision, settings=settings, originals=originals, engine=engine)

            got = _release(session, decision, build, settings=settings, now=now, actor=actor)
            if got.data is None or got.name is None:
                refused += 1
                continue
            info = zipfile.ZipInfo(got.name, date_time=(1980, 1, 1, 0, 0, 0))
            archive.writestr(info, got.data)
            held += 1
    return out.getvalue(), held, refused
