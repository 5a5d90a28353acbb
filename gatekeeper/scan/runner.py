"""Running a scan: read the source, group renditions, decide each picture, end what is gone.

The command line and the scan job run it the same way. Reading needs no database; each picture is
then decided and recorded in a unit of work of its own (so a scan stopped half-way keeps what it
recorded, and the page shows progress), and the run's end in one more.
"""

from __future__ import annotations

import re
import secrets
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from consent_db.session import unit_of_work
from gatekeeper.config import Settings
from gatekeeper.errors import InvalidInputError, MediaError
from gatekeeper.faces import FaceEngine
from gatekeeper.media.refusals import explain
from gatekeeper.photos.gate import load_tools
from gatekeeper.scan import scanning
from gatekeeper.scan.archives import ArchiveSource, archive_kind
from gatekeeper.scan.folder import FolderSource
from gatekeeper.scan.found import FOLDER, WEBSITE, Problem, Source
from gatekeeper.scan.renditions import Renditions, fingerprint
from gatekeeper.scan.website import WebsiteSource, check_start_url
from gatekeeper.storage import BlobStore
from gatekeeper.storage.base import make_private_dirs, write_atomic

# The run's progress is written at most this often while reading (seconds).
PROGRESS_EVERY = 1.0
# Where archives uploaded through the page wait for their scan (in the instance folder): each is
# deleted once its run has ended, since the report, the decided originals and the placements hold
# all the scan needs.
UPLOADS = "scan-uploads"
_UPLOAD_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def uploads_folder(settings: Settings) -> Path:
    """The folder uploaded archives wait in."""
    return settings.instance_path / UPLOADS


def keep_upload(settings: Settings, data: bytes, filename: str) -> Path:
    """Keep an archive uploaded through the page until its scan ends; its path.

    The same file name again replaces the earlier upload, so a newer download of the same account
    is the same source and its scan updates that source's placements. Raises InvalidInputError
    (nothing kept) for a file that is not a Facebook, Instagram or X archive.
    """
    name = _UPLOAD_NAME.sub("-", Path(filename or "archive.zip").name).strip(".-") or "archive"
    if not name.lower().endswith(".zip"):
        name += ".zip"
    folder = uploads_folder(settings)
    make_private_dirs(folder)
    waiting = folder / f".{secrets.token_hex(8)}.part"
    write_atomic(waiting, data, private=True)
    try:
        if not zipfile.is_zipfile(waiting):
            raise InvalidInputError("the file is not a zip archive", field="archive")
        archive_kind(waiting)
    except BaseException:
        waiting.unlink(missing_ok=True)
        raise
    path = folder / name
    waiting.replace(path)
    return path


def _forget_upload(settings: Settings, location: str) -> None:
    """Delete an uploaded archive once its run has ended (a path the command line gave is left)."""
    path = Path(location)
    if path.parent == uploads_folder(settings).resolve() or path.parent == uploads_folder(settings):
        path.unlink(missing_ok=True)


def _now() -> datetime:
    return datetime.now(UTC)


def identify(source: str) -> tuple[str, str]:
    """The kind and location of a source as given: an http(s) URL, a folder, or an archive's zip.

    Raises InvalidInputError for anything else (another scheme, a missing path, an unknown zip).
    """
    text = source.strip()
    if "://" in text or text.lower().startswith(("file:", "ftp:", "data:", "javascript:")):
        return WEBSITE, check_start_url(text)
    path = Path(text).expanduser()
    if path.is_dir():
        return FOLDER, str(path.resolve())
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise InvalidInputError(f"{source}: not a folder, a website URL or a zip archive", field="source")
        return archive_kind(path), str(path.resolve())
    raise InvalidInputError(f"{source}: no such folder or file, and not an http(s) URL", field="source")


def open_source(
    kind: str, location: str, settings: Settings, *, max_pages: int | None, max_images: int | None
) -> Source:
    """The reader of a recorded source, with the run's caps (else the settings')."""
    images = max_images or settings.scan.max_images
    if kind == WEBSITE:
        return WebsiteSource(
            location,
            scan=settings.scan,
            max_bytes=settings.media.max_bytes,
            max_pages=max_pages or settings.scan.max_pages,
            max_images=images,
        )
    if kind == FOLDER:
        return FolderSource(Path(location), max_bytes=settings.media.max_bytes, max_images=images)
    return ArchiveSource(Path(location), kind, max_bytes=settings.media.max_bytes, max_images=images)


@dataclass
class Timing:
    """Where a run's time went: reading the source (fetching, unpacking, hashing) and deciding."""

    reading: float = 0.0
    deciding: float = 0.0
    images: int = 0
    pictures: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def run_scan(
    sessions: sessionmaker[Session],
    run_id: int,
    *,
    settings: Settings,
    engine: FaceEngine,
    originals: BlobStore,
    actor: str,
    clock: Callable[[], datetime] = _now,
) -> Timing:
    """Run a recorded scan to its end (see the module); the time it took, by part.

    On an unexpected error the run is recorded failed (pictures recorded so far stay) and the
    error is raised again.
    """
    timing = Timing()
    with unit_of_work(sessions) as session:
        run = scanning.get_run(session, run_id)
        if run.state in (scanning.DONE, scanning.FAILED):
            return timing  # a job sent twice: the run has ended
        kind, location = run.source.kind, run.source.location
        # A run started again after its process died begins afresh: its placements are found
        # again by their places, and open takedown tasks are not opened twice.
        run.findings.clear()
        run.state = scanning.RUNNING
        caps = (run.max_pages, run.max_images)
    try:
        source = open_source(kind, location, settings, max_pages=caps[0], max_images=caps[1])
        renditions = Renditions()
        problems: list[Problem] = []
        started = last = time.monotonic()
        for item in source.images():
            if isinstance(item, Problem):
                problems.append(item)
            else:
                timing.images += 1
                try:
                    print_ = fingerprint(item.data, max_pixels=settings.media.max_pixels)
                except MediaError as exc:
                    problems.append(Problem(item.place.url, explain(exc).reason, exc.code))
                else:
                    renditions.add(item.place, item.data, print_)
            if time.monotonic() - last >= PROGRESS_EVERY:
                last = time.monotonic()
                _progress(sessions, run_id, "reading", source, timing.images, len(renditions.pictures), 0)
        timing.reading = time.monotonic() - started
        pictures = renditions.pictures
        timing.pictures = len(pictures)
        with unit_of_work(sessions) as session:
            tools = load_tools(session, settings, engine, originals)
        started = time.monotonic()
        for number, picture in enumerate(pictures, start=1):
            with unit_of_work(sessions) as session:
                run = scanning.get_run(session, run_id)
                scanning.record_picture(session, run, picture, tools=tools, now=clock(), actor=actor)
                run.progress = _progress_of("deciding", source, timing.images, len(pictures), number)
            picture.data = b""  # decided: the copy is in the private store, not needed in memory
        timing.deciding = time.monotonic() - started
        with unit_of_work(sessions) as session:
            scanning.finish_run(session, run_id, source.reading, problems, now=clock(), actor=actor)
            run = scanning.get_run(session, run_id)
            run.progress = {
                **_progress_of("done", source, timing.images, len(pictures), len(pictures)),
                "reading_seconds": round(timing.reading, 3),
                "deciding_seconds": round(timing.deciding, 3),
            }
    except Exception as exc:
        with unit_of_work(sessions) as session:
            scanning.fail_run(session, run_id, f"{type(exc).__name__}: {exc}", now=clock())
        _forget_upload(settings, location)
        raise
    _forget_upload(settings, location)
    return timing


def _progress_of(phase: str, source: Source, images: int, pictures: int, decided: int) -> dict[str, object]:
    return {
        "phase": phase,
        **source.reading.counts,
        "images": images,
        "pictures": pictures,
        "decided": decided,
    }


def _progress(
    sessions: sessionmaker[Session],
    run_id: int,
    phase: str,
    source: Source,
    images: int,
    pictures: int,
    decided: int,
) -> None:
    with unit_of_work(sessions) as session:
        scanning.get_run(session, run_id).progress = _progress_of(phase, source, images, pictures, decided)


def start_scan(
    session: Session,
    source: str,
    *,
    channel: str,
    settings: Settings,
    now: datetime,
    actor: str,
    max_pages: int | None = None,
    max_images: int | None = None,
    state: str = scanning.RUNNING,
) -> int:
    """Record a run of `source` (made known when new) for `channel`; the run's id.

    Raises InvalidInputError (a source that is not one), UnknownChannelError.
    """
    kind, location = identify(source)
    recorded = scanning.source_for(session, kind, location, channel, settings=settings, now=now, actor=actor)
    run = scanning.new_run(
        session, recorded, now=now, actor=actor, max_pages=max_pages, max_images=max_images, state=state
    )
    return run.id
