"""A reviewer's word on a face: confirming who it is, and learning from it when consent allows."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.models import Face, FaceTemplate
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.errors import FaceNotFoundError, InvalidInputError
from gatekeeper.faces import FaceEngine
from gatekeeper.services.consent_state import matching_reasons
from gatekeeper.services.dpia import matching_enabled
from gatekeeper.services.enrolment import add_template
from gatekeeper.services.people import find_person
from gatekeeper.storage import BlobStore

MIN_BOX_OVERLAP = 0.5


def confirm_face(
    session: Session,
    face_id: int,
    external_id: str,
    *,
    engine: FaceEngine,
    originals: BlobStore,
    settings: Settings,
    now: datetime,
    actor: str,
) -> FaceTemplate | None:
    """Record that a reviewer confirmed face `face_id` shows `external_id`.

    With the person's biometric consent, the face also becomes a new template (re-encoded from the
    private original; face encodings are never stored otherwise). Returns the template, or None
    without biometric consent. Raises FaceNotFoundError, PersonNotFoundError, InvalidInputError.
    """
    face = session.get(Face, face_id)
    if face is None:
        raise FaceNotFoundError(face_id)
    person = find_person(session, external_id)
    if person.status == "erased":
        raise InvalidInputError(f"{external_id} was erased")
    face.reviewer_outcome, face.reviewed_by, face.reviewed_at = "confirmed", actor, now
    audit.append(
        session,
        at=now,
        actor=actor,
        action="face.confirmed",
        subject=f"face:{face.id}",
        details={"person": person.id, "photo": face.decision.photo_id},
    )
    if matching_reasons(person, settings, now) or not matching_enabled(session, settings):
        return None
    photo = face.decision.photo
    if photo.original_key is None:
        raise InvalidInputError("the photo's original is no longer kept; it cannot be enrolled")
    pixels = media.decode(originals.get(photo.original_key), max_pixels=settings.max_pixels).pixels
    box = (face.left, face.top, face.right, face.bottom)
    found = [f for f in engine.analyse(pixels).faces if _overlap(f.box, box) >= MIN_BOX_OVERLAP]
    if len(found) != 1 or found[0].encoding is None:
        raise InvalidInputError(
            "the confirmed face cannot be enrolled: it is too small or unclear to encode", field="face"
        )
    source = hashlib.sha256(f"{photo.sha256}:{box}".encode()).hexdigest()
    if any(t.source_sha256 == source and t.model == engine.model for t in person.templates):
        return None
    return add_template(
        session,
        person,
        found[0].encoding,
        model=engine.model,
        source_sha256=source,
        now=now,
        actor=actor,
        details={"from_face": face.id},
    )


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (left, top, right, bottom) boxes."""
    inter_w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
