"""Faces at any angle: a turned face beside an upright one is always found, never ignored.

Scenes are built in memory from real corpus faces: biden upright, obama (and kit_harington) turned
in the image plane in 15° steps, at two face sizes measured in the pixels of the image analysed
(which is the copy that will be published).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from gatekeeper.faces import DlibFaceEngine

ANGLES = list(range(0, 360, 15))
SIZES = [48, 96]


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine(min_face_px=40, time_limit_s=600.0)


def found_at(analysis, centre: tuple[float, float], face_px: int):
    """The faces whose box centre lies within half a face of `centre`."""
    cx, cy = centre
    return [
        f
        for f in analysis.faces
        if math.hypot((f.box[0] + f.box[2]) / 2 - cx, (f.box[1] + f.box[3]) / 2 - cy) <= face_px * 0.75
    ]


@pytest.mark.parametrize("face_px", SIZES)
@pytest.mark.parametrize("angle", ANGLES)
def test_a_turned_face_beside_an_upright_one_is_found_at_every_angle(engine, turned_scene, face_px, angle):
    pixels, (upright, turned) = turned_scene(face_px, angle)

    analysis = engine.analyse(pixels)

    (biden,) = found_at(analysis, upright, face_px)
    assert biden.encoding is not None and not biden.possible
    hits = found_at(analysis, turned, face_px)
    assert len(hits) == 1, analysis.faces
    # Identified like any other face when found upright, otherwise a possible face for a reviewer.
    assert hits[0].encoding is not None or hits[0].possible


@pytest.mark.parametrize("face_px", SIZES)
@pytest.mark.parametrize("angle", ANGLES[::2])
def test_two_turned_faces_beside_an_upright_one_are_both_found(engine, turned_scene, face_px, angle):
    pixels, (upright, first, second) = turned_scene(face_px, angle, (angle + 135) % 360)

    analysis = engine.analyse(pixels)

    assert len(found_at(analysis, upright, face_px)) == 1
    assert len(found_at(analysis, first, face_px)) == 1, analysis.faces
    assert len(found_at(analysis, second, face_px)) == 1, analysis.faces


def test_a_face_upside_down_in_a_group_photo_is_found_with_the_upright_ones(engine, corpus, load_rgb):
    pixels = np.array(load_rgb(corpus.faces_dir / "group" / "obama_and_biden.jpg"))
    # The child at lower right, turned upside down in place (with a margin of context).
    left, top, right, bottom = 1588 - 60, 1051 - 60, 1750 + 60, 1212 + 60
    region = Image.fromarray(np.ascontiguousarray(pixels[top:bottom, left:right])).rotate(180)
    pixels[top:bottom, left:right] = np.asarray(region)

    analysis = engine.analyse(pixels)

    assert len(found_at(analysis, (843, 541), 194)) == 1  # biden, upright
    assert len(found_at(analysis, (1229, 499), 194)) == 1  # obama, upright
    (child,) = found_at(analysis, (1669, 1131), 162)
    # Found turned, confirmed by the second look: encoded, and never trusted alone.
    assert child.second_look and child.encoding is not None and child.degraded


def test_searching_upright_only_misses_turned_faces_that_the_probes_find(turned_scene):
    # The measurement behind the probes: without them, a face turned 90° next to an upright one
    # is never seen (the leak this search closes).
    pixels, (_, turned) = turned_scene(80, 90)

    upright_only = DlibFaceEngine(probe_step=0).analyse(pixels)

    assert found_at(upright_only, turned, 80) == []
