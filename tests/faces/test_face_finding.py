"""Finding every face: small faces, crowds, large photos, sideways pixels and the work caps.

Real corpus photos, resized, turned or tiled in memory; nothing is written to the repository.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from gatekeeper.faces import DlibFaceEngine
from gatekeeper.faces.search import orientations
from gatekeeper.policy import TIME_LIMIT, TOO_MANY_FACES

# 36 faces, 40 to 120 px wide: more than a class photo's worth, in every size the gate must see.
CROWD_SIZES = [40 + (i * 16) % 81 for i in range(36)]


def covered(expected, faces) -> list[tuple[tuple[int, int, int, int], int]]:
    """(box, detections) for each expected box not covered by exactly one detection centred in it."""
    wrong = []
    for box in expected:
        hits = [
            f
            for f in faces
            if box[0] <= (f.box[0] + f.box[2]) / 2 <= box[2] and box[1] <= (f.box[1] + f.box[3]) / 2 <= box[3]
        ]
        if len(hits) != 1:
            wrong.append((box, len(hits)))
    return wrong


def iou(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def turned_box(box, quarter: int, width: int, height: int):
    """Where `box` of a width x height image lands in np.rot90(image, quarter)."""
    left, top, right, bottom = box
    for _ in range(quarter):
        left, top, right, bottom = top, width - right, bottom, width - left
        width, height = height, width
    return (left, top, right, bottom)


@pytest.fixture(scope="module")
def crowd(corpus, montage):
    return montage(corpus, CROWD_SIZES)


@pytest.mark.parametrize("quarter", [1, 2, 3])
def test_sideways_pixels_without_an_orientation_tag_give_a_face_in_the_given_coordinates(
    engine, corpus, load_rgb, quarter
):
    pixels = load_rgb(corpus.faces_dir / "kit_harington" / "kit_harington_john2.jpeg")  # 630x374
    height, width = pixels.shape[:2]
    sideways = np.rot90(pixels, quarter)

    analysis = engine.analyse(sideways)

    expected = turned_box((283, 98, 469, 284), quarter, width, height)
    assert len(analysis.faces) >= 1
    face = max(analysis.faces, key=lambda f: iou(f.box, expected))
    assert iou(face.box, expected) > 0.6, (face.box, expected)
    # HOG finds it only turned; the second look confirms it, and it is encoded, never trusted alone.
    assert face.second_look and face.encoding is not None and face.degraded and not face.possible


def test_group_photo_scaled_to_40_px_faces_still_shows_every_face(engine, corpus, load_rgb):
    pixels = load_rgb(corpus.faces_dir / "group" / "obama_and_biden.jpg")  # faces 162-194 px wide
    factor = 40 / 162
    size = (round(pixels.shape[1] * factor), round(pixels.shape[0] * factor))
    small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))
    boxes = [(746, 445, 940, 638), (1132, 402, 1326, 596), (1588, 1051, 1750, 1212)]
    expected = [tuple(round(v * factor) for v in box) for box in boxes]

    analysis = engine.analyse(small)

    assert covered(expected, analysis.faces) == []
    assert len(analysis.faces) == 3 and analysis.limit is None


@pytest.mark.slow
def test_crowd_of_36_faces_from_40_to_120_px_shows_every_face(engine, crowd):
    pixels, expected = crowd

    analysis = engine.analyse(pixels)

    assert covered(expected, analysis.faces) == []
    assert analysis.limit is None
    # Faces of at least min_face_px found confidently are encoded; none is silently dropped.
    assert all(f.encoding is not None or f.too_small or f.possible for f in analysis.faces)


@pytest.mark.slow
def test_crowd_upscaled_past_the_tile_size_is_searched_in_tiles_and_still_shows_every_face(crowd):
    pixels, expected = crowd
    # Tiles of 1024 detector pixels on a 1.5x upscale: a coarse pass plus about 20 overlapping tiles.
    engine = DlibFaceEngine(tile_px=1024, probe_step=0)
    size = (pixels.shape[1] * 3 // 2, pixels.shape[0] * 3 // 2)
    large = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
    scaled = [tuple(v * 3 // 2 for v in box) for box in expected]

    analysis = engine.analyse(large)

    # Each face exactly once: boxes from the coarse pass and from neighbouring tiles are merged.
    # (Crops from group photos show slivers of neighbours, which may also be found: not counted.)
    assert covered(scaled, analysis.faces) == []


def test_more_faces_than_the_cap_stops_with_too_many_faces(corpus, montage):
    pixels, _ = montage(corpus, [80] * 6)

    analysis = DlibFaceEngine(max_faces=3).analyse(pixels)

    assert analysis.limit == TOO_MANY_FACES
    assert len(analysis.faces) == 3


def test_time_limit_stops_analysis_and_says_so(corpus, montage):
    pixels, _ = montage(corpus, [80] * 6)

    analysis = DlibFaceEngine(time_limit_s=1e-9).analyse(pixels)

    assert analysis.limit == TIME_LIMIT
    assert all(f.encoding is None for f in analysis.faces)


def test_faces_found_before_the_time_limit_are_reported_as_possible_not_dropped(corpus, montage):
    pixels, expected = montage(corpus, [80] * 4)
    # Enough time to detect in one pass, none left to encode: the found faces must still come back.
    engine = DlibFaceEngine(time_limit_s=1e-9)
    grey = np.asarray(Image.fromarray(pixels).convert("L"))
    found, _ = engine._search(orientations(grey, 0), _forever())
    faces, limit = engine._faces(pixels, found, {}, _expired())

    assert limit == TIME_LIMIT
    assert len(faces) == len(expected)
    assert all(f.possible and f.encoding is None for f in faces)


def _forever():
    from gatekeeper.faces.engine import _Deadline

    return _Deadline(3600)


def _expired():
    from gatekeeper.faces.engine import _Deadline

    return _Deadline(-1)
