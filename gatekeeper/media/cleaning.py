"""The clean copy: built by the format's handler from the decoded source, never returned unverified."""

from __future__ import annotations

from gatekeeper.errors import MediaError, MetadataLeakError, UnreadableImageError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError
from gatekeeper.media.decoding import decode_source
from gatekeeper.media.registry import handler_for


def sanitise(
    data: bytes, *, max_pixels: int, jpeg_quality: int = 92, source: DecodedSource | None = None
) -> CleanCopy:
    """A verified copy without metadata; `source` is `decode_source(data)` when the caller has it.

    Raises UnsupportedMediaError, UnreadableImageError, ImageTooLargeError, MetadataLeakError.
    """
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 1..100 (got {jpeg_quality})")
    # Decoding first proves the file is complete and within the pixel cap before any byte is copied.
    if source is None:
        source = decode_source(data, max_pixels=max_pixels)
    handler = handler_for(data)
    try:
        copy = handler.sanitise(data, source, jpeg_quality=jpeg_quality)
    except MalformedError as exc:
        raise UnreadableImageError(f"{handler.name}: {exc}") from exc
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
