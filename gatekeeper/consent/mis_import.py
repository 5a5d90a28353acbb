"""Importing validated people rows: people, publication and biometric consent, enrolment photos.

An import changes only what imports granted: each row is compared with what earlier imports
recorded, and consent recorded in the gatekeeper itself (command line, web, public form) is never
undone by an export dated before it. Every change is listed in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import ConsentRecord, Person
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.mis_csv import (
    GATEKEEPER_RECORD_KEPT,
    MATCHING_NOT_ALLOWED,
    NOT_PUBLISHABLE,
    PersonRow,
    RowProblem,
    RowWarning,
)
from gatekeeper.consent.records import IMPORT, add_record
from gatekeeper.consent.state import BIOMETRIC, latest, matching_reasons, person_state, policy_for
from gatekeeper.errors import GatekeeperError, InvalidInputError
from gatekeeper.faces import FaceEngine
from gatekeeper.people.contacts import sync_contacts
from gatekeeper.people.edit import set_last_day
from gatekeeper.people.enrolment import delete_templates, enrol
from gatekeeper.people.lookup import new_person, subject
from gatekeeper.policy import PersonStatus


@dataclass(frozen=True)
class RowChange:
    """One change an import made: the audit action (an `AuditAction`, or `person.left_on`), for whom,
    and on what."""

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

    def as_json(self) -> dict[str, Any]:
        """The report as `people import --json` prints it and the API answers it (with `dry_run`)."""
        return {
            "rows": self.rows,
            "imported": self.imported,
            "unchanged": self.unchanged,
            "people_created": self.people_created,
            "consent_records_added": self.consent_records_added,
            "templates_added": self.templates_added,
            "templates_deleted": self.templates_deleted,
            "changes": [
                {
                    "line": c.line,
                    "external_id": c.external_id,
                    "action": c.action,
                    "channel": c.channel,
                    "detail": c.detail,
                }
                for c in self.changes
            ],
            "warnings": [
                {"line": w.line, "external_id": w.external_id, "code": w.code, "message": w.message}
                for w in self.warnings
            ],
            "problems": [{"line": p.line, "reason": p.reason} for p in self.problems],
        }


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
        add_record(
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
        person = new_person(session, row.external_id, row.name, row.date_of_birth, now=now)
        report.people_created += 1
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.PERSON_CREATED,
            subject=subject(person),
            details={"source": source},
        )
        report.changes.append(RowChange(row.line, row.external_id, AuditAction.PERSON_CREATED))
    else:
        if person.status == PersonStatus.ERASED:
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
                action=AuditAction.PERSON_UPDATED,
                subject=subject(person),
                details={"source": source, "fields": fields},
            )
            report.changes.append(
                RowChange(row.line, row.external_id, AuditAction.PERSON_UPDATED, None, ", ".join(fields))
            )
    if row.has_left_on and person.left_on != row.left_on:
        set_last_day(person, row.left_on, today=now.date())
        person.updated_at = now
        audit.append(
            session,
            at=now,
            actor=actor,
            action=AuditAction.PERSON_LEFT if row.left_on else AuditAction.PERSON_UPDATED,
            subject=subject(person),
            details={"source": source, "left_on": row.left_on, "status": person.status},
        )
        left = row.left_on.isoformat() if row.left_on else "cleared"
        # Named after the field, not an audit action: its event is person.left or person.updated.
        report.changes.append(RowChange(row.line, row.external_id, "person.left_on", None, left))
    if row.contact_email is not None or row.guardians is not None:
        for change in sync_contacts(
            session,
            person,
            own=row.contact_email,
            guardians=row.guardians,
            now=now,
            actor=actor,
            source=source,
        ):
            report.changes.append(RowChange(row.line, row.external_id, "contact", None, change))
    ctx = _RowContext(session, row, person, now, actor, source, report)
    if row.channels is not None:
        _sync_publication(ctx, row.channels, settings)
    if row.biometric is not None:
        _sync_biometric(ctx, engine=engine, settings=settings)


def _sync_publication(ctx: _RowContext, channels: Sequence[str], settings: Settings) -> None:
    row, person, now = ctx.row, ctx.person, ctx.now
    granted_at = policy.start_of_day(row.granted_on) if row.granted_on else now
    valid_until = policy.end_of_day(row.valid_until) if row.valid_until else None
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
            evidence_ref=row.evidence_ref,
            wording_version=row.wording_version,
        )
        detail = f"granted by {row.granted_by}, named {row.named}"
        if row.granted_on:
            detail += f", from {row.granted_on.isoformat()}"
        if row.valid_until:
            detail += f", until {row.valid_until.isoformat()}"
        ctx.changed(AuditAction.CONSENT_GRANT, channel, detail)
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
        ctx.changed(AuditAction.CONSENT_WITHDRAW, channel, "no longer in the export")
    rules = policy_for(settings.policy)
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
        and (r.channel == channel if exact else policy.Channel(channel).covered_by(r.channel))
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
    same = same and (record.evidence_ref, record.wording_version) == (row.evidence_ref, row.wording_version)
    return same and (row.granted_on is None or record.at == policy.start_of_day(row.granted_on))


def _sync_biometric(ctx: _RowContext, *, engine: FaceEngine | None, settings: Settings) -> None:
    row, person, now = ctx.row, ctx.person, ctx.now
    records = [r for r in person.consents if r.kind == "biometric"]
    own = _latest_of([r for r in records if r.action in ("grant", "withdraw")], BIOMETRIC, imported=True)
    granted_at = policy.start_of_day(row.granted_on) if row.granted_on else now
    given_by = row.biometric_granted_by or row.granted_by
    if not row.biometric:
        if own is not None and own.action == "grant":
            kept = _later_gatekeeper_record(records, BIOMETRIC, own.at, exact=True)
            if kept is None:
                ctx.add(
                    kind="biometric", channel=BIOMETRIC, action="withdraw", at=now, granted_by=own.granted_by
                )
                ctx.changed(AuditAction.CONSENT_WITHDRAW, BIOMETRIC, "no longer in the export")
            elif kept.action == "grant":
                ctx.warn(GATEKEEPER_RECORD_KEPT, f"biometric consent not withdrawn; {_kept(kept)}")
    elif own is None or own.action != "grant" or own.granted_by != given_by:
        kept = _later_gatekeeper_record(
            records, BIOMETRIC, granted_at if row.granted_on else None, exact=True
        )
        if kept is not None:
            ctx.warn(GATEKEEPER_RECORD_KEPT, f"biometric consent not granted; {_kept(kept)}")
        else:
            ctx.add(kind="biometric", channel=BIOMETRIC, action="grant", at=granted_at, granted_by=given_by)
            ctx.changed(AuditAction.CONSENT_GRANT, BIOMETRIC, f"granted by {given_by}")
    if row.biometric_objection:
        act = "refuse" if row.biometric_objection == "self" else "object"
        answers = [
            r for r in records if r.granted_by == row.biometric_objection and r.granted_by_name is None
        ]
        last = max(answers, key=lambda r: (r.at, r.id)) if answers else None
        if last is None or last.action != act:
            ctx.add(
                kind="biometric", channel=BIOMETRIC, action=act, at=now, granted_by=row.biometric_objection
            )
            ctx.changed(AuditAction.of_consent(act), BIOMETRIC, f"by {row.biometric_objection}")
    blockers = matching_reasons(person, settings.policy, now)
    if blockers:
        deleted = delete_templates(
            ctx.session, person, now=now, actor=ctx.actor, why=f"matching not allowed: {', '.join(blockers)}"
        )
        ctx.report.templates_deleted += deleted
        if deleted:
            ctx.changed(AuditAction.TEMPLATE_DELETED, None, f"{deleted} template(s)")
        if row.biometric:
            ctx.warn(MATCHING_NOT_ALLOWED, f"no template is made or kept ({', '.join(blockers)})")
        return
    added = enrol(ctx.session, person, row.photos, engine=engine, settings=settings, now=now, actor=ctx.actor)
    ctx.report.templates_added += added
    if added:
        ctx.changed(AuditAction.TEMPLATE_CREATED, None, f"{added} template(s)")
