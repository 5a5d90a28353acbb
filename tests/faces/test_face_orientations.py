"""The turned copies a photo is searched in: exact geometry back to the photo, fill skipped.

Pure geometry on synthetic images; no detector runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from gatekeeper.faces.merging import Candidate
from gatekeeper.faces.search import orientations, windows


def marked(width: int, height: int, x: int, y: int) -> np.ndarray:
    grey = np.full((height, width), 128, dtype=np.uint8)
    grey[y - 3 : y + 4, x - 3 : x + 4] = 255
    return grey


@pytest.mark.parametrize("step", [45, 90])
@pytest.mark.parametrize(
    ("width", "height", "x", "y"), [(300, 200, 40, 150), (200, 300, 170, 30), (257, 131, 128, 65)]
)
def test_a_spot_found_in_any_turned_copy_maps_back_to_where_it_is(step, width, height, x, y):
    for turned in orientations(marked(width, height, x, y), step):
        ys, xs = np.nonzero(turned.grey > 200)
        # A box around the spot as seen in the turned copy, mapped back to the photo.
        box = turned.to_given(Candidate(xs.min() - 2, ys.min() - 2, xs.max() + 3, ys.max() + 3, 1.0))
        assert box.left <= x <= box.right and box.top <= y <= box.bottom, (turned.angle, box)
        assert box.right - box.left < 30 and box.angle == turned.angle


def test_every_multiple_of_the_step_is_searched_and_quarter_turns_are_exact():
    grey = marked(300, 200, 40, 150)

    turned = orientations(grey, 45)

    assert [t.angle for t in turned] == [0, 45, 90, 135, 180, 225, 270, 315]
    assert np.array_equal(turned[2].grey, np.rot90(grey, 1))
    assert np.array_equal(turned[4].grey, np.rot90(grey, 2))
    assert turned[1].grey.shape == turned[3].grey.shape  # 135° is the 45° copy turned a quarter
    assert [t.angle for t in orientations(grey, 0)] == [0]


def test_windows_holding_only_the_fill_around_a_diagonal_copy_are_skipped():
    grey = np.zeros((1365, 2048), dtype=np.uint8)
    diagonal = orientations(grey, 45)[1]
    height, width = diagonal.grey.shape

    corner = (0, 0, width // 8, height // 8)  # the fill at the top-left corner of the square
    centre = (width // 2 - 10, height // 2 - 10, width // 2 + 10, height // 2 + 10)
    plan = windows(diagonal.grey.shape, 32, 1024)

    assert not diagonal.shows_photo(corner)
    assert diagonal.shows_photo(centre)
    assert all(orientations(grey, 90)[1].shows_photo(w) for w, _ in plan)
    skipped = [w for w, _ in plan if not diagonal.shows_photo(w)]
    assert skipped and len(skipped) < len(plan)
