"""A scan's report as the command line, the page and the CSV give it: one line per picture (every
place it was found, its verdict, reasons and faces in the gate's codes), what could not be read,
and the totals."""

from __future__ import annotations

import csv
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent_db.models import ScanFinding, ScanRun, ScanSource
from gatekeeper.people.identity import masked_reasons

CSV_COLUMNS = (
    "url",
    "page",
    "posted_at",
    "verdict",
    "reasons",
    "faces",
    "photo",
    "tasks",
    "change",
    "problem",
)


def finding_json(finding: ScanFinding) -> dict[str, Any]:
    """One picture of a scan: its places, verdict, reasons, faces and the takedown tasks it opened."""
    return {
        "photo": finding.photo_id,
        "urls": [p["url"] for p in finding.places],
        "places": finding.places,
        "verdict": finding.verdict,
        "reasons": finding.reasons,
        "faces": finding.faces,
        "tasks": finding.tasks,
        "change": finding.change,
    }


def run_json(run: ScanRun, source: ScanSource) -> dict[str, Any]:
    """A run's summary: its source, state, whether it reached everything, progress and totals."""
    return {
        "scan": run.id,
        "kind": source.kind,
        "source": source.location,
        "channel": source.channel,
        "state": run.state,
        "complete": run.complete,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "progress": run.progress,
        "totals": run.totals,
        "error": run.error,
    }


def findings(session: Session, run_id: int) -> list[ScanFinding]:
    """A run's pictures, not publishable first, then in the order found."""
    rows = list(
        session.scalars(select(ScanFinding).where(ScanFinding.run_id == run_id).order_by(ScanFinding.id))
    )
    return sorted(rows, key=lambda f: (f.verdict == "publishable", f.id))


def _faces_text(faces: list[dict[str, Any]]) -> str:
    return "; ".join(
        f["outcome"]
        + (f" {f['person']}" if f.get("person") else "")
        + (" (covered)" if f.get("covered") else "")
        for f in faces
    )


def write_csv(out: TextIO, run: ScanRun, rows: list[ScanFinding], *, viewer: str | None = None) -> None:
    """The report as CSV: a row per place of every picture, then a row per problem. For a member of
    staff (`viewer`, a role) the reasons are as that role may see them (`masked_reasons`)."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for finding in rows:
        for place in finding.places:
            writer.writerow(
                [
                    place["url"],
                    place.get("page") or "",
                    place.get("posted_at") or "",
                    finding.verdict,
                    " ".join(finding.reasons if viewer is None else masked_reasons(finding.reasons, viewer)),
                    _faces_text(finding.faces),
                    finding.photo_id or "",
                    " ".join(str(t) for t in finding.tasks),
                    place.get("change", finding.change),
                    "",
                ]
            )
    for problem in run.problems:
        writer.writerow([problem["where"], "", "", "", problem["code"], "", "", "", "", problem["why"]])
