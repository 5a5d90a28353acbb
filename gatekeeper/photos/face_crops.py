"""Face crops for reviewers: cut from the private original and re-encoded, so no metadata survives.

A crop is made on request and never stored. The reference crop of a person is a face in another
photo that a reviewer identified as them (or, failing that, one matched to them with confidence):
enrolment photos themselves are never kept, only their hash.
"""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from consent_db.models import Decision, Face, Photo
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.errors import NotFoundError
from gatekeeper.people.identity import MATCHED_OUTCOMES
from gatekeeper.people.lookup import find_person
from gatekeeper.photos.gate import latest_decision
from gatekeeper.policy import PersonStatus
from gatekeeper.storage import BlobStore

CROP_EDGE = 240
MARGIN = 0.3


def crop_jpeg(original: bytes, box: tuple[int, int, int, int], *, settings: Settings) -> bytes:
    """A JPEG of `box` (pixels of the upright photo) with a margin, at most CROP_EDGE px, no metadata.

    Raises MediaError when the original cannot be decoded.
    """
    pixels = media.decode(original, max_pixels=settings.media.max_pixels).pixels
    height, width = pixels.shape[:2]
    left, top, right, bottom = box
    pad_x, pad_y = int((right - left) * MARGIN), int((bottom - top) * MARGIN)
    region = pixels[
        max(0, top - pad_y) : min(height, bottom + pad_y), max(0, left - pad_x) : min(width, right + pad_x)
    ]
    image = Image.fromarray(region)
    image.thumbnail((CROP_EDGE, CROP_EDGE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # A fresh encode from pixels: no EXIF, XMP, ICC or comment block is written.
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def face_crop(
    session: Session, photo_id: int, position: int, *, originals: BlobStore, settings: Settings
) -> bytes:
    """The crop of face `position` on the photo's latest decision.

    Raises RecordNotFoundError (no such photo), NotFoundError (no such face, or the original is no
    longer kept), MediaError.
    """
    decision = latest_decision(session, photo_id)
    face = next((f for f in decision.faces if f.position == position), None)
    if face is None:
        raise NotFoundError(f"photo {photo_id} has no face {position}")
    key = decision.photo.original_key
    if key is None:
        raise NotFoundError(f"the original of photo {photo_id} is no longer kept")
    return crop_jpeg(originals.get(key), (face.left, face.top, face.right, face.bottom), settings=settings)


def reference_face(session: Session, external_id: str, *, exclude_photo: int | None = None) -> Face | None:
    """A face showing `external_id` in a photo whose original is kept, newest first; None if none.

    A reviewer's identification comes first, then a confident match (not uncertain, not overruled).
    Raises PersonNotFoundError.
    """
    person = find_person(session, external_id)
    if person.status == PersonStatus.ERASED:
        return None
    reviewed = and_(Face.review_resolution == "person", Face.reviewed_person_id == person.id)
    # The query form of identity.face_identity: a nearest template of an unknown face is not them.
    matched = and_(
        Face.review_resolution.is_(None), Face.person_id == person.id, Face.outcome.in_(MATCHED_OUTCOMES)
    )
    query = (
        select(Face)
        .join(Decision, Face.decision_id == Decision.id)
        .join(Photo, Decision.photo_id == Photo.id)
        .where(or_(reviewed, matched), Photo.original_key.is_not(None))
    )
    if exclude_photo is not None:
        query = query.where(Photo.id != exclude_photo)
    for condition in (reviewed, matched):
        found = session.scalar(query.where(condition).order_by(Face.id.desc()).limit(1))
        if found is not None:
            return found
    return None


def reference_crop(
    session: Session,
    external_id: str,
    *,
    originals: BlobStore,
    settings: Settings,
    exclude_photo: int | None = None,
) -> bytes:
    """The crop of `reference_face`; raises NotFoundError when there is none, PersonNotFoundError."""
    face = reference_face(session, external_id, exclude_photo=exclude_photo)
    key = face.decision.photo.original_key if face is not None else None
    if face is None or key is None:
        raise NotFoundError(f"no other photo shows {external_id}")
    return crop_jpeg(originals.get(key), (face.left, face.top, face.right, face.bottom), settings=settings)
