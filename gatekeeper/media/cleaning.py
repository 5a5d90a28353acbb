"""The clean copy: built by the format's handler from the decoded source, never returned unverified."""

from __future__ import annotations

from io import BytesIO

import numpy
from PIL import Image, ImageCms

from gatekeeper.errors import ColourConversionError, MediaError, MetadataLeakError, UnreadableImageError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.conversion import encode
from gatekeeper.media.decoding import decode_source, srgb_pixels
from gatekeeper.media.icc import SRGB, is_standard, rebuilt
from gatekeeper.media.registry import handler_for

_OUTPUT_FORMATS = ("jpeg", "png", "webp")


def sanitise(
    data: bytes, *, max_pixels: int, jpeg_quality: int = 92, source: DecodedSource | None = None
) -> CleanCopy:
    """A verified copy without metadata; `source` is `decode_source(data)` when the caller has it.

    Raises UnsupportedMediaError, UnreadableImageError (also for a non-standard ICC profile that
    cannot be converted to sRGB), ImageTooLargeError, MetadataLeakError.
    """
    _check_quality(jpeg_quality)
    handler = handler_for(data)
    if source is None:
        # A file our own parsers prove complete, within the pixel cap and cleanable without any
        # pixel changing is stripped without decoding; anything else is decoded first, which
        # proves it complete and within the cap before any byte is copied (and refuses it if not).
        probe = handler.probe(data)
        if probe is not None and _fits(probe, max_pixels) and is_standard(probe.icc_profile):
            try:
                copy = handler.strip(data, probe)
            except MalformedError as exc:
                raise UnreadableImageError(f"{handler.name}: {exc}") from exc
            verify_clean(copy.data)
            return copy
        source = decode_source(data, max_pixels=max_pixels)
    if source.full_size is not None:
        # A downscaled copy: every pixel changes, so it is encoded once from the scaled pixels,
        # upright, in the source's colour space (or sRGB when that is not a standard one).
        pixels = source.image.pixels
        profile = source.icc_profile
        if not is_standard(profile):
            converted = srgb_pixels(data, source)
            if converted.shape != pixels.shape:  # CMYK: converted from the full-size ink values
                converted = numpy.asarray(
                    Image.fromarray(converted).resize(
                        (pixels.shape[1], pixels.shape[0]), Image.Resampling.LANCZOS
                    )
                )
            pixels, profile = converted, SRGB.profile
        return encode_clean(pixels, fmt=handler.output, jpeg_quality=jpeg_quality, icc_profile=profile)
    if not is_standard(source.icc_profile):
        # A profile we do not recognise by its colorimetry is never passed through (it can carry
        # any text): the pixels are converted to sRGB and the copy carries our sRGB profile.
        pixels = srgb_pixels(data, source)
        copy = CleanCopy.of(
            encode(pixels, handler.output, SRGB.profile, jpeg_quality=jpeg_quality),
            handler.output,
            lossless=False,
        )
    else:
        try:
            copy = handler.sanitise(data, source, jpeg_quality=jpeg_quality)
        except MalformedError as exc:
            raise UnreadableImageError(f"{handler.name}: {exc}") from exc
    verify_clean(copy.data)
    return copy


def encode_clean(
    pixels: numpy.ndarray, *, fmt: str = "jpeg", jpeg_quality: int = 92, icc_profile: bytes | None = None
) -> CleanCopy:
    """Upright HxWx3 uint8 RGB pixels as a verified clean copy (no EXIF, a standard ICC only).

    `icc_profile` is the space the pixels are in: a standard one is written in its rebuilt form,
    any other is converted to sRGB first. Raises ValueError for bad pixels, format or quality,
    UnreadableImageError when the profile cannot be converted, MetadataLeakError.
    """
    _check_quality(jpeg_quality)
    if fmt not in _OUTPUT_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(_OUTPUT_FORMATS)} (got {fmt!r})")
    if not isinstance(pixels, numpy.ndarray) or pixels.dtype != numpy.uint8 or pixels.ndim != 3:
        raise ValueError("pixels must be an HxWx3 uint8 array")
    if pixels.shape[2] != 3 or pixels.size == 0:
        raise ValueError(f"pixels must be an HxWx3 uint8 array (got shape {pixels.shape})")
    profile: bytes | None
    if is_standard(icc_profile):
        profile = rebuilt(icc_profile)
    else:
        assert icc_profile is not None
        pixels, profile = _to_srgb(pixels, icc_profile), SRGB.profile
    copy = CleanCopy.of(encode(pixels, fmt, profile, jpeg_quality=jpeg_quality), fmt, lossless=False)
    verify_clean(copy.data)
    return copy


def verify_clean(data: bytes) -> None:
    """Check with our own parsers that only allow-listed structure remains; raises MetadataLeakError."""
    try:
        handler = handler_for(data)
    except MediaError as exc:
        found = ("unrecognised format",)
        raise MetadataLeakError(f"not a recognised output format: {exc}", found=found) from exc
    handler.verify(data)


def _fits(probe: Probe, max_pixels: int) -> bool:
    """Within our cap and Pillow's own hard limit (above which decoding refuses it as a bomb)."""
    pixels = probe.width * probe.height
    hard = Image.MAX_IMAGE_PIXELS
    return pixels <= max_pixels and (hard is None or pixels <= 2 * hard)


def _check_quality(jpeg_quality: int) -> None:
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100 (got {jpeg_quality})")


def _to_srgb(pixels: numpy.ndarray, profile: bytes) -> numpy.ndarray:
    try:
        source = ImageCms.ImageCmsProfile(BytesIO(profile))
        target = ImageCms.ImageCmsProfile(BytesIO(SRGB.profile))
        image = Image.fromarray(numpy.ascontiguousarray(pixels))
        return numpy.array(ImageCms.profileToProfile(image, source, target, outputMode="RGB"))
    except Exception as exc:
        # LittleCMS raises PyCMSError/OSError for broken or non-RGB profiles.
        raise ColourConversionError(f"the ICC profile cannot be converted to sRGB ({exc})") from exc
