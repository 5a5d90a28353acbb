"""A scan as a background job, and the periodic re-scan of watched sources."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from consent_db.models import ScanRun
from consent_db.session import unit_of_work
from gatekeeper.runtime import Runtime
from gatekeeper.scan import scanning
from helpers import run
from workers import JobQueue


def test_watched_sources_are_scanned_again_as_jobs_once_each(
    enrolled: Runtime, corpus: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(corpus.faces_dir / "biden" / "biden2.jpg", folder / "visit.jpg")
    assert run(enrolled, "scan", "--channel", "website", "--watch", folder).exit_code == 0
    assert run(enrolled, "scan", "--channel", "print", folder).exit_code == 0  # not watched
    with unit_of_work(enrolled.sessions) as session:
        first = scanning.rescan_watched(session, now=datetime.now(UTC), actor="scheduler")
        again = scanning.rescan_watched(session, now=datetime.now(UTC), actor="scheduler")
    assert len(first) == 1 and again == []  # one waiting already
    assert JobQueue.of(enrolled).drain(max_wait=10) == 1
    with unit_of_work(enrolled.sessions) as session:
        runs = list(session.scalars(select(ScanRun).order_by(ScanRun.id)))
        rerun = runs[-1]
        assert (rerun.id, rerun.state, rerun.source.channel) == (first[0], "done", "website")
        assert rerun.totals["blocked"] == 1 and rerun.totals["tasks_opened"] == 0  # its task is open
        assert rerun.progress["phase"] == "done"
