"""A scan's use cases: its source and run, each picture decided and recorded as outside placements with
takedown tasks, and the run's end (placements no longer found are ended).

Each picture is decided by the gate itself (`photos.gate.gate_photo`: the same engine, template
index and consent rules, every face at every angle) for the source's channel as of now; nothing is
published or copied out. Every place a picture was found becomes an outside placement
(`Publication` with `external`), so a later withdrawal or expiry opens a takedown task for it as
for any other placement (`publishing.recheck`). A picture not publishable today opens a task now;
one needing review is in the review queue, since its photo's latest decision is `review`.

Each function flushes and never commits: `scan.runner` commits one picture at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db import audit
from consent_db.audit import AuditAction
from consent_db.models import Publication, ScanFinding, ScanPlacement, ScanRun, ScanSource, TakedownTask
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.consent.state import check_channel
from gatekeeper.errors import InvalidInputError, RecordNotFoundError
from gatekeeper.photos.gate import GateResult, GateTools, gate_photo, recheck
from gatekeeper.publishing.takedowns import complete_task, open_task, record_takedown
from gatekeeper.queueing import JobKind, request_job
from gatekeeper.scan.found import KINDS, Problem, Reading
from gatekeeper.scan.renditions import Picture

# Why a placement was ended by a scan (the reason its takedown is recorded with).
GONE_FROM_SOURCE = "gone_from_source"
REPLACED_AT_SOURCE = "replaced_at_source"
RUNNING, DONE, FAILED, QUEUED = "running", "done", "failed", "queued"


def source_for(
    session: Session, kind: str, location: str, channel: str, *, settings: Settings, now: datetime, actor: str
) -> ScanSource:
    """The source of that kind, place and channel, recorded when it is new.

    Raises UnknownChannelError, InvalidInputError.
    """
    check_channel(settings.policy, channel)
    if kind not in KINDS:
        raise InvalidInputError(
            f"unknown kind of source {kind!r} (one of {', '.join(KINDS)})", field="source"
        )
    source = session.scalar(
        select(ScanSource).where(
            ScanSource.kind == kind, ScanSource.location == location, ScanSource.channel == channel
        )
    )
    if source is None:
        source = ScanSource(kind=kind, location=location, channel=channel, created_at=now, created_by=actor)
        session.add(source)
        session.flush()
    return source


def new_run(
    session: Session,
    source: ScanSource,
    *,
    now: datetime,
    actor: str,
    max_pages: int | None = None,
    max_images: int | None = None,
    state: str = RUNNING,
) -> ScanRun:
    """A run of `source` (audited)."""
    run = ScanRun(
        source_id=source.id,
        state=state,
        started_at=now,
        actor=actor,
        complete=False,
        max_pages=max_pages,
        max_images=max_images,
        progress={},
        totals={},
        problems=[],
    )
    session.add(run)
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.SCAN_STARTED,
        subject=f"scan:{run.id}",
        details={
            "source": source.id,
            "kind": source.kind,
            "where": source.location,
            "channel": source.channel,
        },
    )
    return run


def get_run(session: Session, run_id: int) -> ScanRun:
    """A run by id; raises RecordNotFoundError."""
    run = session.get(ScanRun, run_id)
    if run is None:
        raise RecordNotFoundError("scan", run_id)
    return run


def _live_placements(session: Session, source_id: int) -> dict[str, tuple[ScanPlacement, Publication]]:
    rows = session.execute(
        select(ScanPlacement, Publication)
        .join(Publication, ScanPlacement.publication_id == Publication.id)
        .where(ScanPlacement.source_id == source_id, Publication.taken_down_at.is_(None))
        .order_by(Publication.id)
    ).all()
    return {publication.target: (placement, publication) for placement, publication in rows}


def _blocking_person(verdict: policy.PhotoVerdict) -> int | None:
    """The first identified person without consent now (the task names them), if any."""
    for face in verdict.faces:
        if face.person is not None and face.outcome == "no_consent":
            return int(face.person)
    return None


def _end(
    session: Session, publication: Publication, reason: str, *, run_id: int, now: datetime, actor: str
) -> None:
    """End a placement: its open takedown task is done (the image is gone), or it is recorded taken down."""
    open_tasks = session.scalars(
        select(TakedownTask).where(
            TakedownTask.publication_id == publication.id, TakedownTask.done_at.is_(None)
        )
    ).all()
    for task in open_tasks:
        complete_task(
            session, task.id, note=f"no longer found at the source by scan {run_id}", now=now, actor=actor
        )
    if publication.taken_down_at is None:
        record_takedown(session, publication, [reason], now=now, actor=actor)


def record_picture(
    session: Session,
    run: ScanRun,
    picture: Picture,
    *,
    tools: GateTools,
    now: datetime,
    actor: str,
) -> ScanFinding:
    """Decide a picture (its largest copy) for the run's channel, and record every place it was found
    as an outside placement of its photo; a takedown task for each place if it is not publishable.

    A place already recorded for this source with the same picture keeps its placement (now decided
    from this decision) and gets no second open task; a place now showing another picture ends the
    old placement and starts a new one.
    """
    source = session.get(ScanSource, run.source_id)
    assert source is not None
    result = gate_photo(session, picture.data, channel=source.channel, tools=tools, now=now, actor=actor)
    fresh = recheck(session, result.decision_id, settings=tools.settings, now=now)
    who = _blocking_person(fresh)
    live = _live_placements(session, source.id)
    changes: list[str] = []
    tasks: list[int] = []
    places: list[dict[str, Any]] = []
    for place, width, height in picture.places:
        existing = live.get(place.url)
        if existing is not None and existing[1].photo_id == result.photo_id:
            placement, publication = existing
            publication.decision_id = result.decision_id
            change = "same"
        else:
            change = "new"
            if existing is not None:
                _end(session, existing[1], REPLACED_AT_SOURCE, run_id=run.id, now=now, actor=actor)
                change = "changed"
            publication = Publication(
                photo_id=result.photo_id,
                decision_id=result.decision_id,
                channel=source.channel,
                target=place.url,
                sha256=None,
                published_at=place.posted_at or now,
                external=True,
                published_by=actor,
            )
            session.add(publication)
            session.flush()
            placement = ScanPlacement(source_id=source.id, publication_id=publication.id, last_seen_at=now)
            session.add(placement)
            audit.append(
                session,
                at=now,
                actor=actor,
                action=AuditAction.PUBLICATION_RECORDED,
                subject=f"photo:{result.photo_id}",
                details={
                    "publication": publication.id,
                    "where": place.url,
                    "channel": source.channel,
                    "scan": run.id,
                },
            )
        placement.last_run_id, placement.last_seen_at = run.id, now
        if fresh.verdict != policy.Verdict.PUBLISHABLE:
            task = open_task(session, publication, fresh.reasons, person_id=who, now=now, actor=actor)
            if task is not None:
                tasks.append(task.id)
        places.append(
            {
                "url": place.url,
                "page": place.page,
                "posted_at": place.posted_at.isoformat() if place.posted_at else None,
                "width": width,
                "height": height,
                "change": change,
            }
        )
        changes.append(change)
    finding = ScanFinding(
        run_id=run.id,
        photo_id=result.photo_id,
        decision_id=result.decision_id,
        verdict=fresh.verdict,
        reasons=list(fresh.reasons),
        faces=_faces(result),
        places=places,
        tasks=tasks,
        change="changed" if "changed" in changes else "new" if "new" in changes else "same",
    )
    session.add(finding)
    session.flush()
    return finding


def _faces(result: GateResult) -> list[dict[str, Any]]:
    return [
        {
            "box": list(face.box),
            "person": face.person,
            "distance": face.distance,
            "outcome": face.outcome,
            "reasons": list(face.reasons),
            **({"covered": True} if face.covered else {}),
        }
        for face in result.faces
    ]


@dataclass(frozen=True)
class Ended:
    """A placement a run ended because its place was no longer found."""

    publication_id: int
    target: str


def finish_run(
    session: Session,
    run_id: int,
    reading: Reading,
    problems: list[Problem],
    *,
    now: datetime,
    actor: str,
) -> list[Ended]:
    """End the run: with a complete reading, every placement of the source not seen by this run is
    ended (its open task done); otherwise only those whose URL answered 404 or 410. Totals and
    problems are kept with the run (audited)."""
    run = get_run(session, run_id)
    ended: list[Ended] = []
    for target, (placement, publication) in _live_placements(session, run.source_id).items():
        if placement.last_run_id == run.id:
            continue
        if reading.complete or target in reading.gone:
            _end(session, publication, GONE_FROM_SOURCE, run_id=run.id, now=now, actor=actor)
            ended.append(Ended(publication.id, target))
    findings = list(run.findings)
    verdicts = {v: sum(1 for f in findings if f.verdict == v) for v in policy.Verdict}
    run.totals = {
        **reading.counts,
        "pictures": len(findings),
        "places": sum(len(f.places) for f in findings),
        **{str(v): n for v, n in verdicts.items()},
        "tasks_opened": sum(len(f.tasks) for f in findings),
        "new_places": sum(1 for f in findings for p in f.places if p["change"] != "same"),
        "placements_ended": len(ended),
        "problems": len(problems),
    }
    run.problems = [p.as_json() for p in problems]
    run.complete = reading.complete
    run.state, run.finished_at = DONE, now
    session.flush()
    audit.append(
        session,
        at=now,
        actor=actor,
        action=AuditAction.SCAN_FINISHED,
        subject=f"scan:{run.id}",
        details={"totals": run.totals, "complete": run.complete, "ended": [e.publication_id for e in ended]},
    )
    return ended


def rescan_watched(session: Session, *, now: datetime, actor: str) -> list[int]:
    """A queued run, and its scan job, for every watched source that has none waiting or running;
    the runs' ids."""
    runs = []
    for source in session.scalars(
        select(ScanSource).where(ScanSource.watch.is_(True)).order_by(ScanSource.id)
    ):
        busy = session.scalar(
            select(ScanRun.id)
            .where(ScanRun.source_id == source.id, ScanRun.state.in_((QUEUED, RUNNING)))
            .limit(1)
        )
        if busy is not None:
            continue
        run = new_run(session, source, now=now, actor=actor, state=QUEUED)
        request_job(session, JobKind.SCAN, [run.id], now=now)
        runs.append(run.id)
    return runs


def fail_run(session: Session, run_id: int, error: str, *, now: datetime) -> None:
    """Record that a run stopped on an error (what it recorded before stays)."""
    run = get_run(session, run_id)
    run.state, run.finished_at, run.error = FAILED, now, error
    session.flush()
