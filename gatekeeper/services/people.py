"""People and their consent: CSV import from the MIS, one-off grants and withdrawals, a summary.

Consent records are never edited: every change adds a record, so the history a DPO is asked about
is always there. Withdrawals recorded here stay in force until a grant dated after them arrives.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.models import ConsentRecord, FaceTemplate, Person
from gatekeeper import media, policy
from gatekeeper.config import Settings
from gatekeeper.errors import GatekeeperError, InvalidInputError, PersonNotFoundError
from gatekeeper.faces import FaceEngine, encoding_to_bytes
from gatekeeper.services.consent_state import BIOMETRIC, check_channel, latest, person_state, policy_for

IMPORT = "import"

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
)
REQUIRED_COLUMNS = ("external_id", "name")
GRANTED_BY = ("self", "parent", "guardian")
NAMED = ("yes", "first_name", "no")

# Warning codes of an import report: the row imported, but someone should look at it.
NOT_PUBLISHABLE = "not_publishable"
PHOTOS_WITHOUT_BIOMETRIC_CONSENT = "photos_without_biometric_consent"
BIOMETRIC_CONSENT_WITHOUT_PHOTOS = "biometric_consent_without_photos"
GATEKEEPER_RECORD_KEPT = "gatekeeper_record_kept"


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
    warnings: tuple[RowWarning, ...] = ()


@dataclass(frozen=True)
class RowProblem:
    """Why one CSV row was not imported."""

    line: int
    reason: str


@dataclass(frozen=True)
class RowChange:
    """One change an import made: the audit action, for whom, and on what."""

    line: int
    external_id: str
    action: str
    channel: str | None = None
    detail: str = ""


@dataclass
class ImportReport:
    """What an import did: counts, every change, the rows it refused and the rows to look at."""

    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    people_created: int = 0
    consent_records_added: int = 0
    templates_added: int = 0
    templates_deleted: int = 0
    problems: list[RowProblem] = field(default_factory=list)
    changes: list[RowChange] = field(default_factory=list)
    warnings: list[RowWarning] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- CSV parsing -----------------------------------------------------------------------------------


def parse_people_csv(
    data: bytes, base: Path, settings: Settings, *, today: date
) -> tuple[list[PersonRow], list[RowProblem]]:
    """Parse a people CSV (UTF-8, BOM optional, header names in any case).

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
            row = _parse_row(line, values, present, base, settings, today)
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
    line: int, raw: dict[str, str], present: frozenset[str], base: Path, settings: Settings, today: date
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
            check_channel(settings, channel)
    biometric: bool | None = None
    if "biometric_consent" in present:
        choice = _choice("biometric_consent", raw["biometric_consent"].lower() or "no", ("yes", "no"))
        biometric = choice == "yes"
    granted_by = raw.get("granted_by", "").lower()
    if granted_by:
        _choice("granted_by", granted_by, GRANTED_BY)
    elif channels or biometric:
        raise InvalidInputError("granted_by is required when consent is given (self, parent or guardian)")
    photos = tuple(base / p.strip() for p in raw.get("photos", "").split(";") if p.strip())
    for photo in photos:
        if biometric and not photo.is_file():
            raise InvalidInputError(f"enrolment photo not found: {photo.name}")
    date_of_birth = _date("date_of_birth", raw.get("date_of_birth", ""))
    if date_of_birth is not None and date_of_birth > today:
        raise InvalidInputError(
            f"date_of_birth {date_of_birth.isoformat()} is in the future", field="date_of_birth"
        )
    valid_until = _date("valid_until", raw.get("valid_until", ""))
    granted_on = _date("granted_on", raw.get("granted_on", ""))
    if valid_until and granted_on and valid_until < granted_on:
        raise InvalidInputError("valid_until is before granted_on")
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
        named=_choice("named", raw.get("named", "").lower() or "no", NAMED),
        has_date_of_birth="date_of_birth" in present,
        warnings=tuple(warnings),
    )


def _choice(column: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidInputError(f"{column} must be one of {', '.join(allowed)} (got {value!r})", field=column)
    return value


def _date(column: str, value: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{column} must be an ISO date YYYY-MM-DD (got {value!r})", field=column
        ) from None


def start_of(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def end_of(day: date) -> datetime:
    """The first moment after `day` (consent valid until a date is valid through that whole day)."""
    return start_of(day + timedelta(days=1))


# --- import ----------------------------------------------------------------------------------------


def import_people(
    session: Session,
    rows: Sequence[PersonRow],
    *,
    engine: FaceEngine | None,
    settings: Settings,
    now: datetime,
    actor: str,
    source: str,
) -> ImportReport:
    """Import validated rows, each all-or-nothing; refused rows and every change are in the report.

    An import changes only what imports granted: a grant or withdrawal recorded in the gatekeeper
    itself (command line, web, public form) is never undone by an export dated before it.
    """
    report = ImportReport(rows=len(rows))
    for row in rows:
        # Changes of a row that fails are rolled back with it: tallied apart, merged on success.
        tally = ImportReport()
        try:
            with session.begin_nested():
                _import_row(
                    session,
                    row,
                    engine=engine,
                    settings=settings,
                    now=now,
                    actor=actor,
                    source=source,
                    report=tally,
                )
        except GatekeeperError as exc:
            report.problems.append(RowProblem(row.line, str(exc)))
            continue
        report.people_created += tally.people_created
        report.consent_records_added += tally.consent_records_added
        report.templates_added += tally.templates_added
        report.templates_deleted += tally.templates_deleted
        report.changes.extend(tally.changes)
        report.warnings.extend(row.warnings)
        report.warnings.extend(tally.warnings)
        if tally.changes:
            report.imported += 1
        else:
            report.unchanged += 1
    report.problems.sort(key=lambda p: p.line)
    return report


@dataclass
class _RowContext:
    """What every change of one imported row shares."""

    session: Session
    row: PersonRow
    person: Person
    now: datetime
    actor: str
    source: str
    report: ImportReport

    def changed(self, action: str, channel: str | None = None, detail: str = "") -> None:
        self.report.changes.append(RowChange(self.row.line, self.row.external_id, action, channel, detail))

    def warn(self, code: str, message: str) -> None:
        self.report.warnings.append(RowWarning(self.row.line, self.row.external_id, code, message))

    def add(self, *, kind: str, channel: str, action: str, at: datetime, **terms: Any) -> None:
        _add_record(
            self.session,
            self.person,
            kind=kind,
            channel=channel,
            action=action,
            at=at,
            how=IMPORT,
            now=self.now,
            actor=self.actor,
            source=self.source,
            **terms,
        )
        self.report.consent_records_added += 1


def _import_row(
    session: Session,
    row: PersonRow,
    *,
    engine: FaceEngine | None,
    settings: Settings,
    now: datetime,
    actor: str,
    source: str,
    report: ImportReport,
) -> None:
    person = session.scalar(
        select(Person)
        .where(Person.external_id == row.external_id)
        .options(selectinload(Person.consents), selectinload(Person.templates))
    )
    if person is None:
        person = Person(
            external_id=row.external_id,
            display_name=row.name,
            date_of_birth=row.date_of_birth,
            status="active",
            safeguarding=False,
            created_at=now,
            updated_at=now,
        )
        session.add(person)
        session.flush()
        report.people_created += 1
        audit.append(
            session,
            at=now,
            actor=actor,
            action="person.created",
            subject=_subject(person),
            details={"source": source},
        )
        report.changes.append(RowChange(row.line, row.external_id, "person.created"))
    else:
        if person.status == "erased":
            raise InvalidInputError(f"{row.external_id} was erased; an erased person is not re-imported")
        fields = [] if person.display_name == row.name else ["display_name"]
        if row.has_date_of_birth and person.date_of_birth != row.date_of_birth:
            fields.append("date_of_birth")
        if fields:
            person.display_name = row.name
            if row.has_date_of_birth:
                person.date_of_birth = row.date_of_birth
            person.updated_at = now
            audit.append(
                session,
                at=now,
                actor=actor,
                action="person.updated",
                subject=_subject(person),
                details={"source": source, "fields": fields},
            )
            report.changes.append(
                RowChange(row.line, row.external_id, "person.updated", None, ", ".join(fields))
            )
    ctx = _RowContext(session, row, person, now, actor, source, report)
    if row.channels is not None:
        _sync_publication(ctx, row.channels, settings)
    if row.biometric is not None:
        _sync_biometric(ctx, engine=engine, settings=settings)


def _sync_publication(ctx: _RowContext, channels: Sequence[str], settings: Settings) -> None:
    row, person, now = ctx.row, ctx.person, ctx.now
    granted_at = start_of(row.granted_on) if row.granted_on else now
    valid_until = end_of(row.valid_until) if row.valid_until else None
    publication = [r for r in person.consents if r.kind == "publication"]
    for channel in channels:
        own = _latest_of(publication, channel, imported=True)
        if own is not None and own.action == "grant" and _same_grant(own, row, valid_until):
            continue
        kept = _later_gatekeeper_record(publication, channel, granted_at if row.granted_on else None)
        if kept is not None:
            ctx.warn(GATEKEEPER_RECORD_KEPT, f"{channel}: the export's grant is not applied; {_kept(kept)}")
            continue
        ctx.add(
            kind="publication",
            channel=channel,
            action="grant",
            at=granted_at,
            granted_by=row.granted_by,
            valid_until=valid_until,
            named=row.named,
        )
        detail = f"granted by {row.granted_by}, named {row.named}"
        if row.granted_on:
            detail += f", from {row.granted_on.isoformat()}"
        if row.valid_until:
            detail += f", until {row.valid_until.isoformat()}"
        ctx.changed("consent.grant", channel, detail)
    imported_channels = sorted({r.channel for r in publication if r.how == IMPORT} - set(channels))
    for channel in imported_channels:
        own = _latest_of(publication, channel, imported=True)
        if own is None or own.action != "grant":
            continue
        kept = _later_gatekeeper_record(publication, channel, own.at, exact=True)
        if kept is not None:
            if kept.action == "grant":
                ctx.warn(GATEKEEPER_RECORD_KEPT, f"{channel}: not withdrawn; {_kept(kept)}")
            continue
        ctx.add(kind="publication", channel=channel, action="withdraw", at=now)
        ctx.changed("consent.withdraw", channel, "no longer in the export")
    rules = policy_for(settings)
    state = person_state(person)
    for channel in channels:
        blockers = policy.consent_reasons(state, channel, now, rules)
        if blockers:
            ctx.warn(NOT_PUBLISHABLE, f"{channel}: not publishable after import ({', '.join(blockers)})")


def _latest_of(records: Sequence[ConsentRecord], channel: str, *, imported: bool) -> ConsentRecord | None:
    """The latest record for exactly `channel` made by imports (or, imported=False, by anything else)."""
    return latest((r for r in records if (r.how == IMPORT) == imported), channel)


def _later_gatekeeper_record(
    records: Sequence[ConsentRecord], channel: str, after: datetime | None, *, exact: bool = False
) -> ConsentRecord | None:
    """The latest record made in the gatekeeper (not by an import) that an import must not undo.

    It applies to `channel` (or, unless `exact`, its parent) and takes effect at or after `after`;
    `after` None (an export without a date) is older than every record.
    """
    found = [
        r
        for r in records
        if r.how != IMPORT
        and (r.channel == channel if exact else policy.covers(r.channel, channel))
        and (after is None or r.at >= after)
    ]
    return max(found, key=lambda r: (r.at, r.id)) if found else None


def _kept(record: ConsentRecord) -> str:
    what = "grant" if record.action == "grant" else "withdrawal"
    return (
        f"the {what} recorded in the gatekeeper on {record.at.date().isoformat()} ({record.how}"
        f"{', ' + record.channel if record.kind == 'publication' else ''}) stays in force"
    )


def _same_grant(record: ConsentRecord, row: PersonRow, valid_until: datetime | None) -> bool:
    same = (record.granted_by, record.valid_until, record.named) == (row.granted_by, valid_until, row.named)
    return same and (row.granted_on is None or record.at == start_of(row.granted_on))


def _sync_biometric(ctx: _RowContext, *, engine: FaceEngine | None, settings: Settings) -> None:
    row, person, now = ctx.row, ctx.person, ctx.now
    records = [r for r in person.consents if r.kind == "biometric"]
    own = _latest_of(records, BIOMETRIC, imported=True)
    granted_at = start_of(row.granted_on) if row.granted_on else now
    if not row.biometric:
        if own is None or own.action != "grant":
            return
        kept = _later_gatekeeper_record(records, BIOMETRIC, own.at, exact=True)
        if kept is not None:
            if kept.action == "grant":
                ctx.warn(GATEKEEPER_RECORD_KEPT, f"biometric consent not withdrawn; {_kept(kept)}")
            return
        ctx.add(kind="biometric", channel=BIOMETRIC, action="withdraw", at=now)
        ctx.changed("consent.withdraw", BIOMETRIC, "no longer in the export")
        deleted = delete_templates(
            ctx.session, person, now=now, actor=ctx.actor, why="biometric consent withdrawn"
        )
        ctx.report.templates_deleted += deleted
        if deleted:
            ctx.changed("template.deleted", None, f"{deleted} template(s)")
        return
    if own is None or own.action != "grant" or own.granted_by != row.granted_by:
        kept = _later_gatekeeper_record(
            records, BIOMETRIC, granted_at if row.granted_on else None, exact=True
        )
        if kept is not None:
            ctx.warn(GATEKEEPER_RECORD_KEPT, f"biometric consent not granted; {_kept(kept)}")
            return
        ctx.add(kind="biometric", channel=BIOMETRIC, action="grant", at=granted_at, granted_by=row.granted_by)
        ctx.changed("consent.grant", BIOMETRIC, f"granted by {row.granted_by}")
    current = latest(person.consents, BIOMETRIC)
    if current is None or current.action != "grant":
        # A withdrawal recorded in the gatekeeper outranks the export: no template is made.
        return
    added = enrol(ctx.session, person, row.photos, engine=engine, settings=settings, now=now, actor=ctx.actor)
    ctx.report.templates_added += added
    if added:
        ctx.changed("template.created", None, f"{added} template(s)")


def enrol(
    session: Session,
    person: Person,
    photos: Sequence[Path],
    *,
    engine: FaceEngine | None,
    settings: Settings,
    now: datetime,
    actor: str,
) -> int:
    """Make a template from each new enrolment photo; raises InvalidInputError unless each shows one face."""
    known = {t.source_sha256 for t in person.templates}
    added = 0
    for path in photos:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in known:
            continue
        if engine is None:
            raise InvalidInputError("no face engine available to enrol photos")
        try:
            encoding = engine.encode_single(media.decode(data, max_pixels=settings.max_pixels).pixels)
        except GatekeeperError as exc:
            raise InvalidInputError(f"enrolment photo {path.name}: {exc}") from exc
        template = FaceTemplate(
            person=person,
            encoding=encoding_to_bytes(encoding),
            model=engine.model,
            source_sha256=digest,
            created_at=now,
        )
        session.add(template)
        session.flush()
        known.add(digest)
        added += 1
        audit.append(
            session,
            at=now,
            actor=actor,
            action="template.created",
            subject=_subject(person),
            details={"template": template.id, "model": engine.model, "source_sha256": digest},
        )
    return added


def delete_templates(session: Session, person: Person, *, now: datetime, actor: str, why: str) -> int:
    """Delete every biometric template of `person`, auditing the deletion."""
    count = len(person.templates)
    if count:
        ids = [t.id for t in person.templates]
        person.templates.clear()
        session.flush()
        audit.append(
            session,
            at=now,
            actor=actor,
            action="template.deleted",
            subject=_subject(person),
            details={"templates": ids, "why": why},
        )
    return count


def _add_record(
    session: Session,
    person: Person,
    *,
    kind: str,
    channel: str,
    action: str,
    at: datetime,
    how: str,
    now: datetime,
    actor: str,
    source: str | None = None,
    granted_by: str | None = None,
    granted_by_name: str | None = None,
    valid_until: datetime | None = None,
    named: str = "no",
) -> ConsentRecord:
    record = ConsentRecord(
        person=person,
        kind=kind,
        channel=channel,
        action=action,
        at=at,
        granted_by=granted_by,
        granted_by_name=granted_by_name,
        valid_until=valid_until,
        named=named,
        how=how,
        recorded_at=now,
        recorded_by=actor,
    )
    session.add(record)
    session.flush()
    details: dict[str, Any] = {"record": record.id, "kind": kind, "channel": channel, "how": how}
    if action == "grant":
        details.update(granted_by=granted_by, valid_until=valid_until, named=named, at=at)
    if granted_by_name:
        details["by"] = granted_by_name
    if source:
        details["source"] = source
    audit.append(
        session, at=now, actor=actor, action=f"consent.{action}", subject=_subject(person), details=details
    )
    return record


def _subject(person: Person) -> str:
    return f"person:{person.id}"


# --- one person at a time --------------------------------------------------------------------------


def find_person(session: Session, external_id: str) -> Person:
    """The person with `external_id`, consents and templates loaded; raises PersonNotFoundError."""
    person = session.scalar(
        select(Person)
        .where(Person.external_id == external_id)
        .options(selectinload(Person.consents), selectinload(Person.templates))
    )
    if person is None:
        raise PersonNotFoundError(external_id)
    return person


@dataclass(frozen=True)
class Grant:
    """A recorded grant, and why the person is still not publishable on its channel (empty: they are)."""

    record: ConsentRecord
    blockers: tuple[str, ...]


def grant_consent(
    session: Session,
    external_id: str,
    channel: str,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    granted_by: str,
    granted_by_name: str | None = None,
    valid_until: date | None = None,
    named: str | None = None,
) -> Grant:
    """Record a grant for one channel, effective now, and say whether it makes the person publishable.

    `named` None keeps what the person's last grant for the channel said (no grant yet: "no").
    Raises PersonNotFoundError, InvalidInputError.
    """
    check_channel(settings, channel)
    _choice("granted_by", granted_by, GRANTED_BY)
    if named is not None:
        _choice("named", named, NAMED)
    if valid_until is not None and valid_until < now.date():
        raise InvalidInputError(f"valid until {valid_until.isoformat()} is in the past", field="valid_until")
    person = find_person(session, external_id)
    if person.status == "erased":
        raise InvalidInputError(f"{external_id} was erased; consent cannot be granted")
    if named is None:
        previous = latest((r for r in person.consents if r.kind == "publication"), channel, action="grant")
        named = previous.named if previous is not None else "no"
    record = _add_record(
        session,
        person,
        kind="publication",
        channel=channel,
        action="grant",
        at=now,
        granted_by=granted_by,
        granted_by_name=granted_by_name,
        valid_until=end_of(valid_until) if valid_until else None,
        named=named,
        how="staff",
        now=now,
        actor=actor,
    )
    blockers = policy.consent_reasons(person_state(person), channel, now, policy_for(settings))
    return Grant(record, blockers)


def withdraw_consent(
    session: Session,
    external_id: str,
    channels: Sequence[str] = (),
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    how: str = "staff",
) -> list[ConsentRecord]:
    """Withdraw consent for the given channels (none: every channel), effective now."""
    for channel in channels:
        check_channel(settings, channel)
    person = find_person(session, external_id)
    targets = list(channels) or sorted(
        {r.channel for r in person.consents if r.kind == "publication"} | set(settings.channels)
    )
    added = []
    for channel in targets:
        current = policy.current_record(person_state(person).records, channel, now)
        if current is not None and current.action == "withdraw" and current.channel == channel:
            continue
        added.append(
            _add_record(
                session,
                person,
                kind="publication",
                channel=channel,
                action="withdraw",
                at=now,
                how=how,
                now=now,
                actor=actor,
            )
        )
    return added


@dataclass(frozen=True)
class BiometricWithdrawal:
    """What withdrawing biometric consent did: the record added (None: none in force), templates deleted."""

    record: ConsentRecord | None
    templates_deleted: int


def withdraw_biometric(
    session: Session, external_id: str, *, by: str | None, now: datetime, actor: str
) -> BiometricWithdrawal:
    """Withdraw biometric consent, effective now, and delete every template at once (audited).

    `by` names who withdrew it (the person, a parent). Raises PersonNotFoundError.
    """
    person = find_person(session, external_id)
    current = latest(person.consents, BIOMETRIC)
    record = None
    if current is not None and current.action == "grant":
        record = _add_record(
            session,
            person,
            kind="biometric",
            channel=BIOMETRIC,
            action="withdraw",
            at=now,
            how="staff",
            now=now,
            actor=actor,
            granted_by_name=by,
        )
    deleted = delete_templates(session, person, now=now, actor=actor, why="biometric consent withdrawn")
    return BiometricWithdrawal(record, deleted)


def set_safeguarding(
    session: Session, external_id: str, flag: bool, *, reason: str, now: datetime, actor: str
) -> bool:
    """Set or clear the safeguarding flag (audited with the reason); False when it already was so.

    Raises PersonNotFoundError, InvalidInputError (no reason).
    """
    if not reason.strip():
        raise InvalidInputError("a reason is required to set or clear the safeguarding flag", field="reason")
    person = find_person(session, external_id)
    if person.safeguarding == flag:
        return False
    person.safeguarding, person.updated_at = flag, now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action="person.safeguarding_set" if flag else "person.safeguarding_cleared",
        subject=_subject(person),
        details={"reason": reason.strip()},
    )
    return True


def last_valid_day(valid_until: datetime) -> date:
    """The last day a consent holds, as the user wrote it (stored as the first moment after that day)."""
    return (valid_until - timedelta(microseconds=1)).date()


@dataclass(frozen=True)
class ChannelStatus:
    """Whether a person may appear on one channel now, and on what terms."""

    channel: str
    publishable: bool
    reasons: tuple[str, ...]
    granted_by: str | None
    valid_until: datetime | None
    named: str | None


@dataclass(frozen=True)
class PersonSummary:
    """What `people show` prints."""

    external_id: str
    name: str
    date_of_birth: date | None
    status: str
    safeguarding: bool
    templates: int
    biometric_consent: bool
    channels: tuple[ChannelStatus, ...]
    history: tuple[ConsentRecord, ...]


def summarise_person(
    session: Session, external_id: str, *, settings: Settings, now: datetime
) -> PersonSummary:
    """The current consent per channel, template count and full history; raises PersonNotFoundError."""
    person = find_person(session, external_id)
    state = person_state(person)
    rules = policy_for(settings)
    channels = list(settings.channels) + sorted(
        {r.channel for r in person.consents if r.kind == "publication"} - set(settings.channels)
    )
    statuses = []
    for channel in channels:
        reasons = policy.consent_reasons(state, channel, now, rules)
        current = policy.current_record(state.records, channel, now)
        grant = current if current is not None and current.action == "grant" else None
        statuses.append(
            ChannelStatus(
                channel=channel,
                publishable=not reasons,
                reasons=reasons,
                granted_by=grant.granted_by if grant else None,
                valid_until=grant.valid_until if grant else None,
                named=grant.named if grant else None,
            )
        )
    bio = latest(person.consents, BIOMETRIC)
    return PersonSummary(
        external_id=person.external_id,
        name=person.display_name,
        date_of_birth=person.date_of_birth,
        status=person.status,
        safeguarding=person.safeguarding,
        templates=len(person.templates),
        biometric_consent=bio is not None and bio.action == "grant",
        channels=tuple(statuses),
        history=tuple(sorted(person.consents, key=lambda r: r.id)),
    )
