"""Encoding decoded pixels into a fresh file, for formats that cannot be cleaned in place."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy
from PIL import Image

_ICC_HEADER = 128


def rgb_icc(profile: bytes | None) -> bytes | None:
    """The profile when it describes RGB data (decoded pixels are always RGB), else None."""
    # A CMYK or grey profile attached to RGB pixels would make viewers show the wrong colours.
    if profile and len(profile) >= _ICC_HEADER and profile[16:20] == b"RGB ":
        return profile
    return None


def _encode(pixels: numpy.ndarray, fmt: str, **options: Any) -> bytes:
    # A fresh image carries no info dict, so Pillow has no metadata of the source to write back.
    image = Image.fromarray(numpy.ascontiguousarray(pixels, dtype=numpy.uint8))
    buffer = BytesIO()
    image.save(buffer, format=fmt, **{k: v for k, v in options.items() if v is not None})
    return buffer.getvalue()


def encode_jpeg(pixels: numpy.ndarray, icc_profile: bytes | None, *, quality: int) -> bytes:
    """Upright RGB pixels as a baseline JPEG, with the source's RGB ICC profile if any."""
    return _encode(pixels, "JPEG", quality=quality, icc_profile=rgb_icc(icc_profile))


def encode_png(pixels: numpy.ndarray, icc_profile: bytes | None) -> bytes:
    """Upright RGB pixels as a PNG, with the source's RGB ICC profile if any."""
    return _encode(pixels, "PNG", icc_profile=rgb_icc(icc_profile))


def encode_webp_lossless(pixels: numpy.ndarray, icc_profile: bytes | None) -> bytes:
    """Upright RGB pixels as a lossless WebP, with the source's RGB ICC profile if any."""
    return _encode(pixels, "WEBP", lossless=True, quality=100, icc_profile=rgb_icc(icc_profile))
