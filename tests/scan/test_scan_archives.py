"""Scanning social media archives as their owners download them, read from the zip in place: every
photo is decided, with its post's URL (X) or its post's date and path (Facebook, Instagram)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from scan_helpers import PHOTOS, facebook_archive, instagram_archive, x_archive
from sqlalchemy import select

from consent_db.models import TakedownTask
from consent_db.session import unit_of_work
from gatekeeper import policy
from gatekeeper.errors import InvalidInputError
from gatekeeper.runtime import Runtime
from gatekeeper.scan.archives import archive_kind
from helpers import run

Builder = Callable[[Path, dict[str, bytes]], Path]


def images(corpus: Any) -> dict[str, bytes]:
    return {
        f"{name}.jpg": (corpus.faces_dir / PHOTOS[name]).read_bytes() for name in ("biden", "obama", "kit")
    }


@pytest.mark.parametrize(
    ("builder", "kind"), [(facebook_archive, "facebook"), (instagram_archive, "instagram"), (x_archive, "x")]
)
def test_an_archive_scan_flags_the_photos_without_consent_with_their_posts(
    enrolled: Runtime, corpus: Any, tmp_path: Path, builder: Builder, kind: str
) -> None:
    archive = builder(tmp_path / f"{kind}.zip", images(corpus))
    before = set(os.listdir(tmp_path))
    result = run(enrolled, "scan", "--channel", "website", "--json", archive)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]
    assert (summary["kind"], summary["state"], summary["complete"]) == (kind, "done", True)
    found = {line["faces"][0]["person"]: line for line in lines if "faces" in line}
    assert set(found) == {"biden", "obama", "kit_harington"}
    assert found["biden"]["verdict"] == policy.Verdict.BLOCKED
    assert found["obama"]["verdict"] == found["kit_harington"]["verdict"] == policy.Verdict.PUBLISHABLE
    assert all(line["places"][0]["posted_at"] for line in found.values())
    biden = found["biden"]["places"][0]
    if kind == "x":
        assert biden["url"] == "https://x.com/springfield_school/status/1790000000000000000/photo/1"
        assert biden["page"] == "https://x.com/springfield_school/status/1790000000000000000"
        assert biden["posted_at"] == "2024-05-10T09:30:00+00:00"
    elif kind == "facebook":
        assert biden["url"] == (
            "Facebook post of 2023-11-14 22:13 UTC: "
            "your_facebook_activity/posts/media/Timelinephotos_1/biden.jpg"
        )
    else:
        assert biden["url"].startswith("Instagram post of 2024-05-06 ") and biden["url"].endswith(
            "media/posts/202405/biden.jpg"
        )
    # The last photo is in an album or a story, not a post: still found, with its date.
    assert found["kit_harington"]["places"][0]["posted_at"] is not None
    with unit_of_work(enrolled.sessions) as session:
        targets = session.scalars(select(TakedownTask.target)).all()
    assert targets == [biden["url"]]
    assert set(os.listdir(tmp_path)) == before  # nothing was unpacked beside the archive


def test_a_zip_that_is_no_social_archive_is_refused_with_a_reason(scan_rt: Runtime, tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("holiday/readme.txt", "hello")
    result = run(scan_rt, "scan", "--channel", "website", path)
    assert result.exit_code == 1
    assert "not a Facebook or Instagram (JSON) or X archive" in result.output
    with pytest.raises(InvalidInputError, match="not a Facebook"):
        archive_kind(path)
