"""Covering faces irreversibly before a photo is published."""

from __future__ import annotations

from collections.abc import Sequence

import numpy

# A flat mid grey: it carries nothing of the face (a mean colour or a blur would carry some).
_FILL = numpy.array([128, 128, 128], dtype=numpy.uint8)


def cover(
    pixels: numpy.ndarray, boxes: Sequence[tuple[int, int, int, int]], *, margin: float = 0.3
) -> numpy.ndarray:
    """A copy with each (left, top, right, bottom) box, enlarged by margin of its size per side, filled.

    The fill is solid, so nothing of the face can be recovered (a light blur can be undone or
    still be recognised). Boxes are clipped to the image. Raises ValueError for bad pixels, boxes
    or margin.
    """
    if not isinstance(pixels, numpy.ndarray) or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError("pixels must be an HxWx3 array")
    if not 0 <= margin <= 10:
        raise ValueError(f"margin must be 0..10 (got {margin})")
    height, width = pixels.shape[:2]
    out = numpy.array(pixels, dtype=numpy.uint8, copy=True)
    for box in boxes:
        left, top, right, bottom = (int(v) for v in box)
        if right <= left or bottom <= top:
            raise ValueError(f"box {box} is empty or inverted (expected left, top, right, bottom)")
        dx, dy = margin * (right - left), margin * (bottom - top)
        # Rounded outwards, so the margin is never smaller than asked.
        x0, y0 = max(0, int(numpy.floor(left - dx))), max(0, int(numpy.floor(top - dy)))
        x1, y1 = min(width, int(numpy.ceil(right + dx))), min(height, int(numpy.ceil(bottom + dy)))
        if x0 < x1 and y0 < y1:
            out[y0:y1, x0:x1] = _FILL
    return out
