"""Decoding any accepted format to upright 8-bit RGB, refusing oversize and incomplete files first."""

from __future__ import annotations

import warnings
from io import BytesIO

import numpy
from PIL import Image

from gatekeeper.errors import ImageTooLargeError, MediaError, UnreadableImageError
from gatekeeper.media import heic
from gatekeeper.media.base import DecodedImage, DecodedSource, FormatHandler, MalformedError
from gatekeeper.media.exif import read_orientation, strip_exif_header
from gatekeeper.media.registry import handler_for

_WHITE = (255, 255, 255, 255)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# EXIF orientation -> the transpose that makes the stored pixels upright.
_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode(data: bytes, *, max_pixels: int) -> DecodedImage:
    """Decode fully to upright HxWx3 uint8 RGB.

    Raises UnsupportedMediaError, UnreadableImageError, ImageTooLargeError (checked before decoding).
    """
    return decode_source(data, max_pixels=max_pixels).image


def decode_source(data: bytes, *, max_pixels: int) -> DecodedSource:
    """Decode as `decode` does, keeping the source's ICC profile; raises the same errors."""
    handler = handler_for(data)
    if handler.name == "heic":
        heic.register_opener()
    # Our own max_pixels is the limit; Pillow's global bomb limit must neither warn (a warning
    # would escape to the caller) nor decide for us, except above its hard error threshold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return _decode(data, handler, max_pixels)
        except MediaError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{handler.name}: {exc}", limit=max_pixels) from exc
        except Exception as exc:
            # Pillow and its plugins raise many types on hostile input (OSError, SyntaxError,
            # ValueError, struct.error, IndexError, RuntimeError...); all mean "not readable".
            raise UnreadableImageError(f"{handler.name} does not decode: {exc}") from exc


def _decode(data: bytes, handler: FormatHandler, max_pixels: int) -> DecodedSource:
    with Image.open(BytesIO(data), formats=[handler.pillow_format]) as image:
        pixels = image.width * image.height
        if pixels > max_pixels:
            raise ImageTooLargeError(
                f"{image.width}x{image.height} = {pixels} pixels exceeds the limit of {max_pixels}",
                pixels=pixels,
                limit=max_pixels,
            )
        # After the size check, so a small file claiming huge dimensions is never inflated.
        try:
            handler.check_complete(data)
        except MalformedError as exc:
            raise UnreadableImageError(f"{handler.name}: {exc}") from exc
        # Our own walk above, not Pillow, decides that the file is complete: Pillow accepts a
        # truncated file silently whenever some other import set ImageFile.LOAD_TRUNCATED_IMAGES.
        image.load()
        orientation, apply = _orientation(handler.name, image, data)
        icc = image.info.get("icc_profile") or None
        rgb = _to_rgb(image)
    transpose = _UPRIGHT[orientation] if apply else None
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    array = numpy.array(rgb, dtype=numpy.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise UnreadableImageError(f"{handler.name} decoded to an unexpected shape {array.shape}")
    return DecodedSource(DecodedImage(pixels=array, format=handler.name, orientation=orientation), icc)


def _orientation(fmt: str, image: Image.Image, data: bytes) -> tuple[int, bool]:
    """The source's EXIF orientation, and whether we still have to apply it."""
    if fmt == "heic":
        # libheif already applied the container's rotation and mirroring; pillow-heif then reset
        # the EXIF tag and kept the original value for us.
        return int(image.info.get("original_orientation") or 1), False
    if fmt == "tiff":
        return read_orientation(data), True
    exif = image.info.get("exif")
    if not isinstance(exif, bytes):
        return 1, True
    return read_orientation(strip_exif_header(exif)), True


def _to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited on white so hidden pixels cannot reappear."""
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        # Pillow's own I -> L conversion clips instead of scaling, turning most 16-bit images white.
        values = numpy.clip(numpy.asarray(image).astype(numpy.int64), 0, 65535)
        grey = ((values * 255 + 32767) // 65535).astype(numpy.uint8)
        return Image.fromarray(numpy.ascontiguousarray(numpy.stack([grey] * 3, axis=-1)))
    if mode == "F":
        grey = numpy.clip(numpy.rint(numpy.asarray(image)), 0, 255).astype(numpy.uint8)
        return Image.fromarray(numpy.ascontiguousarray(numpy.stack([grey] * 3, axis=-1)))
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if mode != "RGB":
        return image.convert("RGB")
    return image.copy()
