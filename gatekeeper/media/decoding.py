"""Decoding any accepted format to upright 8-bit RGB, refusing oversize and incomplete files first."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO

import numpy
from PIL import Image, ImageCms

from gatekeeper.errors import FrameLimitError, ImageTooLargeError, MediaError, UnreadableImageError
from gatekeeper.media import heic
from gatekeeper.media.base import DecodedImage, DecodedSource, FormatHandler, MalformedError
from gatekeeper.media.exif import read_orientation, strip_exif_header
from gatekeeper.media.icc import SRGB
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


def decode_source(data: bytes, *, max_pixels: int, long_edge: int | None = None) -> DecodedSource:
    """Decode as `decode` does, keeping the source's ICC profile; raises the same errors.

    With `long_edge`, an image whose longer side exceeds it comes back downscaled to that long edge
    (Lanczos; a JPEG is first decoded at the nearest larger DCT scale, which costs a fraction of a
    full decode and still reads every byte of it), with `full_size` set.
    """
    if long_edge is not None and long_edge < 1:
        raise ValueError(f"long_edge must be positive (got {long_edge})")
    handler = handler_for(data)
    with _pillow_errors(handler, max_pixels):
        return _decode(data, handler, max_pixels, long_edge)


def output_size(width: int, height: int, long_edge: int | None) -> tuple[int, int]:
    """The size of a width x height image scaled down so its longer side is at most `long_edge`."""
    if long_edge is None or max(width, height) <= long_edge:
        return width, height
    factor = long_edge / max(width, height)
    return max(1, round(width * factor)), max(1, round(height * factor))


def frames(data: bytes, *, max_pixels: int, max_frames: int = 100) -> tuple[DecodedImage, ...]:
    """Every frame (GIF, animated WebP, APNG, MPO, multi-page TIFF) upright RGB; one for stills.

    Each frame is checked against max_pixels. Raises UnsupportedMediaError, UnreadableImageError
    (also for more than max_frames frames), ImageTooLargeError; ValueError when max_frames < 1.
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1 (got {max_frames})")
    handler = handler_for(data)
    with (
        _pillow_errors(handler, max_pixels),
        Image.open(BytesIO(data), formats=[handler.pillow_format]) as image,
    ):
        _check_size(image, max_pixels)
        count = int(getattr(image, "n_frames", 1))
        # Counted before any frame is inflated, so a many-frame bomb costs nothing to refuse.
        if count > max_frames:
            raise FrameLimitError(
                f"{handler.name} has {count} frames; at most {max_frames} can be gated frame by frame",
                frames=count,
                limit=max_frames,
            )
        _check_complete(data, handler)
        orientation, apply = _orientation(handler.name, image, data)
        transpose = _UPRIGHT[orientation] if apply else None
        out = []
        for index in range(count):
            image.seek(index)
            # Frames of an MPO or a TIFF may each have their own size.
            _check_size(image, max_pixels)
            image.load()
            rgb = _to_rgb(image)
            if transpose is not None:
                rgb = rgb.transpose(transpose)
            out.append(
                DecodedImage(pixels=_array(rgb, handler), format=handler.name, orientation=orientation)
            )
        return tuple(out)


def srgb_pixels(data: bytes, source: DecodedSource) -> numpy.ndarray:
    """The source's upright pixels converted from its ICC profile to sRGB; raises UnreadableImageError."""
    profile = source.icc_profile
    if not profile:
        return source.image.pixels
    handler = handler_for(data)
    space = profile[16:20]
    try:
        source_profile = ImageCms.ImageCmsProfile(BytesIO(profile))
        target = ImageCms.ImageCmsProfile(BytesIO(SRGB.profile))
        if space == b"RGB ":
            image = Image.fromarray(source.image.pixels)
            return numpy.array(ImageCms.profileToProfile(image, source_profile, target, outputMode="RGB"))
        if space == b"GRAY":
            image = Image.fromarray(numpy.ascontiguousarray(source.image.pixels[..., 0]))
            return numpy.array(ImageCms.profileToProfile(image, source_profile, target, outputMode="RGB"))
        if space == b"CMYK":
            # The decoded pixels are Pillow's naive CMYK->RGB; the profile applies to the ink values.
            with Image.open(BytesIO(data), formats=[handler.pillow_format]) as cmyk:
                if cmyk.mode != "CMYK":
                    raise UnreadableImageError(
                        f"{handler.name} has a CMYK ICC profile but {cmyk.mode} pixels"
                    )
                converted = ImageCms.profileToProfile(cmyk, source_profile, target, outputMode="RGB")
                assert converted is not None
                transpose = _UPRIGHT[source.image.orientation]
                if transpose is not None and handler.name != "heic":
                    converted = converted.transpose(transpose)
                return numpy.array(converted)
    except MediaError:
        raise
    except Exception as exc:
        # LittleCMS refuses broken or exotic profiles with PyCMSError/OSError; either way the
        # colours cannot be made right, and passing the profile through is not allowed.
        raise UnreadableImageError(
            f"{handler.name}: its ICC profile is not a standard one and cannot be converted to sRGB ({exc})"
        ) from exc
    raise UnreadableImageError(
        f"{handler.name}: its ICC profile (colour space {space!r}) is not a standard one "
        "and cannot be converted to sRGB"
    )


@contextmanager
def _pillow_errors(handler: FormatHandler, max_pixels: int) -> Iterator[None]:
    """Map whatever Pillow raises on hostile input to our MediaError subclasses."""
    if handler.name == "heic":
        heic.register_opener()
    # Our own max_pixels is the limit; Pillow's global bomb limit must neither warn (a warning
    # would escape to the caller) nor decide for us, except above its hard error threshold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except MediaError:
            raise
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{handler.name}: {exc}", limit=max_pixels) from exc
        except Exception as exc:
            # Pillow and its plugins raise many types on hostile input (OSError, SyntaxError,
            # ValueError, struct.error, IndexError, RuntimeError, EOFError...); all mean "not readable".
            raise UnreadableImageError(f"{handler.name} does not decode: {exc}") from exc


def _check_size(image: Image.Image, max_pixels: int) -> None:
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"{image.width}x{image.height} = {pixels} pixels exceeds the limit of {max_pixels}",
            pixels=pixels,
            limit=max_pixels,
        )


def _check_complete(data: bytes, handler: FormatHandler) -> None:
    try:
        handler.check_complete(data)
    except MalformedError as exc:
        raise UnreadableImageError(f"{handler.name}: {exc}") from exc


def _array(rgb: Image.Image, handler: FormatHandler) -> numpy.ndarray:
    array = numpy.array(rgb, dtype=numpy.uint8)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise UnreadableImageError(f"{handler.name} decoded to an unexpected shape {array.shape}")
    return array


def _decode(data: bytes, handler: FormatHandler, max_pixels: int, long_edge: int | None) -> DecodedSource:
    with Image.open(BytesIO(data), formats=[handler.pillow_format]) as image:
        _check_size(image, max_pixels)
        # After the size check, so a small file claiming huge dimensions is never inflated.
        _check_complete(data, handler)
        stored = image.size
        target = output_size(*stored, long_edge)
        if target != stored and image.format == "JPEG":
            # DCT scaling: 1/2, 1/4 or 1/8 of the size, never below the target.
            image.draft(image.mode, target)
        # Our own walk above, not Pillow, decides that the file is complete: Pillow accepts a
        # truncated file silently whenever some other import set ImageFile.LOAD_TRUNCATED_IMAGES.
        image.load()
        orientation, apply = _orientation(handler.name, image, data)
        icc = image.info.get("icc_profile") or None
        rgb = _to_rgb(image)
    if rgb.size != target:
        rgb = rgb.resize(target, Image.Resampling.LANCZOS)
    transpose = _UPRIGHT[orientation] if apply else None
    if transpose is not None:
        rgb = rgb.transpose(transpose)
    array = _array(rgb, handler)
    full_size = None
    if target != stored:
        # Orientations 5-8 turn the stored image a quarter: its width becomes the height.
        full_size = (stored[1], stored[0]) if apply and orientation >= 5 else stored
    image_out = DecodedImage(pixels=array, format=handler.name, orientation=orientation)
    return DecodedSource(image_out, icc, full_size)


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
