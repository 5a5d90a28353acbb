"""Gating at the size people will see: per-channel copies, boxes in the full photo, the re-check.

two_people.jpg (obama and biden, both consenting to the website and print), enlarged to a
camera-sized photo so the website's 2,048 px copy is smaller than the original.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from consent_db.session import unit_of_work
from gatekeeper.photos import gate as gate_service
from helpers import add_person, gate_json

pytestmark = pytest.mark.slow

FACTOR = 4  # two_people.jpg is 1200 px wide: 4800 px, like a 16 MP camera photo


@pytest.fixture
def large(runtime: Any, corpus: Any, tmp_path: Path) -> Path:
    for name in ("obama", "biden"):
        add_person(
            runtime, name, photos=[corpus.faces_dir / f"{name}/{name}.jpg"], channels=("website", "print")
        )
    with Image.open(corpus.faces_dir / "group/two_people.jpg") as image:
        big = image.convert("RGB").resize(
            (image.width * FACTOR, image.height * FACTOR), Image.Resampling.LANCZOS
        )
    path = tmp_path / "large.jpg"
    big.save(path, quality=92)
    return path


def test_a_website_copy_is_downscaled_and_faces_are_reported_in_the_full_photo(
    runtime: Any, large: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"

    (line,) = gate_json(runtime, "website", large, out=out)

    assert line["verdict"] == "publishable", line
    with Image.open(line["output"]) as copy:
        assert max(copy.size) == 2048
    expected = [(253, 47, 408, 202), (778, 57, 964, 242)]  # the manifest's boxes, before enlarging
    boxes = sorted(face["box"] for face in line["faces"])
    for box, (left, top, right, bottom) in zip(boxes, expected, strict=True):
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        tolerance = 0.15 * (right - left) * FACTOR
        assert abs(centre[0] - (left + right) / 2 * FACTOR) < tolerance
        assert abs(centre[1] - (top + bottom) / 2 * FACTOR) < tolerance
        assert (box[2] - box[0]) > 0.7 * (right - left) * FACTOR


def test_a_print_copy_is_the_full_size_and_lossless(runtime: Any, large: Path, tmp_path: Path) -> None:
    (line,) = gate_json(runtime, "print", large, out=tmp_path / "out")

    assert line["verdict"] == "publishable", line
    data = Path(line["output"]).read_bytes()
    with Image.open(io.BytesIO(data)) as copy, Image.open(large) as original:
        assert copy.size == original.size
        assert copy.tobytes() == original.tobytes()  # the same pixels


def test_publishing_on_a_larger_channel_than_the_analysis_was_for_is_refused(
    runtime: Any, large: Path, now: Any
) -> None:
    (line,) = gate_json(runtime, "website", large)
    decision = line_decision(runtime, line)

    with unit_of_work(runtime.sessions) as session:
        for_print = gate_service.recheck(
            session, decision, settings=runtime.settings, now=now, channel="print"
        )
        for_website = gate_service.recheck(
            session, decision, settings=runtime.settings, now=now, channel="website"
        )

    assert for_print.verdict == "blocked" and for_print.reasons == ("analysis_too_coarse",)
    assert for_website.verdict == "publishable"


def line_decision(runtime: Any, line: dict[str, Any]) -> int:
    """The latest decision of the photo a `gate --json` line reports."""
    from sqlalchemy import select

    from consent_db.models import Decision, Photo

    with unit_of_work(runtime.sessions) as session:
        photo = session.scalars(select(Photo).order_by(Photo.id.desc())).first()
        assert photo is not None
        decision = session.scalars(
            select(Decision).where(Decision.photo_id == photo.id).order_by(Decision.id.desc())
        ).first()
        assert decision is not None
        return decision.id
