"""How a large photo is cut into detector windows: every face lies whole in a window that can find it.

A face of width f (px of the photo) is found in a window scanned at scale s when f * s >= 64
(DETECTOR_FACE_PX) and the face lies wholly inside the window. The plan is a coarse pass over the
whole photo plus tiles at full detection scale; these tests check that promise geometrically,
for the sizes photos come in, without running the detector.
"""

from __future__ import annotations

import math
import random

import pytest

from gatekeeper.faces import DlibFaceEngine
from gatekeeper.faces.search import DETECTOR_FACE_PX
from gatekeeper.faces.search import windows as plan


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    return DlibFaceEngine(workers=1)


SIZES = [(2230, 1500), (1600, 1600), (3000, 2000), (4032, 3024), (6000, 4000), (8000, 6000), (12000, 300)]


def inside(face, window) -> bool:
    (fl, ft, fr, fb), (wl, wt, wr, wb) = face, window
    return wl <= fl and wt <= ft and fr <= wr and fb <= wb


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_every_face_from_the_smallest_up_lies_whole_in_a_window_that_finds_it(engine, width, height):
    windows = plan((height, width), engine.min_detect_px, engine.tile_px)
    rng = random.Random(width * height)
    # The hardest faces: just too small for the coarse pass, so only a tile can find them.
    hardest = DETECTOR_FACE_PX / windows[0][1]

    for i in range(1000):
        low, high = (0.7 * hardest, hardest) if i % 2 else (engine.min_detect_px, hardest * 1.5)
        side = min(rng.uniform(low, high), min(width, height))
        left, top = rng.uniform(0, width - side), rng.uniform(0, height - side)
        face = (left, top, left + side, top + side)
        assert any(inside(face, w) and side * scale >= DETECTOR_FACE_PX - 1e-9 for w, scale in windows), (
            face,
            windows,
        )


@pytest.mark.parametrize(("width", "height"), SIZES)
def test_windows_stay_within_the_tile_size_and_the_photo(engine, width, height):
    windows = plan((height, width), engine.min_detect_px, engine.tile_px)
    scale = DETECTOR_FACE_PX / engine.min_detect_px

    assert len(windows) > 1  # all of these are searched in tiles
    for (left, top, right, bottom), s in windows:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert (
            math.floor((right - left) * s) <= engine.tile_px
            and math.floor((bottom - top) * s) <= engine.tile_px
        )
    (whole, coarse), *tiles = windows
    assert whole == (0, 0, width, height) and coarse < scale
    assert all(s == scale for _, s in tiles)


def test_a_photo_that_fits_one_window_is_searched_once_at_full_scale(engine):
    assert plan((1000, 1500), engine.min_detect_px, engine.tile_px) == [((0, 0, 1500, 1000), 2.0)]
