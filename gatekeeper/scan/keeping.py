"""How long a scan keeps what it downloaded: the report needs each picture's copy while it is read and
reviewed, not after. `GATEKEEPER_SCAN_KEEP_DAYS` after the last scan that found a picture, its
original is deleted from the private store; its photo, decision, faces and placements stay, so a
later withdrawal or expiry still opens takedown tasks for it (decided from the stored faces).

A picture waiting for review keeps its copy (the reviewer needs to see the face), and so does a
photo that is also the gate's own (uploaded, or published by us): it follows the retention schedule.

An archive uploaded through the page is deleted when its run ends (`runner`); one whose run never
ended (its job lost, the upload cut short) is deleted by the purge a day later
(`stale_uploads`), unless a run still waits for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Photo, Publication, ScanFinding, ScanRun, ScanSource, UploadItem
from gatekeeper.photos.status import PhotoStatus
from gatekeeper.storage import BlobStore


def originals_due(session: Session, *, keep_days: int, now: datetime) -> list[int]:
    """Photos found only by scans whose last scan is `keep_days` old, still holding an original."""
    last_found = (
        select(ScanFinding.photo_id, func.max(ScanRun.started_at).label("last"))
        .join(ScanRun, ScanFinding.run_id == ScanRun.id)
        .where(ScanFinding.photo_id.is_not(None))
        .group_by(ScanFinding.photo_id)
        .subquery()
    )
    uploaded = select(UploadItem.photo_id).where(UploadItem.photo_id.is_not(None))
    ours = select(Publication.photo_id).where(Publication.external.is_(False))
    query = (
        select(Photo.id)
        .join(last_found, last_found.c.photo_id == Photo.id)
        .where(
            last_found.c.last <= now - timedelta(days=keep_days),
            Photo.original_key.is_not(None),
            Photo.status != PhotoStatus.REVIEW,
            Photo.id.not_in(uploaded),
            Photo.id.not_in(ours),
        )
        .order_by(Photo.id)
    )
    return list(session.scalars(query))


def delete_originals(
    session: Session, originals: BlobStore, *, keep_days: int, now: datetime, actor: str
) -> list[int]:
    """Delete the originals of `originals_due` (audited); the photos' ids.

    An original shared with another photo row (the same file on another channel) is left to that
    row. Raises StorageError when the store refuses; what was deleted before stays recorded.
    """
    done: list[int] = []
    for photo_id in originals_due(session, keep_days=keep_days, now=now):
        photo = session.get(Photo, photo_id)
        if photo is None or photo.original_key is None:
            continue
        shared = session.scalar(
            select(func.count())
            .select_from(Photo)
            .where(Photo.sha256 == photo.sha256, Photo.id != photo.id, Photo.original_key.is_not(None))
        )
        if not shared:
            originals.delete(photo.original_key)
        photo.original_key = None
        done.append(photo_id)
    if done:
        session.flush()
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.SCAN_ORIGINALS_DELETED,
            subject="scan:originals",
            details={"photos": done, "keep_days": keep_days},
        )
    return done


# An uploaded archive no run is waiting for is deleted once it is this old.
UPLOAD_GRACE = timedelta(days=1)


def stale_uploads(session: Session, folder: Path, *, now: datetime) -> list[Path]:
    """The files in the uploads folder older than UPLOAD_GRACE that no queued or running run reads."""
    if not folder.is_dir():
        return []
    waiting = set(
        session.scalars(
            select(ScanSource.location)
            .join(ScanRun, ScanRun.source_id == ScanSource.id)
            .where(ScanRun.state.in_(("queued", "running")))
        )
    )
    stale = []
    for path in sorted(folder.iterdir()):
        if not path.is_file() or str(path) in waiting or str(path.resolve()) in waiting:
            continue
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if now - modified >= UPLOAD_GRACE:
            stale.append(path)
    return stale
