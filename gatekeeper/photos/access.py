"""Who may open which batch and photo: an uploader only their own, reviewers and admins all.

An uploader's share is what they uploaded: the batches they made and the photos in them (a photo
uploaded again by someone else is theirs too: they hold the file). Reviewers, consent admins and
admins see every batch and photo. Anything outside a viewer's share does not exist for them: the
web app and the API answer 404, exactly as for an id that was never used.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from consent_db.models import Photo, UploadBatch, UploadItem
from gatekeeper.errors import RecordNotFoundError
from gatekeeper.staff.roles import Permission, Role, may


def may_see_batch(session: Session, batch_id: int, *, role: str, actor: str) -> bool:
    """True when `actor` (of `role`) may open batch `batch_id` (False, too, when there is none)."""
    batch = session.get(UploadBatch, batch_id)
    if batch is None:
        return False
    return may(role, Permission.SEE_ALL_UPLOADS) or (role == Role.UPLOADER and batch.created_by == actor)


def may_see_photo(session: Session, photo_id: int, *, role: str, actor: str) -> bool:
    """True when `actor` (of `role`) may open photo `photo_id` (False, too, when there is none)."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        return False
    if may(role, Permission.SEE_ALL_UPLOADS):
        return True
    if role != Role.UPLOADER:
        return False
    if photo.uploaded_by == actor:
        return True
    return bool(
        session.scalar(
            select(
                exists()
                .where(UploadItem.photo_id == photo_id)
                .where(UploadItem.batch_id == UploadBatch.id)
                .where(UploadBatch.created_by == actor)
            )
        )
    )


def check_batch(session: Session, batch_id: int, *, role: str, actor: str) -> None:
    """Raise RecordNotFoundError unless `actor` may open the batch."""
    if not may_see_batch(session, batch_id, role=role, actor=actor):
        raise RecordNotFoundError("batch", batch_id)


def check_photo(session: Session, photo_id: int, *, role: str, actor: str) -> None:
    """Raise RecordNotFoundError unless `actor` may open the photo."""
    if not may_see_photo(session, photo_id, role=role, actor=actor):
        raise RecordNotFoundError("photo", photo_id)


def visible_batches(session: Session, *, role: str, actor: str, limit: int = 20) -> list[UploadBatch]:
    """The newest batches `actor` may open."""
    stmt = select(UploadBatch).order_by(UploadBatch.id.desc()).limit(limit)
    if not may(role, Permission.SEE_ALL_UPLOADS):
        stmt = stmt.where(UploadBatch.created_by == actor)
    return list(session.scalars(stmt))
