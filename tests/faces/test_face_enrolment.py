"""Enrolment photos: several per person, each checked on its own, each refusal saying which photo
and why. Photos are built here from the corpus (nothing is written to the repository)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from occlusions import blurred, dark_glasses, face_mask
from PIL import Image
from sqlalchemy import func, select

from consent_db.models import FaceTemplate
from consent_db.session import unit_of_work
from gatekeeper.errors import EnrolmentPhotoError
from helpers import person_row, run, write_csv

OBAMA_BOX = (349, 142, 617, 409)


def _saved(pixels: np.ndarray, path: Path) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def test_several_enrolment_photos_make_one_template_each(runtime: Any, corpus: Any, tmp_path: Path) -> None:
    photos = [corpus.faces_dir / "obama" / name for name in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    row = person_row("O1", None, tmp_path, biometric_consent="yes")
    row["photos"] = " ; ".join(os.path.relpath(p, tmp_path) for p in photos)
    result = run(runtime, "people", "import", write_csv(tmp_path / "p.csv", [row]), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["templates_added"] == 3
    with unit_of_work(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(FaceTemplate)) == 3


def test_every_refused_enrolment_photo_is_named_with_its_reason_and_nothing_is_stored(
    runtime: Any, corpus: Any, tmp_path: Path, load_rgb: Any
) -> None:
    obama = load_rgb(corpus.faces_dir / "obama" / "obama.jpg")
    small = np.asarray(Image.fromarray(obama).resize((obama.shape[1] // 4, obama.shape[0] // 4)))
    photos = [
        corpus.faces_dir / "obama" / "obama2.jpg",  # good
        corpus.faces_dir / "group" / "two_people.jpg",
        corpus.metadata_dir / "canon_eos_40d.jpg",
        _saved(small, tmp_path / "tiny.png"),  # a face of about 62 px (shorter side)
    ]
    row = person_row("O1", None, tmp_path, biometric_consent="yes")
    row["photos"] = ";".join(os.path.relpath(p, tmp_path) for p in photos)
    result = run(runtime, "people", "import", write_csv(tmp_path / "p.csv", [row]), "--json")
    assert result.exit_code == 1
    (problem,) = json.loads(result.stdout)["problems"]
    reason = problem["reason"]
    assert "obama2.jpg" not in reason
    assert "enrolment photo two_people.jpg: an enrolment photo must show exactly one face; found 2" in reason
    assert "enrolment photo canon_eos_40d.jpg: no face was found" in reason
    assert "enrolment photo tiny.png: the face in the enrolment photo is 62 px; at least 80 px" in reason
    with unit_of_work(runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(FaceTemplate)) == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        pytest.param("none", None, id="clear"),
        pytest.param("quarter", "face_too_small", id="too-small"),
        pytest.param("mask", "face_unclear", id="face-mask"),
        pytest.param("glasses", "face_unclear", id="dark-glasses"),
        pytest.param("blur", "face_unclear", id="blurred"),
    ],
)
def test_an_enrolment_photo_is_refused_unless_its_one_face_is_large_and_clear(
    engine: Any, corpus: Any, load_rgb: Any, change: str, reason: str | None
) -> None:
    pixels = load_rgb(corpus.faces_dir / "obama" / "obama.jpg")
    if change == "quarter":
        pixels = np.asarray(Image.fromarray(pixels).resize((pixels.shape[1] // 4, pixels.shape[0] // 4)))
    elif change == "mask":
        pixels = face_mask(pixels, OBAMA_BOX)
    elif change == "glasses":
        pixels = dark_glasses(pixels, OBAMA_BOX)
    elif change == "blur":
        pixels = blurred(pixels, OBAMA_BOX, 6.0)
    if reason is None:
        assert engine.encode_single(np.ascontiguousarray(pixels)).shape == (128,)
        return
    with pytest.raises(EnrolmentPhotoError) as caught:
        engine.encode_single(np.ascontiguousarray(pixels))
    assert caught.value.reason == reason, str(caught.value)
