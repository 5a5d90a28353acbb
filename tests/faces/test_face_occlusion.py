"""Faces as people would still recognise them: behind dark glasses, a face mask or a cap's shadow,
blurred, in dim light, upright and turned. None of them slips through the gate.

biden is enrolled and consents to every channel; obama is not enrolled (a stranger). Scenes are built
here from corpus photos (nothing is written to the repository). Before the second look (dlib's CNN
detector on the boxes HOG was unsure of), a stranger behind dark glasses or a mask beside biden was
not seen at all, and the photo was publishable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from helpers import add_person, gate_json

pytestmark = pytest.mark.slow

CHANNELS = ("website", "social_media", "print")
ANGLES = (0, 90, 180)
# One face size per occlusion (several sizes in all), each at every angle: the sizes a face has
# in a school photo that is looked at, from just above the identification minimum.
SIZES = {
    "dark_glasses": 96,
    "face_mask": 80,
    "cap": 128,
    "blur_2": 64,
    "blur_4": 112,
    "dim_30": 72,
    "dim_40": 144,
}


@pytest.fixture
def enrolled(runtime, corpus):
    """The runtime with biden enrolled, consenting to every channel."""
    add_person(runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"], channels=CHANNELS)
    return runtime


def _folder(tmp_path: Path, name: str, scenes: dict[str, object]) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for stem, pixels in scenes.items():
        Image.fromarray(pixels).save(folder / f"{stem}.png")  # type: ignore[arg-type]
    return folder


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stranger_with_a_hidden_blurred_or_dim_face_beside_a_consented_person_is_never_publishable(
    enrolled, occluded_scene, tmp_path: Path
) -> None:
    scenes = {
        f"{occlusion}_{angle:03d}": occluded_scene("obama", occlusion, face_px, angle, with_biden=True)
        for occlusion, face_px in SIZES.items()
        for angle in ANGLES
    }
    folder = _folder(tmp_path, "scenes", scenes)
    # Every scene is smaller than every channel's copy, so each channel analyses the same pixels
    # and biden consents to all of them: one channel's verdicts are every channel's.
    lines = gate_json(enrolled, "website", folder)
    verdicts = {Path(line["source"]).stem: line["verdict"] for line in lines}
    assert sorted(verdicts) == sorted(scenes)
    assert {stem: v for stem, v in verdicts.items() if v == "publishable"} == {}
    for line in lines:
        # biden is found and identified in every scene: the verdict is about the stranger.
        assert any(face["outcome"] == "consented" for face in line["faces"]), line


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_consented_person_with_a_hidden_blurred_or_dim_face_is_never_blocked_when_matched(
    enrolled, occluded_scene, tmp_path: Path
) -> None:
    scenes = {
        f"{occlusion}_{angle:03d}": occluded_scene("biden", occlusion, face_px, angle, with_biden=False)
        for occlusion, face_px in SIZES.items()
        for angle in ANGLES
    }
    folder = _folder(tmp_path, "alone", scenes)
    lines = gate_json(enrolled, "website", folder)
    assert len(lines) == len(scenes)
    matched = 0
    for line in lines:
        assert line["verdict"] in ("publishable", "review", "blocked"), line
        confident = [f for f in line["faces"] if f["distance"] is not None and f["distance"] <= 0.55]
        if confident:
            matched += 1
            assert line["verdict"] in ("publishable", "review"), line
        if line["verdict"] == "blocked":
            assert all(f["outcome"] == "unknown" for f in line["faces"]), line
    # Most of them are matched: the second look sees the face, and its encoding still finds biden.
    assert matched >= len(scenes) // 2
