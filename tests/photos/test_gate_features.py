"""Gate features on real photos: captions, covering, sideways pixels, work limits, parallel workers."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from engines import recorded
from PIL import Image
from sqlalchemy import select

from consent_db.models import Face, Photo
from consent_db.session import unit_of_work
from gatekeeper import media
from gatekeeper.consent import records as consent_service
from gatekeeper.photos import gate as gate_service
from gatekeeper.publishing import publish as publish_service
from gatekeeper.runtime import Runtime
from gatekeeper.storage import LocalBlobStore
from helpers import enrol_corpus, gate_json, run
from workers import JobQueue

pytestmark = pytest.mark.slow

NAMES: dict[str, dict[str, Any]] = {
    "obama": {"name": "Barack Obama", "named": "yes", "channels": ("website", "social_media")},
    "biden": {"name": "Joe Biden", "named": "first_name", "channels": ("website", "social_media")},
    "kit_harington": {"name": "Kit Harington", "named": "yes"},
}


def with_settings(runtime: Runtime, *, real: bool = False, **changes: Any) -> Iterator[Runtime]:
    """A second runtime on the same instance and database with some settings changed; its face
    engine answers from recorded answers, unless `real` (tests/engines.py)."""
    settings = runtime.settings.with_(**changes)
    other = Runtime(settings, sender=JobQueue, faces=None if real else recorded(settings))
    yield other
    if "db" in other.__dict__:
        other.db.dispose()


@pytest.fixture
def enrolled(runtime: Runtime, corpus: Any) -> Runtime:
    enrol_corpus(runtime, corpus.faces_dir, **NAMES)
    return runtime


@pytest.fixture
def covering(enrolled: Runtime) -> Iterator[Runtime]:
    yield from with_settings(enrolled, policy={"cover_channels": ("social_media",)})


def test_a_caption_keeps_only_the_names_consented_for_the_channel(enrolled: Runtime, corpus: Any) -> None:
    caption = "Barack Obama and Joe Biden meet Kit Harington"
    result = run(
        enrolled,
        "gate",
        "--channel",
        "website",
        "--json",
        "--caption",
        caption,
        corpus.faces_dir / "group/two_people.jpg",
    )
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["verdict"] == "publishable"
    assert line["caption"] == "Barack Obama and Joe meet"
    with unit_of_work(enrolled.sessions) as session:
        assert session.scalars(select(Photo.caption)).one() == "Barack Obama and Joe meet"


def test_without_a_caption_the_json_has_no_caption_field(enrolled: Runtime, corpus: Any) -> None:
    [line] = gate_json(enrolled, "website", corpus.faces_dir / "group/two_people.jpg")
    assert "caption" not in line


def test_covering_publishes_the_group_photo_with_the_child_covered(
    covering: Runtime, corpus: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    [line] = gate_json(covering, "social_media", corpus.faces_dir / "group/obama_and_biden.jpg", out=out)
    assert (line["verdict"], line["reasons"]) == ("publishable", ["faces_covered"])
    assert [f.get("covered", False) for f in line["faces"]] == [False, False, True]
    assert [f["outcome"] for f in line["faces"]] == ["consented", "consented", "unknown"]
    child_box = line["faces"][2]["box"]
    published = media.decode(Path(line["output"]).read_bytes(), max_pixels=50_000_000).pixels
    found = covering.faces.analyse(published).faces
    assert len(found) == 2
    for face in found:
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        assert not (child_box[0] <= cx <= child_box[2] and child_box[1] <= cy <= child_box[3])
    with unit_of_work(covering.sessions) as session:
        assert session.scalars(select(Face.covered).order_by(Face.position)).all() == [False, False, True]


def test_covering_is_not_used_on_other_channels(covering: Runtime, corpus: Any) -> None:
    [line] = gate_json(covering, "website", corpus.faces_dir / "group/obama_and_biden.jpg")
    assert (line["verdict"], line["reasons"]) == ("blocked", ["unknown_face"])


def test_a_covered_copy_is_not_published_once_another_face_needs_covering(
    covering: Runtime, corpus: Any, tmp_path: Path, now: datetime
) -> None:
    with unit_of_work(covering.sessions) as session:
        tools = gate_service.load_tools(session, covering.settings, covering.faces, covering.originals)
    with unit_of_work(covering.sessions) as session:
        result = gate_service.gate_photo(
            session,
            (corpus.faces_dir / "group/obama_and_biden.jpg").read_bytes(),
            channel="social_media",
            tools=tools,
            now=now,
            actor="t",
        )
    assert result.verdict == "publishable" and result.clean is not None
    later = now + timedelta(minutes=1)
    with unit_of_work(covering.sessions) as session:
        consent_service.withdraw_consent(
            session, "biden", ["social_media"], settings=covering.settings, now=later, actor="t"
        )
    with unit_of_work(covering.sessions) as session:
        fresh = gate_service.recheck(session, result.decision_id, settings=covering.settings, now=later)
        published = publish_service.publish_photo(
            session,
            result.photo_id,
            channel="social_media",
            store=LocalBlobStore(tmp_path / "out"),
            originals=covering.originals,
            settings=covering.settings,
            now=later,
            actor="t",
            clean=result.clean,
        )
    assert (fresh.verdict, fresh.reasons[-1]) == ("blocked", "consent_changed")
    assert not published.published and published.reasons[-1] == "consent_changed"
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(
    "turn", [Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270]
)
def test_sideways_pixels_without_an_orientation_tag_go_to_review(
    enrolled: Runtime, corpus: Any, tmp_path: Path, turn: Image.Transpose
) -> None:
    upright = Image.open(corpus.faces_dir / "biden/biden2.jpg").convert("RGB")
    buffer = io.BytesIO()
    upright.transpose(turn).save(buffer, "JPEG", quality=92)
    path = tmp_path / "sideways.jpg"
    path.write_bytes(buffer.getvalue())
    [line] = gate_json(enrolled, "website", path)
    assert line["verdict"] != "publishable"
    assert line["faces"], "a turned face must be reported, never treated as no face"


def test_past_the_face_cap_the_photo_goes_to_review(enrolled: Runtime, corpus: Any) -> None:
    # The cap is the engine's own work limit: the real engine stops at it.
    for capped in with_settings(enrolled, real=True, faces={"max_faces": 1}):
        [line] = gate_json(capped, "website", corpus.faces_dir / "group/two_people.jpg")
        assert line["verdict"] == "review"
        assert "too_many_faces" in line["reasons"]


# `gate --workers` processes build their own (real) engine; the serial run uses the real one too.
@pytest.mark.real_face_engine
def test_parallel_workers_give_the_same_verdicts_as_one_process(
    enrolled: Runtime, corpus: Any, tmp_path: Path
) -> None:
    photos = [
        corpus.faces_dir / rel
        for rel in (
            "group/two_people.jpg",
            "group/obama_and_biden.jpg",
            "obama/obama3.jpg",
            "lin_manuel_miranda/lin-manuel-miranda.png",
        )
    ]
    serial = gate_json(enrolled, "website", *photos, out=tmp_path / "serial")
    result = run(
        enrolled,
        "gate",
        "--channel",
        "website",
        "--json",
        "--workers",
        "2",
        "--out",
        tmp_path / "par",
        *photos,
    )
    assert result.exit_code == 0, result.output
    parallel = [json.loads(line) for line in result.stdout.splitlines()]
    key = [
        (line["source"], line["verdict"], line["reasons"], [f["person"] for f in line["faces"]])
        for line in serial
    ]
    assert key == [
        (line["source"], line["verdict"], line["reasons"], [f["person"] for f in line["faces"]])
        for line in parallel
    ]
    assert len(list((tmp_path / "par").iterdir())) == sum(line["output"] is not None for line in serial) == 2
