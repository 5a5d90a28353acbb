"""Where the detector looks: the image turned to every probe angle, cut into windows at scales.

dlib's HOG detector finds faces from 80 px (64 px after its own pyramid step) and tilted by up to
about 40° either way (measured: bench/angles.py, docs/faces.md "Faces at any angle"). So a photo is
searched upright and turned by every multiple of `step` degrees, each orientation at the scale
that makes the smallest face wanted DETECTOR_FACE_PX wide, in overlapping tiles when that copy is
large. All of this is geometry: no detector runs here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gatekeeper.faces.merging import Candidate

if TYPE_CHECKING:
    from numpy.typing import NDArray

Box = tuple[int, int, int, int]

# Measured on 19 corpus faces (bench/calibrate.py sweep): a face at least this wide in the image the
# HOG detector scans is found with score >= 0 every time; 56 px is found only above about -0.5.
DETECTOR_FACE_PX = 64
# The coarse pass finds faces of at least DETECTOR_FACE_PX / coarse scale; tiles overlap by this
# much more, so a face too small for the coarse pass lies wholly inside at least one tile.
OVERLAP_MARGIN = 1.3
# The coarse pass's scale is chosen among this many steps between the coarsest and finest allowed.
COARSE_STEPS = 20
# Grey fill around a photo turned by an angle that is not a multiple of 90°: flat, so HOG sees
# no gradient in it.
_FILL = 128


@dataclass(frozen=True)
class Orientation:
    """The given image turned counter-clockwise by `angle` degrees about its centre (expanded to
    hold all of it), and the way back to the given image's coordinates."""

    angle: int
    grey: NDArray[np.uint8]
    width: int  # of the given image
    height: int

    def to_given(self, c: Candidate) -> Candidate:
        """A box found in this orientation as the box around it in the given image."""
        if self.angle == 0:
            return c
        cos, sin = _cos_sin(self.angle)
        turned_height, turned_width = self.grey.shape[:2]
        xs, ys = [], []
        for x, y in ((c.left, c.top), (c.right, c.top), (c.right, c.bottom), (c.left, c.bottom)):
            dx, dy = x - turned_width / 2, y - turned_height / 2
            xs.append(cos * dx - sin * dy + self.width / 2)
            ys.append(sin * dx + cos * dy + self.height / 2)
        return Candidate(min(xs), min(ys), max(xs), max(ys), c.score, self.angle, c.weak)

    def shows_photo(self, window: Box) -> bool:
        """Whether any of the photo (not only the fill around it) lies inside `window`."""
        if self.angle % 90 == 0:
            return True
        cos, sin = _cos_sin(self.angle)
        turned_height, turned_width = self.grey.shape[:2]
        corners = []
        for x, y in ((0, 0), (self.width, 0), (self.width, self.height), (0, self.height)):
            dx, dy = x - self.width / 2, y - self.height / 2
            corners.append((cos * dx + sin * dy + turned_width / 2, -sin * dx + cos * dy + turned_height / 2))
        return _intersects(window, corners)


def orientations(grey: NDArray[np.uint8], step: int) -> list[Orientation]:
    """The image upright, then turned by each multiple of `step` degrees (0: upright only).

    Multiples of 90° are exact transpositions; other angles are resampled once per angle below
    90° and the rest derived by exact quarter turns of that copy.
    """
    height, width = grey.shape[:2]
    found = [Orientation(0, grey, width, height)]
    if step <= 0:
        return found
    base: dict[int, NDArray[np.uint8]] = {0: grey}
    for angle in range(step, 360, step):
        rest = angle % 90
        if rest not in base:
            turned = Image.fromarray(grey).rotate(
                rest, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=_FILL
            )
            base[rest] = np.asarray(turned)
        found.append(
            Orientation(angle, np.ascontiguousarray(np.rot90(base[rest], angle // 90)), width, height)
        )
    return found


def windows(shape: tuple[int, ...], min_detect_px: int, tile_px: int) -> list[tuple[Box, float]]:
    """The (window, scale) pairs that search an image of `shape` for faces of min_detect_px."""
    height, width = shape[:2]
    scale = DETECTOR_FACE_PX / min_detect_px
    if width * height * scale * scale <= tile_px * tile_px:
        return [((0, 0, width, height), scale)]
    # A large photo: a coarse pass over the whole image finds the big faces, then tiles at
    # full detection scale find the small ones. Tiles bound memory and let the time limit
    # act between them; they overlap by more than any face the coarse pass might miss. The
    # coarser that pass, the wider the overlap: of the scales that keep every tile within
    # tile_px (overlap at most half a tile) and the coarse pass within one tile, the one that
    # scans the fewest pixels.
    side = math.floor(tile_px / scale)
    coarsest = 2 * OVERLAP_MARGIN * DETECTOR_FACE_PX / side
    finest = min(tile_px / max(width, height), scale)
    if coarsest >= finest:
        # No scale keeps both bounds (a very long panorama, or tiny tiles): the coarse pass
        # stays within one tile and the tiles grow to twice the overlap.
        return _tiled(width, height, scale, finest, tile_px)
    plans = [
        _tiled(width, height, scale, coarsest + (finest - coarsest) * step / COARSE_STEPS, tile_px)
        for step in range(COARSE_STEPS + 1)
    ]
    return min(plans, key=lambda plan: (scanned(plan), -plan[0][1]))


def scanned(plan: list[tuple[Box, float]]) -> float:
    """The pixels the detector scans for these (window, scale) pairs: what its time follows."""
    return sum((right - left) * (bottom - top) * scale * scale for (left, top, right, bottom), scale in plan)


def scan(
    detector: object, grey: NDArray[np.uint8], window: Box, scale: float, threshold: float
) -> list[Candidate]:
    """One HOG run over a window of the image resized by `scale`; boxes in the image's coordinates."""
    left, top, right, bottom = window
    crop = Image.fromarray(grey[top:bottom, left:right])
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    if size != crop.size:
        crop = crop.resize(size, Image.Resampling.BILINEAR)
    # A contiguous array: dlib silently finds nothing in a strided view.
    array = np.ascontiguousarray(np.asarray(crop))
    rects, scores, _ = detector.run(array, 0, threshold)  # type: ignore[attr-defined]
    sx, sy = (right - left) / size[0], (bottom - top) / size[1]
    return [
        Candidate(
            left + r.left() * sx,
            top + r.top() * sy,
            left + r.right() * sx,
            top + r.bottom() * sy,
            float(s),
        )
        for r, s in zip(rects, scores, strict=True)
        if s >= threshold
    ]


def _tiled(width: int, height: int, scale: float, coarse: float, tile_px: int) -> list[tuple[Box, float]]:
    """A coarse pass over the whole image at `coarse`, then tiles at `scale` overlapping by more
    than the smallest face the coarse pass is sure to find."""
    overlap = math.ceil(OVERLAP_MARGIN * DETECTOR_FACE_PX / coarse)
    side = max(math.floor(tile_px / scale), 2 * overlap)
    plan: list[tuple[Box, float]] = [((0, 0, width, height), coarse)]
    for top, tile_height in spans(height, side, overlap):
        for left, tile_width in spans(width, side, overlap):
            plan.append(((left, top, left + tile_width, top + tile_height), scale))
    return plan


def spans(length: int, side: int, overlap: int) -> list[tuple[int, int]]:
    """(start, size) of the fewest windows of at most `side` covering 0..length, overlapping by `overlap`."""
    if length <= side:
        return [(0, length)]
    count = math.ceil((length - overlap) / (side - overlap))
    # As many windows as needed, each only as large as needed: less scanned twice.
    size = min(side, math.ceil((length + (count - 1) * overlap) / count))
    stride = (length - size) / (count - 1)
    return [(round(i * stride), size) for i in range(count)]


def _cos_sin(angle: int) -> tuple[float, float]:
    """cos and sin of a whole number of degrees, exact at multiples of 90°."""
    if angle % 90 == 0:
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[(angle // 90) % 4]
    radians = math.radians(angle)
    return math.cos(radians), math.sin(radians)


def _intersects(window: Box, polygon: list[tuple[float, float]]) -> bool:
    """Whether an axis-aligned window and a convex polygon overlap (separating axis test)."""
    left, top, right, bottom = window
    xs = [x for x, _ in polygon]
    ys = [y for _, y in polygon]
    if max(xs) <= left or min(xs) >= right or max(ys) <= top or min(ys) >= bottom:
        return False
    rect = [(left, top), (right, top), (right, bottom), (left, bottom)]
    for i in range(len(polygon)):
        (x0, y0), (x1, y1) = polygon[i], polygon[(i + 1) % len(polygon)]
        nx, ny = y1 - y0, x0 - x1
        poly_proj = [nx * x + ny * y for x, y in polygon]
        rect_proj = [nx * x + ny * y for x, y in rect]
        if max(rect_proj) <= min(poly_proj) or min(rect_proj) >= max(poly_proj):
            return False
    return True
