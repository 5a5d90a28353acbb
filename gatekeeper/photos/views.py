"""What a photo's and a batch's pages show, as facts: each face's outcome, its reasons, previews.

Identity and safeguarding reasons are masked by the viewer's role (`people.identity`). The words
and colours they are shown in are the web app's (web/wording.py).
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db.models import ConsentRecord, Decision, Face, Job, Person, Photo, UploadBatch, UploadItem
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import (
    MediaError,
    RecordNotFoundError,
)
from gatekeeper.people.identity import (
    CANNOT_BE_PUBLISHED,
    SYSTEM,
    masked_reasons,
    sees_safeguarding,
    stored_identity,
)
from gatekeeper.photos.gate import recheck
from gatekeeper.storage import BlobStore

PREVIEW_EDGE = 1280
THUMBNAIL_EDGE = 240

# --- following photos to their verdicts -------------------------------------------------------------


@dataclass(frozen=True)
class FaceView:
    """One face as a member of staff may see it: number (from 1), box, outcome, who, why."""

    number: int
    box: tuple[int, int, int, int]
    outcome: str
    person: str | None  # external id
    person_name: str | None
    distance: float | None
    covered: bool
    reasons: tuple[str, ...]
    # When the person withdrew or objected for the photo's channel, if a reason says they did.
    withdrawn_on: datetime | None = None


@dataclass(frozen=True)
class PhotoView:
    """A photo's progress and, once gated, its verdict, faces and caption.

    The verdict and faces are those recorded by the gate, or, when the view was asked for `now`,
    decided again against the consent in force then; `checked_verdict` is always the gate's.
    """

    id: int
    channel: str
    status: str
    verdict: str | None
    reasons: tuple[str, ...]
    faces: tuple[FaceView, ...]
    caption: str | None
    width: int | None
    height: int | None
    decision_id: int | None
    position: int | None = None
    checked_verdict: str | None = None
    # A photo that could not be read: the refusal's plain words (what to do) and reason code.
    error: str | None = None
    error_code: str | None = None
    # The name it was uploaded under, only for the member of staff who uploaded it.
    file_name: str | None = None

    @property
    def refused(self) -> bool:
        """Whether the file could not be read as a photo (no preview, no faces to show)."""
        return self.status == "done" and policy.UNREADABLE_IMAGE in self.reasons and not self.faces


def _job_status(job: Job | None) -> str:
    if job is None:
        return "queued"
    return {"queued": "queued", "running": "processing", "done": "done", "failed": "failed"}[job.state]


def _withdrawn_on(session: Session, person_id: int, channel: str) -> datetime | None:
    records = session.scalars(
        select(ConsentRecord).where(
            ConsentRecord.person_id == person_id,
            ConsentRecord.kind == "publication",
            ConsentRecord.action.in_(("withdraw", "object")),
        )
    )
    target = policy.Channel(channel)
    found = [r.at for r in records if target.covered_by(r.channel)]
    return max(found) if found else None


def _face_view(
    session: Session,
    face: Face,
    channel: str,
    people: dict[int, Person],
    see_safeguarding: bool,
    now_face: policy.FaceVerdict | None = None,
    viewer: str = SYSTEM,
) -> FaceView:
    """How staff may see a face: as recorded by the gate, or as decided again (`now_face`)."""
    number = face.position + 1
    outcome = now_face.outcome if now_face is not None else face.outcome
    covered = now_face.covered if now_face is not None else face.covered
    # Only a confident match or a reviewer's identification names the face (never a nearest template).
    identity = stored_identity(face, viewer=viewer, outcome=outcome)
    person = people.get(identity.person) if identity.person is not None else None
    # A distance says how near the nearest template is: shown only for the person the face is.
    distance = face.distance if identity.how == "matched" else None
    reasons = tuple(now_face.reasons if now_face is not None else face.reasons)
    box = (face.left, face.top, face.right, face.bottom)
    if policy.SAFEGUARDING in reasons and not see_safeguarding:
        # Nothing that hints at a safeguarding flag: no name, no other reason.
        return FaceView(
            number, box, "no_consent", None, None, None, covered=False, reasons=(CANNOT_BE_PUBLISHED,)
        )
    withdrawn_on = None
    if person is not None and {policy.CONSENT_WITHDRAWN, policy.OBJECTED} & set(reasons):
        withdrawn_on = _withdrawn_on(session, person.id, channel)
    return FaceView(
        number,
        box,
        outcome,
        person.external_id if person is not None else None,
        person.display_name if person is not None else None,
        distance,
        covered,
        reasons,
        withdrawn_on,
    )


def _latest_items(session: Session, photo_ids: Sequence[int]) -> dict[int, UploadItem]:
    if not photo_ids:
        return {}
    rows = session.scalars(
        select(UploadItem).where(UploadItem.photo_id.in_(list(photo_ids))).order_by(UploadItem.id)
    )
    return {row.photo_id: row for row in rows if row.photo_id is not None}


def photo_view(
    session: Session,
    photo_id: int,
    *,
    role: str,
    item: UploadItem | None = None,
    with_faces: bool = True,
    now: datetime | None = None,
    settings: Settings | None = None,
    viewer: str | None = None,
) -> PhotoView:
    """The photo's status (from its latest upload's gate job) and verdict, for `role`: as the gate
    recorded it, or with `now` and `settings` decided again against the consent in force at `now`
    (a withdrawal since shows at once). The name it was uploaded under is given only when `viewer`
    (an actor) uploaded its batch.

    Raises RecordNotFoundError.
    """
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise RecordNotFoundError("photo", photo_id)
    if item is None:
        item = _latest_items(session, [photo_id]).get(photo_id)
    job = session.get(Job, item.job_id) if item is not None and item.job_id is not None else None
    decision = session.scalar(
        select(Decision).where(Decision.photo_id == photo_id).order_by(Decision.id.desc()).limit(1)
    )
    if item is not None and item.job_id is not None:
        status = _job_status(job)
    else:
        status = "done" if decision is not None else "queued"
    if status == "done" and decision is None:
        status = "failed"
    see = sees_safeguarding(role)
    faces: tuple[FaceView, ...] = ()
    file_name = _file_name(item, viewer)
    if status != "done" or decision is None:
        return PhotoView(
            photo.id, photo.channel, status, None, (), (), photo.caption, photo.width, photo.height, None,
            item.position if item is not None else None, file_name=file_name,
        )  # fmt: skip
    verdict, reasons = decision.verdict, tuple(decision.reasons)
    now_faces: tuple[policy.FaceVerdict | None, ...] = (None,) * len(decision.faces)
    if now is not None and settings is not None:
        fresh = recheck(session, decision.id, settings=settings, now=now)
        verdict, reasons = fresh.verdict, fresh.reasons
        if len(fresh.faces) == len(decision.faces):
            now_faces = fresh.faces
    if with_faces:
        ids = {pid for f in decision.faces for pid in (f.person_id, f.reviewed_person_id) if pid is not None}
        people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(ids)))} if ids else {}
        faces = tuple(
            _face_view(session, f, photo.channel, people, see, now_face, role)
            for f, now_face in zip(decision.faces, now_faces, strict=True)
        )
    return PhotoView(
        photo.id,
        photo.channel,
        status,
        verdict,
        masked_reasons(reasons, role),
        faces,
        photo.caption,
        photo.width,
        photo.height,
        decision.id,
        item.position if item is not None else None,
        checked_verdict=decision.verdict,
        error=decision.error,
        error_code=decision.error_code,
        file_name=file_name,
    )


def _file_name(item: UploadItem | None, viewer: str | None) -> str | None:
    """The uploaded file's name, only for whoever uploaded its batch."""
    if item is None or viewer is None or item.batch.created_by != viewer:
        return None
    return item.file_name


@dataclass(frozen=True)
class BatchView:
    """A batch with each photo's progress and verdict, and counts."""

    id: int
    channel: str
    created_at: datetime
    created_by: str
    refused: int
    photos: tuple[PhotoView, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Photos per verdict (and per status while not yet decided)."""
        counts: Counter[str] = Counter(p.verdict or p.status for p in self.photos)
        return dict(counts)

    @property
    def reasons(self) -> list[str]:
        """Every reason of the batch's verdicts, for filtering."""
        return sorted({r for p in self.photos for r in p.reasons})

    @property
    def finished(self) -> bool:
        return all(p.status in ("done", "failed", "deleted") for p in self.photos)


def batch_view(
    session: Session, batch_id: int, *, role: str, with_faces: bool = False, viewer: str | None = None
) -> BatchView:
    """The batch's photos and their verdicts so far (with the names they were uploaded under when
    `viewer` uploaded the batch); raises RecordNotFoundError."""
    batch = session.get(UploadBatch, batch_id)
    if batch is None:
        raise RecordNotFoundError("batch", batch_id)
    photos = []
    for item in batch.items:
        if item.photo_id is None:
            photos.append(
                PhotoView(0, batch.channel, "deleted", None, (), (), None, None, None, None, item.position)
            )
            continue
        photos.append(
            photo_view(session, item.photo_id, role=role, item=item, with_faces=with_faces, viewer=viewer)
        )
    return BatchView(
        batch.id, batch.channel, batch.created_at, batch.created_by, batch.refused, tuple(photos)
    )


# --- previews and clean copies ------------------------------------------------------------------


def preview(originals: BlobStore, photo: Photo, settings: Settings, *, edge: int = PREVIEW_EDGE) -> bytes:
    """A private preview (or, with a small `edge`, a thumbnail): the original decoded upright,
    downscaled, re-encoded as a JPEG with no metadata at all. Raises MediaError, BlobNotFoundError."""
    if photo.original_key is None:
        raise MediaError("no original was kept for this photo")
    source = media.decode_source(
        originals.get(photo.original_key), max_pixels=settings.media.max_pixels, long_edge=edge
    )
    out = io.BytesIO()
    # Pillow writes no EXIF, XMP, ICC or comment unless asked: the preview carries pixels only.
    Image.fromarray(source.image.pixels).save(out, format="JPEG", quality=82)
    return out.getvalue()
