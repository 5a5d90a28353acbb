"""Scanning a folder (a website export): an unknown face goes to the review queue and opens a task;
files that are not images are passed over, ones named as images but unreadable are reported."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scan_helpers import PHOTOS, facebook_archive
from sqlalchemy import select

from consent_db.models import Photo, Publication, TakedownTask
from consent_db.session import unit_of_work
from gatekeeper import policy
from gatekeeper.photos.review import open_reviews
from gatekeeper.runtime import Runtime
from gatekeeper.scan import runner
from helpers import run
from workers.purge import run_purge


def test_a_folder_scan_sends_unknown_faces_to_review_and_reports_what_it_could_not_read(
    enrolled: Runtime, corpus: Any, tmp_path: Path
) -> None:
    rt = Runtime(
        enrolled.settings.with_(policy={"unknown_faces": "review"}),
        faces=enrolled.faces,
    )
    export = tmp_path / "export" / "wp-content" / "uploads"
    export.mkdir(parents=True)
    shutil.copy(corpus.faces_dir / "lin_manuel_miranda" / "lin-manuel-miranda.png", export / "play.png")
    shutil.copy(corpus.faces_dir / "obama" / "obama2.jpg", export / "assembly.jpg")
    (export / "index.html").write_text("<html></html>")
    (export / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / "export" / ".hidden.jpg").write_bytes(b"hidden")
    (export / "elsewhere.jpg").symlink_to(corpus.faces_dir / "biden" / "biden2.jpg")
    try:
        result = run(rt, "scan", "--channel", "website", "--json", tmp_path / "export")
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        found = {Path(line["urls"][0]).name: line for line in lines if "urls" in line}
        assert set(found) == {"play.png", "assembly.jpg"}
        assert found["play.png"]["verdict"] == policy.Verdict.REVIEW
        assert found["assembly.jpg"]["verdict"] == policy.Verdict.PUBLISHABLE
        problems = {Path(p["problem"]["where"]).name: p["problem"]["code"] for p in lines if "problem" in p}
        assert problems == {"broken.jpg": "unreadable_image", "elsewhere.jpg": "not_a_file"}
        assert lines[-1]["totals"]["other_files"] == 1
        with unit_of_work(rt.sessions) as session:
            waiting = {item.photo_id for item in open_reviews(session, viewer="reviewer")}
            tasks = session.scalars(select(TakedownTask.target)).all()
            places = session.scalars(select(Publication.target).order_by(Publication.id)).all()
        assert waiting == {found["play.png"]["photo"]}
        assert tasks == [str(export / "play.png")]
        assert sorted(places) == sorted([str(export / "play.png"), str(export / "assembly.jpg")])

        # Once the report no longer needs them, the downloaded copies go with the purge; the one
        # waiting for review stays, and so do the photos, their faces and their placements.
        assembly, play = found["assembly.jpg"]["photo"], found["play.png"]["photo"]
        with unit_of_work(rt.sessions) as session:
            keys = {p.id: p.original_key for p in session.scalars(select(Photo))}
        assert all(rt.originals.exists(k) for k in keys.values() if k)
        report = run_purge(rt, now=datetime.now(UTC) + timedelta(days=2), actor="t")
        assert "scan_originals" not in report.deleted
        report = run_purge(rt, now=datetime.now(UTC) + timedelta(days=31), actor="t")
        assert report.deleted["scan_originals"] == 1
        with unit_of_work(rt.sessions) as session:
            after = {p.id: p.original_key for p in session.scalars(select(Photo))}
            live = session.scalars(
                select(Publication.photo_id).where(Publication.taken_down_at.is_(None))
            ).all()
        assert after[assembly] is None and not rt.originals.exists(keys[assembly] or "")
        assert after[play] == keys[play] and rt.originals.exists(keys[play] or "")
        assert assembly in live
    finally:
        if "db" in rt.__dict__:
            rt.db.dispose()


def test_the_purge_deletes_uploaded_archives_no_run_waits_for_a_day_later(
    scan_rt: Runtime, corpus: Any, tmp_path: Path
) -> None:
    photo = (corpus.faces_dir / PHOTOS["kit"]).read_bytes()
    waiting = runner.keep_upload(
        scan_rt.settings, facebook_archive(tmp_path / "a.zip", {"k.jpg": photo}).read_bytes(), "waiting.zip"
    )
    with unit_of_work(scan_rt.sessions) as session:
        runner.start_scan(
            session,
            str(waiting),
            channel="social_media",
            settings=scan_rt.settings,
            now=datetime.now(UTC),
            actor="t",
            state="queued",
        )
    folder = runner.uploads_folder(scan_rt.settings)
    left = folder / "left-behind.zip"
    left.write_bytes(b"an upload whose run never came")
    fresh = folder / "fresh.zip"
    fresh.write_bytes(b"uploaded a minute ago")
    old = (datetime.now(UTC) - timedelta(days=2)).timestamp()
    for path in (waiting, left):
        os.utime(path, (old, old))
    report = run_purge(scan_rt, now=datetime.now(UTC), actor="t")
    assert report.deleted.get("scan_uploads") == 1 and report.failures == []
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.zip", "waiting.zip"]
