"""Reading a people CSV exported from the MIS into validated rows (no database, no side effects)."""

from __future__ import annotations

import csv
import io
import os
import stat
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath, PureWindowsPath

from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import check_channel, check_choice
from gatekeeper.errors import InvalidInputError
from gatekeeper.people.contacts import Contact, check_address, parse_guardians

# Every column the importer knows; only the first two are required. A column that is absent leaves
# what it describes untouched (no column `channels`: publication consent is not managed by the file).
COLUMNS = (
    "external_id",
    "name",
    "date_of_birth",
    "photos",
    "biometric_consent",
    "channels",
    "granted_by",
    "granted_on",
    "valid_until",
    "named",
    "biometric_granted_by",
    "biometric_objection",
    "left_on",
    "evidence_ref",
    "wording_version",
    "contact_email",
    "guardian_emails",
)
REQUIRED_COLUMNS = ("external_id", "name")

# Warning codes of an import report: the row imported, but someone should look at it.
NOT_PUBLISHABLE = "not_publishable"
GATEKEEPER_RECORD_KEPT = "gatekeeper_record_kept"
PHOTOS_WITHOUT_BIOMETRIC_CONSENT = "photos_without_biometric_consent"
BIOMETRIC_CONSENT_WITHOUT_PHOTOS = "biometric_consent_without_photos"
MATCHING_NOT_ALLOWED = "matching_not_allowed"


@dataclass(frozen=True)
class RowWarning:
    """Something an imported row leaves that a DPO should look at (the row is still imported)."""

    line: int
    external_id: str
    code: str
    message: str


@dataclass(frozen=True)
class PersonRow:
    """One validated row of a people CSV; None marks a column the file does not have."""

    line: int
    external_id: str
    name: str
    date_of_birth: date | None
    photos: tuple[Path, ...]
    biometric: bool | None
    channels: tuple[str, ...] | None
    granted_by: str
    granted_on: date | None
    valid_until: date | None
    named: str
    has_date_of_birth: bool = True
    biometric_granted_by: str | None = None
    # Who objects to face matching: `self` (the person refuses) or a `parent` or `guardian`.
    biometric_objection: str | None = None
    left_on: date | None = None
    has_left_on: bool = False
    # Where the signed form is kept, and which consent wording it carried (publication grants).
    evidence_ref: str | None = None
    wording_version: str | None = None
    # The person's own address and their parents' or guardians' (None: the file has no such column).
    contact_email: str | None = None
    guardians: tuple[Contact, ...] | None = None
    warnings: tuple[RowWarning, ...] = ()


@dataclass(frozen=True)
class RowProblem:
    """Why one CSV row was not imported."""

    line: int
    reason: str


# --- CSV parsing -----------------------------------------------------------------------------------


def parse_people_csv(
    data: bytes, base: Path, settings: Settings, *, today: date, confined: bool = False
) -> tuple[list[PersonRow], list[RowProblem]]:
    """Parse a people CSV (UTF-8, BOM optional, header names in any case).

    Photo paths are relative to `base`; with `confined` (an uploaded file) each must name a
    regular file inside `base`, so a request never makes the server read anything else.
    Raises InvalidInputError when the file is empty, not UTF-8, not comma-separated or lacks a
    required column.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the CSV is not UTF-8 (byte {exc.start} cannot be decoded)") from None
    if not text.strip():
        raise InvalidInputError(
            "the CSV is empty: expected a header row with at least the columns " + ", ".join(REQUIRED_COLUMNS)
        )
    reader = csv.DictReader(io.StringIO(text, newline=""))
    raw_header = reader.fieldnames or []
    header = [h.strip().lower() for h in raw_header]
    if len(header) == 1 and ";" in header[0]:
        raise InvalidInputError(
            "the CSV is separated by ';', not ','; save it as comma-separated values (CSV UTF-8)"
        )
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:
        raise InvalidInputError(f"the CSV header repeats column(s): {', '.join(repeated)}")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InvalidInputError(f"the CSV header lacks column(s): {', '.join(missing)}")
    reader.fieldnames = header
    present = frozenset(header)
    rows: list[PersonRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        values = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        try:
            row = _parse_row(line, values, present, base, settings, today, confined)
        except InvalidInputError as exc:
            problems.append(RowProblem(line, str(exc)))
            continue
        if row.external_id in seen:
            problems.append(
                RowProblem(line, f"external_id {row.external_id!r} already on line {seen[row.external_id]}")
            )
            continue
        seen[row.external_id] = line
        rows.append(row)
    return rows, problems


def _parse_row(
    line: int,
    raw: dict[str, str],
    present: frozenset[str],
    base: Path,
    settings: Settings,
    today: date,
    confined: bool,
) -> PersonRow:
    external_id = raw["external_id"]
    if not external_id:
        raise InvalidInputError("external_id is empty")
    if not raw["name"]:
        raise InvalidInputError("name is empty")
    channels: tuple[str, ...] | None = None
    if "channels" in present:
        channels = tuple(dict.fromkeys(c.strip() for c in raw["channels"].split(";") if c.strip()))
        for channel in channels:
            check_channel(settings.policy, channel)
    biometric: bool | None = None
    if "biometric_consent" in present:
        choice = check_choice("biometric_consent", raw["biometric_consent"].lower() or "no", ("yes", "no"))
        biometric = choice == "yes"
    granted_by = raw.get("granted_by", "").lower()
    if granted_by:
        check_choice("granted_by", granted_by, policy.GRANTED_BY)
    elif channels:
        raise InvalidInputError("granted_by is required when consent is given (self, parent or guardian)")
    photos = tuple(
        photo_path(base, p.strip(), confined=confined, read=bool(biometric))
        for p in raw.get("photos", "").split(";")
        if p.strip()
    )
    date_of_birth = _date("date_of_birth", raw.get("date_of_birth", ""))
    if date_of_birth is not None and date_of_birth > today:
        raise InvalidInputError(
            f"date_of_birth {date_of_birth.isoformat()} is in the future", field="date_of_birth"
        )
    valid_until = _date("valid_until", raw.get("valid_until", ""))
    granted_on = _date("granted_on", raw.get("granted_on", ""))
    if valid_until and granted_on and valid_until < granted_on:
        raise InvalidInputError("valid_until is before granted_on")
    biometric_granted_by = raw.get("biometric_granted_by", "").lower() or None
    if biometric_granted_by is not None:
        check_choice("biometric_granted_by", biometric_granted_by, policy.GRANTED_BY)
    biometric_objection = raw.get("biometric_objection", "").lower() or None
    if biometric_objection is not None:
        check_choice("biometric_objection", biometric_objection, policy.GRANTED_BY)
    if biometric and not (granted_by or biometric_granted_by):
        raise InvalidInputError("biometric consent needs granted_by or biometric_granted_by")
    left_on = _date("left_on", raw.get("left_on", ""))
    contact_email: str | None = None
    if "contact_email" in present:
        given = raw["contact_email"]
        contact_email = check_address(given, "contact_email") if given else ""
    guardians = parse_guardians(raw["guardian_emails"]) if "guardian_emails" in present else None
    warnings: list[RowWarning] = []
    if photos and not biometric:
        warnings.append(
            RowWarning(
                line,
                external_id,
                PHOTOS_WITHOUT_BIOMETRIC_CONSENT,
                f"{len(photos)} enrolment photo(s) listed without biometric consent: "
                "ignored, no template made",
            )
        )
    if biometric and not photos:
        warnings.append(
            RowWarning(
                line,
                external_id,
                BIOMETRIC_CONSENT_WITHOUT_PHOTOS,
                "biometric consent given but no enrolment photo listed: the person cannot be recognised "
                "in photos until one is enrolled",
            )
        )
    return PersonRow(
        line=line,
        external_id=external_id,
        name=raw["name"],
        date_of_birth=date_of_birth,
        photos=photos,
        biometric=biometric,
        channels=channels,
        granted_by=granted_by or "self",
        granted_on=granted_on,
        valid_until=valid_until,
        named=check_choice("named", raw.get("named", "").lower() or "no", policy.NAMED),
        has_date_of_birth="date_of_birth" in present,
        biometric_granted_by=biometric_granted_by,
        biometric_objection=biometric_objection,
        left_on=left_on,
        has_left_on="left_on" in present,
        evidence_ref=_text("evidence_ref", raw.get("evidence_ref", ""), 200),
        wording_version=_text("wording_version", raw.get("wording_version", ""), 80),
        contact_email=contact_email,
        guardians=guardians,
        warnings=tuple(warnings),
    )


OUTSIDE_UPLOAD = (
    "enrolment photo {given!r} is not a file inside the upload: give a path relative to the CSV, "
    "inside the zip (no absolute path, no '..', no link leading out)"
)


def photo_path(base: Path, given: str, *, confined: bool, read: bool) -> Path:
    """Where an enrolment photo named in the CSV is, checked before anything reads it.

    With `confined`, a path that is absolute, climbs with `..` or resolves (through links) outside
    `base` is refused with one message whether or not something exists there, so an upload can
    neither read nor probe the server's files. With `read` (the photo will be read), the path must
    name a regular file: a missing one is reported, and a device, pipe or folder is refused. The
    messages never quote a file's content. Raises InvalidInputError.
    """
    name = PurePosixPath(given)
    outside = (
        name.is_absolute()
        or PureWindowsPath(given).is_absolute()
        or bool(PureWindowsPath(given).drive)
        or ".." in name.parts
        or "\\" in given
        or "\x00" in given
    )
    if confined and outside:
        raise InvalidInputError(OUTSIDE_UPLOAD.format(given=given), field="photos")
    path = base / given
    if confined:
        root = base.resolve()
        if not path.resolve().is_relative_to(root):
            raise InvalidInputError(OUTSIDE_UPLOAD.format(given=given), field="photos")
        path = path.resolve()
    if not read:
        return path
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        raise InvalidInputError(f"enrolment photo not found: {given}", field="photos") from None
    if not stat.S_ISREG(mode):
        raise InvalidInputError(f"enrolment photo {given!r} is not a regular file", field="photos")
    return path


def _text(column: str, value: str, limit: int) -> str | None:
    value = value.strip()
    if len(value) > limit:
        raise InvalidInputError(f"{column} is longer than {limit} characters", field=column)
    return value or None


def _date(column: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{column} must be an ISO date YYYY-MM-DD (got {value!r})", field=column
        ) from None
