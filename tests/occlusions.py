"""Faces as a camera at a school event sees them: behind dark glasses, a face mask or a cap, blurred,
in dim light. Each function takes a face crop (HxWx3 uint8 RGB) and the face's box in it, and returns
a changed copy; built in memory from corpus photos, never saved in the repository."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

Box = tuple[int, int, int, int]


def dark_glasses(pixels: np.ndarray, box: Box) -> np.ndarray:
    """A dark band over the eyes (sunglasses): 8 % of the light, across the face."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    out = pixels.copy()
    rows = slice(top + int(0.22 * height), top + int(0.48 * height))
    cols = slice(left + int(0.05 * width), right - int(0.05 * width))
    out[rows, cols] = (out[rows, cols] * 0.08).astype(np.uint8)
    return out


def face_mask(pixels: np.ndarray, box: Box) -> np.ndarray:
    """A pale face mask over the lower half of the face, down past the chin."""
    left, top, right, bottom = box
    height = bottom - top
    out = pixels.copy()
    out[top + height // 2 : bottom + height // 10, left:right] = (200, 200, 210)
    return out


def cap(pixels: np.ndarray, box: Box) -> np.ndarray:
    """A cap: the head above the brows covered, its peak's shadow over the eyes."""
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    out = pixels.copy()
    brim = top + int(0.08 * height)
    out[max(0, top - height // 2) : brim, max(0, left - width // 10) : right + width // 10] = (30, 40, 120)
    shade = (slice(brim, brim + int(0.3 * height)), slice(left, right))
    out[shade] = (out[shade] * 0.45).astype(np.uint8)
    return out


def blurred(pixels: np.ndarray, box: Box, radius: float = 3.0) -> np.ndarray:
    """The whole face crop under a Gaussian blur of `radius` px (motion, focus)."""
    return np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius)))


def dim(pixels: np.ndarray, box: Box, light: float = 0.35) -> np.ndarray:
    """The face crop with its brightness cut to `light` (a dark hall)."""
    return (pixels.astype(np.float32) * light).astype(np.uint8)


OCCLUSIONS: dict[str, Callable[[np.ndarray, Box], np.ndarray]] = {
    "dark_glasses": dark_glasses,
    "face_mask": face_mask,
    "cap": cap,
    "blur_2": lambda pixels, box: blurred(pixels, box, 2.0),
    "blur_4": lambda pixels, box: blurred(pixels, box, 4.0),
    "dim_30": lambda pixels, box: dim(pixels, box, 0.30),
    "dim_40": lambda pixels, box: dim(pixels, box, 0.40),
}
