"""The second look: dlib's CNN face detector on the places where the HOG search was unsure.

HOG misses faces behind dark glasses or a face mask (measured: docs/faces.md, "The second look"),
but it still scores them weakly, between WEAK_SCORE and its possible score, at one of the angles it
searches. Each such weak box, and each `possible` one, is cut out with a face of context, turned so
the face is upright and scaled so it is CNN_FACE_PX wide, then shown to dlib's MMOD CNN detector
(`mmod_human_face_detector.dat` from face_recognition_models), which was trained on occluded and
blurred faces too. A box the CNN confirms is a face: it is aligned and encoded in the turned crop,
like any other, and flagged `degraded` (its encoding is less reliable). A box the CNN finds no face
in, at any quarter turn, is not a face.

A `possible` box the CNN does not confirm at its own size is dropped only when a sweep of the box
finds no face of any size in it: HOG boxes a turned small face it cannot see with a much larger
weak box around it (a 48 px face turned 165° was boxed 154 px wide), so "no face of this size" is
not "no face". The sweep scans the box at the four quarter turns and the four diagonals, scaled
so the smallest face searched is as wide as the CNN's window, within SWEEP_MAX_PIXELS; a box too
large for that budget, or with anything face-like in it, stays `possible` (review).

The CNN costs about 4-8 s per megapixel here, so it never scans a whole photo: only crops of about
0.05 MP each, and sweeps of at most SWEEP_MAX_PIXELS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from gatekeeper.faces.merging import Candidate

if TYPE_CHECKING:
    from numpy.typing import NDArray

# The face's width in the crop shown to the CNN: its MMOD window is 80 px, and it found every
# occluded corpus face from about 70 px (docs/faces.md).
CNN_FACE_PX = 90
# Context around the face in each crop, in face widths on every side.
CONTEXT = 0.4
# A CNN detection confirms a box when its centre lies within this many face widths of the box's
# centre and its width is within this factor of the box's.
CENTRE_TOLERANCE = 0.5
SIZE_FACTOR = 1.8
# Turns of the crop tried before a box is declared not a face: the box's own angle, then each
# further quarter turn (the CNN, like HOG, sees faces tilted up to about 40°).
QUARTER_TURNS = (0, 90, 180, 270)
# A `possible` box the CNN finds no face in is dropped only from this width (px of the photo): on
# smaller faces, enlarged for it, the CNN missed real faces (a 48 px face blurred and upside down).
DISMISS_PX = 80
# The CNN's detection window: the smallest face it finds in what it scans.
CNN_WINDOW_PX = 80
# A sweep's margin around the box, in box widths on every side.
SWEEP_MARGIN = 0.1
# Pixels a sweep may scan over its eight turns (about 9 s here); a larger box is not swept and
# stays `possible`.
SWEEP_MAX_PIXELS = 2_400_000


@dataclass(frozen=True)
class Confirmed:
    """A face the CNN confirmed: its upright crop and the CNN's box in it, for alignment."""

    crop: NDArray[np.uint8]  # RGB, turned so the face is upright, at the photo's own resolution
    rect: tuple[int, int, int, int]  # the CNN's box in `crop`
    confidence: float
    angle: int  # how far the crop was turned counter-clockwise
    # The CNN's box in the photo (the bounding box of `rect` turned back): where the face is, more
    # closely than the HOG box of a turned or weak detection. Two looks at one face share it.
    in_photo: tuple[float, float, float, float]


def side_of(c: Candidate) -> float:
    """The width of the face behind a candidate: its box in the given image holds the face turned."""
    width = c.right - c.left
    rest = math.radians(c.angle % 90)
    # A square of side s turned by a makes a box s (|cos a| + |sin a|) wide.
    return width / (abs(math.cos(rest)) + abs(math.sin(rest)))


def upright_crop(image: NDArray[np.uint8], c: Candidate, angle: int) -> tuple[NDArray[np.uint8], float]:
    """The candidate's face with context, turned counter-clockwise by `angle`, and its width in it."""
    crop, side, _ = _upright_crop(image, c, angle)
    return crop, side


def _crop_region(image: NDArray[np.uint8], c: Candidate) -> tuple[int, int, int, int]:
    """Where upright_crop cuts the candidate's face with its context: (left, top, right, bottom)."""
    height, width = image.shape[:2]
    half = side_of(c) * (0.5 + CONTEXT) * math.sqrt(2)  # room for any turn without cutting the context
    cx, cy = (c.left + c.right) / 2, (c.top + c.bottom) / 2
    left, top = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    right, bottom = min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))
    return left, top, right, bottom


def in_photo(
    rect: tuple[int, int, int, int],
    region: tuple[int, int, int, int],
    angle: int,
    turned_size: tuple[int, int],
) -> tuple[float, float, float, float]:
    """A box in a crop of `region` turned counter-clockwise by `angle` (expanded to `turned_size`,
    width and height), as the bounding box of its corners in the photo."""
    left, top, right, bottom = region
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    xs, ys = [], []
    for x, y in ((rect[0], rect[1]), (rect[2], rect[1]), (rect[0], rect[3]), (rect[2], rect[3])):
        dx, dy = x - turned_size[0] / 2, y - turned_size[1] / 2
        xs.append(cos * dx - sin * dy + (left + right) / 2)
        ys.append(sin * dx + cos * dy + (top + bottom) / 2)
    return min(xs), min(ys), max(xs), max(ys)


def _upright_crop(
    image: NDArray[np.uint8], c: Candidate, angle: int
) -> tuple[NDArray[np.uint8], float, tuple[int, int, int, int]]:
    """upright_crop, with the region of the photo it was cut from."""
    region = left, top, right, bottom = _crop_region(image, c)
    crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
    if angle % 360:
        crop = crop.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128))
    return np.asarray(crop), side_of(c), region


def turns(angle: int, *, every_turn: bool) -> list[int]:
    """The angles a box found at `angle` is shown to the CNN at, in order."""
    if every_turn:
        return [(angle + turn) % 360 for turn in QUARTER_TURNS]
    rest = angle % 90
    if not rest:
        return [angle % 360]
    return [angle % 360, (angle - rest) % 360, (angle - rest + 90) % 360]


class SecondLook:
    """dlib's MMOD CNN face detector, asked about one box at a time."""

    def __init__(self, cnn: Any) -> None:
        """Wrap a loaded dlib.cnn_face_detection_model_v1."""
        self._cnn = cnn

    def look(self, image: NDArray[np.uint8], c: Candidate, *, every_turn: bool) -> Confirmed | None:
        """The face at the candidate as the CNN sees it, or None when it finds none.

        Tried at the angle the box was found at, then (every_turn) each further quarter turn, or
        else the quarter turns either side of a diagonal angle.
        """
        for angle in turns(c.angle, every_turn=every_turn):
            crop, side, region = _upright_crop(image, c, angle)
            found = self._find(crop, side)
            if found is not None:
                rect, confidence = found
                where = in_photo(rect, region, angle, (crop.shape[1], crop.shape[0]))
                return Confirmed(np.ascontiguousarray(crop), rect, confidence, angle, where)
        return None

    def sweep_is_empty(self, image: NDArray[np.uint8], c: Candidate, *, min_px: int) -> bool:
        """Whether the CNN finds no face at all, of any size from `min_px`, in the box at any quarter
        turn. False when anything is found, or when the sweep would scan more than SWEEP_MAX_PIXELS."""
        height, width = image.shape[:2]
        margin = SWEEP_MARGIN * max(c.right - c.left, c.bottom - c.top)
        left, top = max(0, math.floor(c.left - margin)), max(0, math.floor(c.top - margin))
        right, bottom = min(width, math.ceil(c.right + margin)), min(height, math.ceil(c.bottom + margin))
        if right <= left or bottom <= top:
            return False
        factor = max(1.0, CNN_WINDOW_PX / max(min_px, 1))
        size = (max(1, round((right - left) * factor)), max(1, round((bottom - top) * factor)))
        crop = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))
        scaled = crop.resize(size, Image.Resampling.BILINEAR)
        # The CNN, like HOG, sees faces tilted up to about 40°: the quarter turns (exact, no
        # resampling) and the same turned by 45° cover every angle.
        diagonal = scaled.rotate(
            45, resample=Image.Resampling.BILINEAR, expand=True, fillcolor=(128, 128, 128)
        )
        if 4 * (scaled.width * scaled.height + diagonal.width * diagonal.height) > SWEEP_MAX_PIXELS:
            return False
        return all(
            len(self._cnn(np.ascontiguousarray(np.rot90(np.asarray(turned), k)), 0)) == 0
            for turned in (scaled, diagonal)
            for k in range(4)
        )

    def _find(self, crop: NDArray[np.uint8], side: float) -> tuple[tuple[int, int, int, int], float] | None:
        """The CNN's best detection near the crop's centre and of about the face's size, in crop pixels."""
        if side <= 0 or crop.size == 0:
            return None
        factor = CNN_FACE_PX / side
        image = Image.fromarray(crop)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        scaled = np.ascontiguousarray(np.asarray(image.resize(size, Image.Resampling.BILINEAR)))
        cx, cy = crop.shape[1] / 2 * factor, crop.shape[0] / 2 * factor
        best = None
        for d in self._cnn(scaled, 0):
            r = d.rect
            w = r.right() - r.left()
            centre = ((r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2)
            near = math.dist(centre, (cx, cy)) <= CENTRE_TOLERANCE * CNN_FACE_PX
            sized = CNN_FACE_PX / SIZE_FACTOR <= w <= CNN_FACE_PX * SIZE_FACTOR
            if near and sized and (best is None or d.confidence > best[1]):
                box = (
                    round(r.left() / factor),
                    round(r.top() / factor),
                    round(r.right() / factor),
                    round(r.bottom() / factor),
                )
                best = (box, float(d.confidence))
        return best
