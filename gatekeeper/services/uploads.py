"""Uploading photos in batches (web app, API), following them to their verdicts, and clean downloads.

An upload keeps each photo's original in the private store, records the photo (status `pending`)
and a gate job in the caller's unit of work, and returns at once: the face analysis runs in the
gate job (workers/), never in a request. A zip is opened with limits (members, total size, ratio)
and every member name checked; each refused file gets its own reason. The name each photo was
uploaded under is kept with its place in the batch, shown only to the member of staff who uploaded
it, and never given to a published copy (those get opaque names).

A clean copy downloaded by a member of staff is a publication path: the consent decision is made
again at that moment (services/gate.recheck), the copy rebuilt from the original, and the download
recorded as a placement outside our stores, so a later withdrawal opens a takedown task for it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from consent_db import audit
from consent_db.models import ConsentRecord, Decision, Face, Job, Person, Photo, UploadBatch, UploadItem
from consent_db.session import unit_of_work
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import (
    BlobNotFoundError,
    EmptyFileError,
    FileTooLargeError,
    InvalidInputError,
    MediaError,
    RecordNotFoundError,
)
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import AGAIN, Refusal, explain
from gatekeeper.services import idempotency
from gatekeeper.services.consent_state import check_channel
from gatekeeper.services.gate import original_key, recheck
from gatekeeper.services.identity import SYSTEM, stored_identity
from gatekeeper.services.publish import latest_decision, lock_people, rebuild_clean, record_external
from gatekeeper.storage import BlobStore, opaque_name

MAX_FILES = 500
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL = 2 * 1024 * 1024 * 1024
# A photo compresses little: a member that unpacks to more than this many times its packed size is
# refused as a zip bomb before it is read.
MAX_ZIP_RATIO = 100
MAX_CAPTION = 2000
PREVIEW_EDGE = 1280
THUMBNAIL_EDGE = 240
ZIP_MAGIC = b"PK\x03\x04"
STATUSES = ("queued", "processing", "done", "failed", "deleted")
# Only these roles may learn that a face is blocked by a safeguarding flag.
SAFEGUARDING_ROLES = frozenset({"consent_admin", "admin"})
CANNOT_BE_PUBLISHED = "cannot_be_published"

EnqueueGate = Callable[[Session, str, str, str | None], int]
EngineFactory = Callable[[], FaceEngine]


@dataclass(frozen=True)
class UploadFile:
    """One file as received: its name (shown only to its uploader, never published) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class Refused:
    """A file refused at upload, and why, in words for the uploader, with its reason code."""

    name: str
    reason: str
    code: str = "invalid_zip"


@dataclass(frozen=True)
class UploadResult:
    """What an upload did: the batch (None when every file was refused), its photos, the refusals."""

    batch_id: int | None
    photo_ids: tuple[int, ...]
    refused: tuple[Refused, ...]


# --- receiving files --------------------------------------------------------------------------------


def _image_problem(data: bytes, settings: Settings) -> Refusal | None:
    """Why a file cannot be kept as a photo (the same code and words as `gate`), or None."""
    try:
        if not data:
            raise EmptyFileError()
        if len(data) > settings.max_bytes:
            raise FileTooLargeError(len(data), settings.max_bytes)
        media.sniff_format(data)
    except MediaError as exc:
        return explain(exc)
    return None


def _unsafe_member(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        name.startswith(("/", "\\"))
        or "\\" in name
        or ".." in path.parts
        or (len(name) > 1 and name[1] == ":")
        or "\x00" in name
    )


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in PurePosixPath(name).parts)


def expand_zip(name: str, data: bytes, settings: Settings) -> tuple[list[UploadFile], list[Refused]]:
    """The photos inside a zip, each member checked; a zip that cannot be opened safely is one refusal.

    Refused: unreadable zips, too many members, a total or a ratio past the limits (zip bombs),
    absolute paths, `..`, drive letters or backslashes in names, encrypted members, nested zips.
    Folders and hidden files (`.DS_Store`, `__MACOSX/`) are skipped without a message.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        return [], [Refused(name, "the zip file cannot be read")]
    if len(members) > MAX_ZIP_MEMBERS:
        return [], [Refused(name, f"the zip holds more than {MAX_ZIP_MEMBERS} files")]
    if sum(m.file_size for m in members) > MAX_ZIP_TOTAL:
        return [], [Refused(name, "the zip unpacks to more than 2 GB")]
    files: list[UploadFile] = []
    refused: list[Refused] = []
    for member in members:
        label = f"{name}: {member.filename}"
        if member.is_dir():
            continue
        if _unsafe_member(member.filename):
            refused.append(Refused(label, "unsafe name in the zip (absolute path or '..'); not read"))
            continue
        if _hidden(member.filename):
            continue
        if member.flag_bits & 0x1:
            refused.append(Refused(label, "the file is encrypted"))
            continue
        if member.file_size > settings.max_bytes:
            too_large = explain(FileTooLargeError(member.file_size, settings.max_bytes))
            refused.append(Refused(label, too_large.words, too_large.code))
            continue
        if member.file_size > MAX_ZIP_RATIO * max(member.compress_size, 1) and member.file_size > 1 << 20:
            refused.append(Refused(label, "the file unpacks far larger than it is packed (a zip bomb?)"))
            continue
        try:
            with archive.open(member) as fh:
                # The header's size may lie: never read more than it promised, plus one byte to tell.
                content = fh.read(member.file_size + 1)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
            refused.append(Refused(label, f"cannot be unpacked ({type(exc).__name__})"))
            continue
        if len(content) != member.file_size:
            refused.append(Refused(label, "the zip's sizes do not match its contents"))
            continue
        if content.startswith(ZIP_MAGIC):
            refused.append(Refused(label, "a zip inside a zip is not opened"))
            continue
        files.append(UploadFile(label, content))
    return files, refused


def receive(uploads: Iterable[UploadFile], settings: Settings) -> tuple[list[UploadFile], list[Refused]]:
    """Photos ready to keep (zips opened) and the files refused, each with its reason."""
    accepted: list[UploadFile] = []
    refused: list[Refused] = []
    for upload in uploads:
        candidates = [upload]
        if upload.data.startswith(ZIP_MAGIC):
            candidates, bad = expand_zip(upload.name, upload.data, settings)
            refused.extend(bad)
        for candidate in candidates:
            problem = _image_problem(candidate.data, settings)
            if problem is None:
                accepted.append(candidate)
            else:
                refused.append(Refused(candidate.name, problem.words, problem.code))
    if len(accepted) > MAX_FILES:
        raise InvalidInputError(f"at most {MAX_FILES} photos in one upload (got {len(accepted)})")
    return accepted, refused


def submit_batch(
    session: Session,
    files: Sequence[UploadFile],
    *,
    channel: str,
    caption: str | None,
    refused: Sequence[Refused] = (),
    settings: Settings,
    originals: BlobStore,
    enqueue_gate: EnqueueGate,
    now: datetime,
    actor: str,
) -> UploadResult:
    """Keep each photo's original, record it and queue its gate job, all in one batch (audited).

    A photo already on record for the channel whose gate job for the same caption is waiting,
    running or done gets that job, not a new one. The caption goes to the gate job, which stores it
    scrubbed of names. Raises UnknownChannelError, InvalidInputError (a caption too long), StorageError.
    """
    check_channel(settings, channel)
    caption = (caption or "").strip() or None
    if caption is not None and len(caption) > MAX_CAPTION:
        raise InvalidInputError(f"the caption is longer than {MAX_CAPTION} characters", field="caption")
    if not files:
        return UploadResult(None, (), tuple(refused))
    batch = UploadBatch(channel=channel, created_at=now, created_by=actor, refused=len(refused))
    session.add(batch)
    photo_ids: list[int] = []
    for position, upload in enumerate(files, start=1):
        sha256 = hashlib.sha256(upload.data).hexdigest()
        photo = idempotency.photo_for_upload(session, sha256, channel, now=now, actor=actor)
        key = photo.original_key or original_key(sha256)
        # Content-addressed: writing the same original twice is harmless; a rolled-back upload
        # leaves an orphan that the purge's orphan sweep deletes.
        originals.put(key, upload.data)
        photo.original_key = key
        # A photo sent again (a client retrying, a batch repeating a file) shares the gate job
        # that decides or decided it: one decision per photo.
        idempotency.lock_photo(session, photo)
        job_id = idempotency.shared_gate_job(session, photo.id, channel, caption)
        if job_id is None:
            job_id = enqueue_gate(session, sha256, channel, caption)
        batch.items.append(
            UploadItem(position=position, photo_id=photo.id, job_id=job_id, file_name=upload.name[:255])
        )
        photo_ids.append(photo.id)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="batch.uploaded",
        subject=f"batch:{batch.id}",
        details={"channel": channel, "photos": photo_ids, "refused": len(refused)},
    )
    return UploadResult(batch.id, tuple(photo_ids), tuple(refused))


# --- following photos to their verdicts -------------------------------------------------------------


@dataclass(frozen=True)
class FaceView:
    """One face as a member of staff sees it: number (from 1), box, colour, words."""

    number: int
    box: tuple[int, int, int, int]
    outcome: str
    colour: str  # green, red, amber, grey
    person: str | None  # external id
    person_name: str | None
    distance: float | None
    covered: bool
    reasons: tuple[str, ...]
    text: str


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

    @property
    def refusal(self) -> str:
        """Why a refused file could not be read, and what to do (the words `gate` gives)."""
        return self.error or f"{PHOTO_WORDS[policy.UNREADABLE_IMAGE]}: {AGAIN}"


def _job_status(job: Job | None) -> str:
    if job is None:
        return "queued"
    return {"queued": "queued", "running": "processing", "done": "done", "failed": "failed"}[job.state]


def channel_words(channel: str) -> str:
    """A channel as people say it: `social_media:instagram` -> `social media (instagram)`."""
    parent, _, sub = channel.partition(":")
    words = parent.replace("_", " ")
    return f"{words} ({sub.replace('_', ' ')})" if sub else words


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%B %Y}"


def _withdrawn_on(session: Session, person_id: int, channel: str) -> datetime | None:
    records = session.scalars(
        select(ConsentRecord).where(
            ConsentRecord.person_id == person_id,
            ConsentRecord.kind == "publication",
            ConsentRecord.action.in_(("withdraw", "object")),
        )
    )
    found = [r.at for r in records if policy.covers(r.channel, channel)]
    return max(found) if found else None


CONSENT_WORDS = {
    policy.NO_CONSENT_FOR_CHANNEL: "no consent for {channel}",
    policy.CONSENT_WITHDRAWN: "no consent for {channel} (withdrawn{on})",
    policy.OBJECTED: "no consent for {channel} (objected{on})",
    policy.CONSENT_EXPIRED: "consent for {channel} has expired",
    policy.CONSENT_NOT_YET_VALID: "consent for {channel} is not valid yet",
    policy.GUARDIAN_CONSENT_REQUIRED: "a parent or guardian must consent for {channel}",
    policy.DATE_OF_BIRTH_UNKNOWN: "no date of birth to check who may consent for {channel}",
    policy.RECONSENT_REQUIRED: "a parent's consent for {channel} lapsed at the age threshold: ask again",
    policy.PERSON_LEFT: "has left, and the consent for {channel} ended then",
    policy.PERSON_ERASED: "this person's record was erased",
    policy.UNKNOWN_FACE: "not recognised: nobody enrolled matches this face",
    policy.UNCERTAIN_MATCH: "an uncertain match, a reviewer must check it",
    policy.FACE_TOO_SMALL: "too small to identify, a reviewer must check it",
    policy.POSSIBLE_FACE: "possibly a face, a reviewer must check it",
    policy.MATCHING_DISABLED: "not matched (no DPIA is recorded yet), a reviewer must check it",
}

PHOTO_WORDS = {
    policy.UNREADABLE_IMAGE: "the file could not be read as an image",
    policy.TOO_MANY_FACES: "too many faces to examine them all: a reviewer must check it",
    policy.TIME_LIMIT: "face analysis took too long: a reviewer must check it",
    policy.FACES_COVERED: "faces without consent are covered in the published copy",
    policy.COVER_FAILED: "a covered face could still be detected",
    policy.CLEAN_COPY_FAILED: "no verified clean copy could be made",
    policy.CONSENT_CHANGED: "consent changed since the copy was made",
    policy.ANALYSIS_TOO_COARSE: "analysed for smaller copies than this channel needs: gate it again",
    CANNOT_BE_PUBLISHED: "cannot be published",
}


def reason_words(reason: str, channel: str) -> str:
    """A photo-level reason code in plain English."""
    template = PHOTO_WORDS.get(reason) or CONSENT_WORDS.get(reason)
    if template is None:
        return reason.replace("_", " ")
    return template.format(channel=channel_words(channel), on="")


def _colour(outcome: str, covered: bool) -> str:
    if covered:
        return "grey"
    return {"consented": "green", "no_consent": "red", "unknown": "red", "uncertain": "amber"}.get(
        outcome, "grey"
    )


def _face_view(
    session: Session,
    face: Face,
    channel: str,
    people: dict[int, Person],
    see_safeguarding: bool,
    now_face: policy.FaceVerdict | None = None,
    viewer: str = SYSTEM,
) -> FaceView:
    """How staff see a face: as recorded by the gate, or as decided again (`now_face`)."""
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
            number, box, "no_consent", "red", None, None, None, False, (CANNOT_BE_PUBLISHED,),
            f"Face {number}: cannot be published",
        )  # fmt: skip
    who = f"{person.display_name} ({person.external_id})" if person is not None else None
    if covered:
        text = f"Face {number}: covered in the published copy"
    elif outcome == "consented":
        text = f"Face {number}: {who or 'identified'}, consented for {channel_words(channel)}"
    elif outcome == "not_a_face":
        text = f"Face {number}: not a face (a reviewer said so)"
    else:
        parts = []
        for reason in reasons:
            if reason == policy.SAFEGUARDING:
                parts.append("safeguarding flag: never published")
                continue
            template = CONSENT_WORDS.get(reason, reason.replace("_", " "))
            on = ""
            if reason in (policy.CONSENT_WITHDRAWN, policy.OBJECTED) and person is not None:
                when = _withdrawn_on(session, person.id, channel)
                on = f" on {_day(when)}" if when is not None else ""
            parts.append(template.format(channel=channel_words(channel), on=on))
        words = "; ".join(parts) or outcome.replace("_", " ")
        text = f"Face {number}: " + (f"{who}, {words}" if who else words)
    return FaceView(
        number,
        box,
        outcome,
        _colour(outcome, covered),
        person.external_id if person is not None else None,
        person.display_name if person is not None else None,
        distance,
        covered,
        reasons,
        text,
    )


def _masked(reasons: Iterable[str], see_safeguarding: bool) -> tuple[str, ...]:
    out: list[str] = []
    for reason in reasons:
        if reason == policy.SAFEGUARDING and not see_safeguarding:
            reason = CANNOT_BE_PUBLISHED
        if reason not in out:
            out.append(reason)
    return tuple(out)


def masked_reasons(reasons: Iterable[str], role: str) -> tuple[str, ...]:
    """Reason codes as `role` may see them: `safeguarding` reads `cannot_be_published` to most."""
    return _masked(reasons, role in SAFEGUARDING_ROLES)


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
    see = role in SAFEGUARDING_ROLES
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
        _masked(reasons, see),
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
        originals.get(photo.original_key), max_pixels=settings.max_pixels, long_edge=edge
    )
    out = io.BytesIO()
    # Pillow writes no EXIF, XMP, ICC or comment unless asked: the preview carries pixels only.
    Image.fromarray(source.image.pixels).save(out, format="JPEG", quality=82)
    return out.getvalue()


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
    if fresh.verdict == policy.PUBLISHABLE:
        data = build()
        if data is None:
            reasons = (*reasons, policy.CLEAN_COPY_FAILED)
    if data is None:
        audit.append(
            session,
            at=now,
            actor=actor,
            action="publication.refused",
            subject=f"photo:{photo.id}",
            details={"decision": decision.id, "reasons": list(reasons), "via": "download"},
        )
        verdict = fresh.verdict if fresh.verdict != policy.PUBLISHABLE else policy.BLOCKED
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
            if photo is not None and photo.status == policy.PUBLISHABLE and photo.id not in photo_ids:
                photo_ids.append(photo.id)
    built: dict[int, tuple[int, media.CleanCopy | None]] = {}
    for photo_id in photo_ids:
        with unit_of_work(sessions) as session:
            decision = latest_decision(session, photo_id)
            verdict = recheck(session, decision.id, settings=settings, now=now).verdict
            _ = (decision.photo, list(decision.faces))  # loaded: the copy is built outside the unit
        if verdict == policy.PUBLISHABLE:
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
