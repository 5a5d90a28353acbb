"""Detector boxes and merging them: one box per face, the best one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Two boxes are one face when they overlap this much (IoU), or when one lies mostly inside the
# other (a face cut by a tile edge next to the same face whole in the neighbouring tile, or the
# square found in a turned image around a face also found upright).
MERGE_IOU = 0.3
MERGE_INSIDE = 0.6


@dataclass(frozen=True)
class Candidate:
    """A detector box in the given image's coordinates (float, unclipped), its score, and the angle
    (degrees, counter-clockwise) the image was turned by when it was found."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    angle: int = 0
    # Scored below what the first search counts (dlib's 0 turned, the possible score upright): only
    # the second look (second_look.py) can make it a face.
    weak: bool = False

    @property
    def turned(self) -> bool:
        """Found only in a turned copy of the image."""
        return self.angle != 0

    @property
    def area(self) -> float:
        return max(self.right - self.left, 0.0) * max(self.bottom - self.top, 0.0)


def overlap_matrix(candidates: Sequence[Candidate]) -> NDArray[np.bool_]:
    """Which pairs of boxes are the same face: enough IoU, or one mostly inside the other."""
    boxes = np.array([(c.left, c.top, c.right, c.bottom) for c in candidates], dtype=np.float64)
    areas = np.array([c.area for c in candidates], dtype=np.float64)
    left, top, right, bottom = boxes.T
    width = np.minimum.outer(right, right) - np.maximum.outer(left, left)
    height = np.minimum.outer(bottom, bottom) - np.maximum.outer(top, top)
    touching = (width > 0) & (height > 0)
    inter = np.where(touching, width * height, 0.0)
    union = areas[:, None] + areas[None, :] - inter
    smaller = np.minimum(areas[:, None], areas[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(touching, inter / np.where(touching, union, 1.0), 0.0)
        inside = np.where(touching & (smaller > 0), inter / np.where(smaller > 0, smaller, 1.0), 0.0)
    same: NDArray[np.bool_] = touching & ((iou >= MERGE_IOU) | (inside >= MERGE_INSIDE))
    return same


def merged(candidates: list[Candidate]) -> list[Candidate]:
    """Non-maximum suppression: the best-scoring box of each group of overlapping boxes.

    An upright box beats a turned one that overlaps it, so a face seen upright keeps its encoding;
    any box the first search counts beats a weak one.
    """
    ordered = sorted(candidates, key=lambda c: (c.weak, c.turned, -c.score))
    if len(ordered) < 2:
        return ordered
    same = overlap_matrix(ordered)
    kept = np.zeros(len(ordered), dtype=bool)
    for i in range(len(ordered)):
        kept[i] = not (same[i] & kept).any()
    return [c for c, keep in zip(ordered, kept, strict=True) if keep]
