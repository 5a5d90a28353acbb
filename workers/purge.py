"""Purging and erasure as the command line and the purge job run them: one unit of work per item.

Each item (a photo, a person's templates, a request's details, the orphans of a store) commits on
its own, so a purge stopped half-way (a crash, a store that is away) keeps what it did and the
next run does the rest; one audited report lists everything.
"""

from __future__ import annotations

from datetime import UTC, datetime

from consent_db.models import PurgeReport
from consent_db.session import unit_of_work
from gatekeeper.errors import StorageError
from gatekeeper.retention import leaving as leaving_service
from gatekeeper.retention import purge as purge_service
from gatekeeper.runtime import Runtime
from gatekeeper.scan import keeping as scan_keeping
from gatekeeper.scan import runner as scan_runner


def _now() -> datetime:
    return datetime.now(UTC)


def run_purge(runtime: Runtime, *, now: datetime, actor: str) -> PurgeReport:
    """Purge what is due at `now`, one unit of work per item (resumable), then write the report."""
    sessions = runtime.sessions
    with unit_of_work(sessions) as session:
        due = purge_service.find_due(session, runtime.settings.retention, now)
    results = []
    for item in due:
        with unit_of_work(sessions) as session:
            if item.kind == "photo":
                result = purge_service.purge_photo(
                    session,
                    item.id,
                    originals=runtime.originals,
                    settings=runtime.settings,
                    now=now,
                    actor=actor,
                )
            elif item.kind == "templates":
                result = purge_service.purge_templates(session, item.id, now=now, actor=actor)
            else:
                result = purge_service.purge_request_details(session, item.id, now=now, actor=actor)
        results.append(result)
    results.append(_scan_originals(runtime, now=now, actor=actor))
    stores = [(runtime.originals, True)]
    if runtime.published.url != runtime.originals.url:
        stores.append((runtime.published, False))
    for store, originals in stores:
        with unit_of_work(sessions) as session:
            results.append(
                purge_service.sweep_orphans(session, store, originals=originals, now=now, actor=actor)
            )
    with unit_of_work(sessions) as session:
        return purge_service.write_report(
            session, started_at=now, now=_now(), actor=actor, results=results, settings=runtime.settings
        )


def _scan_originals(runtime: Runtime, *, now: datetime, actor: str) -> purge_service.PurgeResult:
    """Delete what scans downloaded once the report no longer needs it (gatekeeper/scan/keeping.py)."""
    result = purge_service.PurgeResult()
    try:
        with unit_of_work(runtime.sessions) as session:
            done = scan_keeping.delete_originals(
                session, runtime.originals, keep_days=runtime.settings.scan.keep_days, now=now, actor=actor
            )
        if done:
            result.deleted["scan_originals"] += len(done)
    except StorageError as exc:
        result.failures.append({"kind": "scan_originals", "id": "originals", "why": str(exc)})
    with unit_of_work(runtime.sessions) as session:
        stale = scan_keeping.stale_uploads(session, scan_runner.uploads_folder(runtime.settings), now=now)
    for path in stale:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            result.failures.append({"kind": "scan_upload", "id": path.name, "why": str(exc)})
        else:
            result.deleted["scan_uploads"] += 1
    return result


def run_erasure(runtime: Runtime, external_id: str, *, now: datetime, actor: str) -> PurgeReport:
    """Erase a person, then take down and purge every photo showing them; one report."""
    sessions = runtime.sessions
    with unit_of_work(sessions) as session:
        person = leaving_service.erase_person(session, external_id, now=now, actor=actor)
        photo_ids = purge_service.photos_showing(session, person.id)
    results = []
    for photo_id in photo_ids:
        with unit_of_work(sessions) as session:
            results.append(
                purge_service.purge_photo(
                    session,
                    photo_id,
                    originals=runtime.originals,
                    settings=runtime.settings,
                    now=now,
                    actor=actor,
                    why="erasure",
                )
            )
    with unit_of_work(sessions) as session:
        return purge_service.write_report(
            session, started_at=now, now=_now(), actor=actor, results=results, settings=runtime.settings
        )
