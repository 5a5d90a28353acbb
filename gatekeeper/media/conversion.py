"""Encoding upright RGB pixels into a fresh file, for formats and cases that cannot be cleaned in place."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import numpy
from PIL import Image

from gatekeeper.media.icc import is_rebuilt


def _encode(pixels: numpy.ndarray, fmt: str, icc_profile: bytes | None, **options: Any) -> bytes:
    # Only our own rebuilt profiles are ever written: a source profile can carry any text.
    if icc_profile is not None and not is_rebuilt(icc_profile):
        raise ValueError("only a rebuilt standard ICC profile may be embedded in a clean copy")
    # A fresh image carries no info dict, so Pillow has no metadata of the source to write back.
    image = Image.fromarray(numpy.ascontiguousarray(pixels, dtype=numpy.uint8))
    if image.mode != "RGB":
        raise ValueError(f"pixels must be HxWx3 uint8 RGB (got mode {image.mode})")
    buffer = BytesIO()
    options["icc_profile"] = icc_profile
    image.save(buffer, format=fmt, **{k: v for k, v in options.items() if v is not None})
    return buffer.getvalue()


def encode_jpeg(pixels: numpy.ndarray, icc_profile: bytes | None, *, quality: int) -> bytes:
    """Upright RGB pixels as a baseline JPEG with a rebuilt profile or none; raises ValueError."""
    return _encode(pixels, "JPEG", icc_profile, quality=quality)


def encode_png(pixels: numpy.ndarray, icc_profile: bytes | None) -> bytes:
    """Upright RGB pixels as a PNG with a rebuilt profile or none; raises ValueError."""
    return _encode(pixels, "PNG", icc_profile)


def encode_webp_lossless(pixels: numpy.ndarray, icc_profile: bytes | None) -> bytes:
    """Upright RGB pixels as a lossless WebP with a rebuilt profile or none; raises ValueError."""
    return _encode(pixels, "WEBP", icc_profile, lossless=True, quality=100)


def encode(pixels: numpy.ndarray, fmt: str, icc_profile: bytes | None, *, jpeg_quality: int) -> bytes:
    """Upright RGB pixels in an output format ("jpeg", "png", "webp"); raises ValueError."""
    if fmt == "jpeg":
        return encode_jpeg(pixels, icc_profile, quality=jpeg_quality)
    if fmt == "png":
        return encode_png(pixels, icc_profile)
    if fmt == "webp":
        return encode_webp_lossless(pixels, icc_profile)
    raise ValueError(f"not an output format: {fmt!r}")
