"""People administration for the web app and API: search and uploaded imports."""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy.orm import Session

from gatekeeper.config import Settings
from gatekeeper.consent import mis_csv as people_csv
from gatekeeper.consent import mis_import as people_import
from gatekeeper.errors import InvalidInputError
from gatekeeper.faces import FaceEngine

MAX_ZIP_MEMBERS = 2000
MAX_UNPACKED_BYTES = 500 * 1024 * 1024


def is_zip(data: bytes) -> bool:
    """Whether an upload is a zip (by its first bytes, never its name)."""
    return data.startswith(b"PK\x03\x04")


def unpack_upload(data: bytes, workdir: Path) -> Path:
    """The CSV of an upload: the bytes themselves, or the one CSV inside a zip (photos beside it).

    Raises InvalidInputError for a zip without exactly one CSV, with unsafe names, or too large.
    """
    if not is_zip(data):
        target = workdir / "people.csv"
        target.write_bytes(data)
        return target
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise InvalidInputError("the zip file cannot be read") from None
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        raise InvalidInputError(f"the zip holds more than {MAX_ZIP_MEMBERS} files")
    if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
        raise InvalidInputError("the zip unpacks to more than 500 MB")
    csvs = []
    for member in members:
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
            raise InvalidInputError(f"unsafe name in the zip: {member.filename!r}")
        if name.parts[0] == "__MACOSX" or name.name.startswith("."):
            continue
        target = workdir.joinpath(*name.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src:
            target.write_bytes(src.read(MAX_UNPACKED_BYTES + 1))
        if name.suffix.lower() == ".csv":
            csvs.append(target)
    if len(csvs) != 1:
        raise InvalidInputError(f"the zip must hold exactly one .csv file (found {len(csvs)})")
    return csvs[0]


def import_upload(
    session: Session,
    data: bytes,
    *,
    engine: Callable[[], FaceEngine],
    settings: Settings,
    now: datetime,
    actor: str,
    source: str,
    dry_run: bool,
) -> people_import.ImportReport:
    """Import an uploaded CSV or zip; with `dry_run` every row's result is reported and nothing kept.

    Raises InvalidInputError when the file itself cannot be read (header, encoding, zip).
    """
    with tempfile.TemporaryDirectory(prefix="gatekeeper-import-") as tmp:
        csv_path = unpack_upload(data, Path(tmp))
        # Photos only from the upload itself: the zip's own files, or none beside a lone CSV.
        rows, problems = people_csv.parse_people_csv(
            csv_path.read_bytes(), csv_path.parent, settings, today=now.date(), confined=True
        )
        face_engine = engine() if any(r.biometric and r.photos for r in rows) else None
        savepoint = session.begin_nested()
        try:
            report = people_import.import_people(
                session, rows, engine=face_engine, settings=settings, now=now, actor=actor, source=source
            )
        finally:
            if dry_run:
                savepoint.rollback()
            else:
                savepoint.commit()
    report.problems = sorted([*problems, *report.problems], key=lambda p: p.line)
    report.rows += len(problems)
    return report
