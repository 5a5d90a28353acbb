"""Uploading photos in batches (web app, API): refusing what is not a photo, keeping originals, gate jobs.

An upload keeps each photo's original in the private store, records the photo (status `pending`)
and requests its gate job (`gatekeeper.queueing.request_job`, sent after the commit) in the
caller's unit of work, and returns at once: the face analysis runs in the gate job, never in a
request. A zip is opened with limits (members, total size, ratio) and every member name checked;
each refused file gets its own reason. The name each photo was uploaded under is kept with its
place in the batch, shown only to the member of staff who uploaded it, and never given to a
published copy (those get opaque names).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import UploadBatch, UploadItem
from gatekeeper import media
from gatekeeper.config import Settings
from gatekeeper.consent.state import check_channel
from gatekeeper.errors import (
    EmptyFileError,
    FileTooLargeError,
    InvalidInputError,
    MediaError,
)
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import Refusal, explain
from gatekeeper.photos import idempotency
from gatekeeper.photos.gate import original_key
from gatekeeper.queueing import JobKind, request_job
from gatekeeper.storage import BlobStore

MAX_FILES = 500
MAX_ZIP_MEMBERS = 2000
MAX_ZIP_TOTAL = 2 * 1024 * 1024 * 1024
# A photo compresses little: a member that unpacks to more than this many times its packed size is
# refused as a zip bomb before it is read.
MAX_ZIP_RATIO = 100
MAX_CAPTION = 2000
ZIP_MAGIC = b"PK\x03\x04"
STATUSES = ("queued", "processing", "done", "failed", "deleted")

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
        if len(data) > settings.media.max_bytes:
            raise FileTooLargeError(len(data), settings.media.max_bytes)
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
        if member.file_size > settings.media.max_bytes:
            too_large = explain(FileTooLargeError(member.file_size, settings.media.max_bytes))
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
    now: datetime,
    actor: str,
) -> UploadResult:
    """Keep each photo's original, record it and request its gate job, all in one batch (audited).

    The gate jobs are sent after the caller's unit of work commits. A photo already on record for
    the channel whose gate job for the same caption is waiting, running or done gets that job, not
    a new one. The caption goes to the gate job, which stores it scrubbed of names.
    Raises UnknownChannelError, InvalidInputError (a caption too long), StorageError.
    """
    check_channel(settings.policy, channel)
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
            job_id = request_job(session, JobKind.GATE, [sha256, channel, caption], now=now).id
        batch.items.append(
            UploadItem(position=position, photo_id=photo.id, job_id=job_id, file_name=upload.name[:255])
        )
        photo_ids.append(photo.id)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.BATCH_UPLOADED,
        subject=f"batch:{batch.id}",
        details={"channel": channel, "photos": photo_ids, "refused": len(refused)},
    )
    return UploadResult(batch.id, tuple(photo_ids), tuple(refused))
