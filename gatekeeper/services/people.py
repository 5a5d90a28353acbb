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

REQUIRED_COLUMNS = (
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
GRANTED_BY = ("self", "parent", "guardian")
NAMED = ("yes", "first_name", "no")


@dataclass(frozen=True)
class PersonRow:
    """One validated row of a people CSV."""

    line: int
    external_id: str
    name: str
    date_of_birth: date | None
    photos: tuple[Path, ...]
    biometric: bool
    channels: tuple[str, ...]
    granted_by: str
    granted_on: date | None
    valid_until: date | None
    named: str
    left_on: date | None = None


@dataclass(frozen=True)
class RowProblem:
    """Why one CSV row was not imported."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did: counts and the rows it refused."""

    rows: int = 0
    imported: int = 0
    unchanged: int = 0
    people_created: int = 0
    consent_records_added: int = 0
    templates_added: int = 0
    templates_deleted: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- CSV parsing -----------------------------------------------------------------------------------


def parse_people_csv(data: bytes, base: Path, settings: Settings) -> tuple[list[PersonRow], list[RowProblem]]:
    """Parse a people CSV (UTF-8, BOM optional); raises InvalidInputError when the header is wrong."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"the CSV is not UTF-8 (byte {exc.start} cannot be decoded)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InvalidInputError(f"the CSV header lacks column(s): {', '.join(missing)}")
    reader.fieldnames = header
    rows: list[PersonRow] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        try:
            row = _parse_row(
                line, {k: (v or "").strip() for k, v in raw.items() if k is not None}, base, settings
            )
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


def _parse_row(line: int, raw: dict[str, str], base: Path, settings: Settings) -> PersonRow:
    external_id = raw["external_id"]
    if not external_id:
        raise InvalidInputError("external_id is empty")
    if not raw["name"]:
        raise InvalidInputError("name is empty")
    channels = tuple(dict.fromkeys(c.strip() for c in raw["channels"].split(";") if c.strip()))
    for channel in channels:
        check_channel(settings, channel)
    biometric = _choice("biometric_consent", raw["biometric_consent"].lower() or "no", ("yes", "no")) == "yes"
    granted_by = raw["granted_by"].lower()
    if granted_by:
        _choice("granted_by", granted_by, GRANTED_BY)
    elif channels or biometric:
        raise InvalidInputError("granted_by is required when consent is given (self, parent or guardian)")
    photos = tuple(base / p.strip() for p in raw["photos"].split(";") if p.strip())
    for photo in photos:
        if biometric and not photo.is_file():
            raise InvalidInputError(f"enrolment photo not found: {photo.name}")
    valid_until = _date("valid_until", raw["valid_until"])
    granted_on = _date("granted_on", raw["granted_on"])
    if valid_until and granted_on and valid_until < granted_on:
        raise InvalidInputError("valid_until is before granted_on")
    return PersonRow(
        line=line,
        external_id=external_id,
        name=raw["name"],
        date_of_birth=_date("date_of_birth", raw["date_of_birth"]),
        photos=photos,
        biometric=biometric,
        channels=channels,
        granted_by=granted_by or "self",
        granted_on=granted_on,
        valid_until=valid_until,
        named=_choice("named", raw["named"].lower() or "no", NAMED),
        left_on=_date("left_on", raw.get("left_on", "")),
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
    """Import validated rows, each all-or-nothing; refused rows are listed in the report."""
    report = ImportReport(rows=len(rows))
    for row in rows:
        # Counts of a row that fails are rolled back with it: tallied apart, merged on success.
        tally = ImportReport()
        try:
            with session.begin_nested():
                changed = _import_row(
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
        if changed:
            report.imported += 1
        else:
            report.unchanged += 1
    report.problems.sort(key=lambda p: p.line)
    return report


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
) -> bool:
    person = session.scalar(
        select(Person)
        .where(Person.external_id == row.external_id)
        .options(selectinload(Person.consents), selectinload(Person.templates))
    )
    changed = False
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
        changed = True
    elif (person.display_name, person.date_of_birth) != (row.name, row.date_of_birth):
        person.display_name, person.date_of_birth, person.updated_at = row.name, row.date_of_birth, now
        audit.append(
            session,
            at=now,
            actor=actor,
            action="person.updated",
            subject=_subject(person),
            details={"source": source, "fields": ["display_name", "date_of_birth"]},
        )
        changed = True
    if person.status == "erased":
        raise InvalidInputError(f"{row.external_id} was erased; an erased person is not re-imported")
    if row.left_on is not None and person.left_on != row.left_on:
        person.left_on, person.updated_at = row.left_on, now
        audit.append(
            session,
            at=now,
            actor=actor,
            action="person.left",
            subject=_subject(person),
            details={"source": source, "on": row.left_on.isoformat()},
        )
        changed = True

    granted_at = start_of(row.granted_on) if row.granted_on else now
    valid_until = end_of(row.valid_until) if row.valid_until else None
    for channel in row.channels:
        last_grant = latest(person.consents, channel, action="grant")
        if last_grant is not None and _same_grant(last_grant, row, valid_until):
            continue
        _add_record(
            session,
            person,
            kind="publication",
            channel=channel,
            action="grant",
            at=granted_at,
            granted_by=row.granted_by,
            valid_until=valid_until,
            named=row.named,
            how="import",
            now=now,
            actor=actor,
            source=source,
        )
        report.consent_records_added += 1
        changed = True
    for channel in sorted(
        {r.channel for r in person.consents if r.kind == "publication"} - set(row.channels)
    ):
        current = latest(person.consents, channel)
        if current is not None and current.action == "grant":
            _add_record(
                session,
                person,
                kind="publication",
                channel=channel,
                action="withdraw",
                at=now,
                how="import",
                now=now,
                actor=actor,
                source=source,
            )
            report.consent_records_added += 1
            changed = True
    changed |= _sync_biometric(
        session,
        person,
        row,
        engine=engine,
        settings=settings,
        now=now,
        actor=actor,
        source=source,
        granted_at=granted_at,
        report=report,
    )
    return changed


def _same_grant(record: ConsentRecord, row: PersonRow, valid_until: datetime | None) -> bool:
    same = (record.granted_by, record.valid_until, record.named) == (row.granted_by, valid_until, row.named)
    return same and (row.granted_on is None or record.at == start_of(row.granted_on))


def _sync_biometric(
    session: Session,
    person: Person,
    row: PersonRow,
    *,
    engine: FaceEngine | None,
    settings: Settings,
    now: datetime,
    actor: str,
    source: str,
    granted_at: datetime,
    report: ImportReport,
) -> bool:
    current = latest(person.consents, BIOMETRIC)
    has_consent = current is not None and current.action == "grant"
    if not row.biometric:
        if not has_consent:
            return False
        _add_record(
            session,
            person,
            kind="biometric",
            channel=BIOMETRIC,
            action="withdraw",
            at=now,
            how="import",
            now=now,
            actor=actor,
            source=source,
        )
        report.consent_records_added += 1
        report.templates_deleted += delete_templates(
            session, person, now=now, actor=actor, why="biometric consent withdrawn"
        )
        return True
    changed = False
    if not has_consent or current is None or current.granted_by != row.granted_by:
        _add_record(
            session,
            person,
            kind="biometric",
            channel=BIOMETRIC,
            action="grant",
            at=granted_at,
            granted_by=row.granted_by,
            how="import",
            now=now,
            actor=actor,
            source=source,
        )
        report.consent_records_added += 1
        changed = True
    added = enrol(session, person, row.photos, engine=engine, settings=settings, now=now, actor=actor)
    report.templates_added += added
    return changed or added > 0


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


def grant_consent(
    session: Session,
    external_id: str,
    channel: str,
    *,
    settings: Settings,
    now: datetime,
    actor: str,
    granted_by: str = "self",
    granted_by_name: str | None = None,
    valid_until: date | None = None,
    named: str = "no",
) -> ConsentRecord:
    """Record a grant for one channel, effective now; raises PersonNotFoundError, InvalidInputError."""
    check_channel(settings, channel)
    _choice("granted_by", granted_by, GRANTED_BY)
    _choice("named", named, NAMED)
    if valid_until is not None and valid_until < now.date():
        raise InvalidInputError(f"--until {valid_until.isoformat()} is in the past", field="valid_until")
    person = find_person(session, external_id)
    if person.status == "erased":
        raise InvalidInputError(f"{external_id} was erased; consent cannot be granted")
    return _add_record(
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
        templates=len(person.templates),
        biometric_consent=bio is not None and bio.action == "grant",
        channels=tuple(statuses),
        history=tuple(sorted(person.consents, key=lambda r: r.id)),
    )
