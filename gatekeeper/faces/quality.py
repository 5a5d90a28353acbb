"""How far a face's encoding can be trusted: a score from 0 to 1 from its detector and its pixels.

Measured on the 30 corpus faces and the same faces blurred (Gaussian, radius 2) and dimmed to 30 %
(docs/faces.md, "Quality"): the contrast of the face (standard deviation of its grey levels) was at
least 34 on every clear face and 10-22 dimmed; its sharpness (mean absolute Laplacian over that
deviation, with the face scaled to 80 px) at least 0.152 clear and at most 0.085 blurred.

Covered eyes or mouth (a face mask, dark glasses) are judged on the aligned 150 px chip the encoder
sees: the grey-level spread of its eye band and of its mouth band, the smaller of the two over the
spread of the whole face. On the same 30 faces that ratio was at least 0.45 clear (0.3 blurred or
dimmed), and 0.0 under a face mask; under dark glasses it fell to 0.0-0.1 where the landmarks still
found the eyes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from numpy.typing import NDArray

Box = tuple[int, int, int, int]

# Below this the face is degraded: a confident match to it goes to review (policy.py).
RELIABLE_QUALITY = 0.6
# Reference values: a face at or above both is not held against (score 1). With RELIABLE_QUALITY
# 0.6, a face is degraded under 12 grey levels of contrast or 0.12 of sharpness: every clear
# corpus face passes both, every blurred one fails sharpness, the darker dimmed ones contrast.
CONTRAST = 20.0
SHARPNESS = 0.2
# The eye band's and the mouth band's spread over the face's at or above this: nothing covers them.
OPENNESS = 0.4
# Where the bands lie in dlib's aligned chip (fractions of its side: rows, then columns).
EYE_BAND = ((0.30, 0.45), (0.2, 0.8))
MOUTH_BAND = ((0.62, 0.80), (0.3, 0.7))
FACE_AREA = ((0.2, 0.85), (0.2, 0.8))
# Sharpness is judged with the face at this width: a blur of a few pixels is lost on a large face
# shrunk for it, but so are its pores. Smaller faces are not judged on sharpness.
SHARPNESS_PX = 80


def face_measures(pixels: NDArray[np.uint8], box: Box) -> tuple[float, float | None]:
    """(contrast, sharpness) of the face at `box` in HxWx3 RGB pixels; sharpness None under SHARPNESS_PX."""
    left, top, right, bottom = box
    crop = pixels[max(top, 0) : max(bottom, 0), max(left, 0) : max(right, 0)]
    if crop.size == 0:
        return 0.0, None
    grey = Image.fromarray(np.ascontiguousarray(crop)).convert("L")
    contrast = float(np.asarray(grey, dtype=np.float64).std())
    if grey.width < SHARPNESS_PX:
        return contrast, None
    height = max(3, round(grey.height * SHARPNESS_PX / grey.width))
    face = np.asarray(grey.resize((SHARPNESS_PX, height), Image.Resampling.LANCZOS), dtype=np.float64)
    laplacian = 4 * face[1:-1, 1:-1] - face[:-2, 1:-1] - face[2:, 1:-1] - face[1:-1, :-2] - face[1:-1, 2:]
    return contrast, float(np.abs(laplacian).mean() / (face.std() + 1.0))


def openness(chip: NDArray[np.uint8]) -> float:
    """The smaller of the eye band's and the mouth band's grey-level spread over the whole face's,
    in an aligned face chip (HxWx3 RGB): near 0 when a mask or dark glasses cover one of them."""
    grey = np.asarray(Image.fromarray(np.ascontiguousarray(chip)).convert("L"), dtype=np.float64)

    def spread(area: tuple[tuple[float, float], tuple[float, float]]) -> float:
        (top, bottom), (left, right) = area
        h, w = grey.shape
        return float(grey[int(top * h) : int(bottom * h), int(left * w) : int(right * w)].std())

    return min(spread(EYE_BAND), spread(MOUTH_BAND)) / max(spread(FACE_AREA), 1.0)


def face_quality(pixels: NDArray[np.uint8], box: Box, chip: NDArray[np.uint8] | None = None) -> float:
    """From 0 to 1: 1 for a face with the contrast, sharpness and open eyes and mouth of a clear one
    (the last judged on its aligned chip, when given)."""
    contrast, sharpness = face_measures(pixels, box)
    terms = [1.0, contrast / CONTRAST]
    if sharpness is not None:
        terms.append(sharpness / SHARPNESS)
    if chip is not None:
        terms.append(openness(chip) / OPENNESS)
    return float(min(terms))


def second_look_quality(confidence: float) -> float:
    """A face only the CNN could confirm: below RELIABLE_QUALITY whatever its confidence, since what
    hid it from HOG (glasses, a mask, a turn) also moves its encoding."""
    return min(max(confidence, 0.0), 1.0) * RELIABLE_QUALITY * 0.99
