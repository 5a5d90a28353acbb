"""No photo is publishable with a turned face nobody examined: the leak, closed at the gate.

biden is enrolled and consents to the website; obama is not enrolled. Each scene shows biden upright
and obama turned by an angle; before every photo was searched at every angle, the scenes with obama
turned 60° to 180° were publishable.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from helpers import add_person, gate_json

pytestmark = pytest.mark.slow

ANGLES = list(range(0, 360, 15))


@pytest.fixture
def every_angle(settings):
    """The shipped search: every 45° (the shared test settings search every 90° to save time)."""
    from gatekeeper.runtime import Runtime

    runtime = Runtime(settings.with_(faces={"probe_step": 45}))
    yield runtime
    if "db" in runtime.__dict__:
        runtime.db.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("face_px", [48, 96])
def test_a_photo_with_a_turned_unconsented_face_is_never_publishable(
    every_angle, corpus, turned_scene, tmp_path: Path, face_px: int
) -> None:
    runtime = every_angle
    assert runtime.faces.probe_step == 45
    add_person(runtime, "biden", photos=[corpus.faces_dir / "biden/biden.jpg"])
    folder = tmp_path / "scenes"
    folder.mkdir()
    for angle in ANGLES:
        pixels, _ = turned_scene(face_px, angle)
        Image.fromarray(pixels).save(folder / f"{angle:03d}.png")
    alone, _ = turned_scene(face_px)
    Image.fromarray(alone).save(tmp_path / "biden_alone.png")

    lines = gate_json(runtime, "website", folder)
    (control,) = gate_json(runtime, "website", tmp_path / "biden_alone.png")

    assert control["verdict"] == "publishable"  # biden alone may go out: the scenes differ by obama only
    verdicts = {Path(line["source"]).stem: line["verdict"] for line in lines}
    assert len(verdicts) == len(ANGLES)
    assert {angle: v for angle, v in verdicts.items() if v == "publishable"} == {}
    for line in lines:
        assert len(line["faces"]) == 2, line
