"""Which handler reads which bytes: recognised by magic bytes only, never by file name."""

from __future__ import annotations

from gatekeeper.errors import EmptyFileError, UnsupportedMediaError
from gatekeeper.media import gif, heic, jpeg, png, tiff, webp
from gatekeeper.media.base import FormatHandler

HANDLERS: tuple[FormatHandler, ...] = (
    jpeg.HANDLER,
    png.HANDLER,
    webp.HANDLER,
    heic.HANDLER,
    gif.HANDLER,
    tiff.HANDLER,
)
# Longest magic we look at: an ISO-BMFF ftyp box with its major brand.
_HEAD = 16


def handler_for(data: bytes) -> FormatHandler:
    """The handler whose magic the data carries; raises EmptyFileError, UnsupportedMediaError."""
    if not data:
        raise EmptyFileError()
    head = bytes(data[:_HEAD])
    for handler in HANDLERS:
        if handler.matches(head):
            return handler
    accepted = ", ".join(h.name for h in HANDLERS)
    raise UnsupportedMediaError(f"not an accepted image format (accepted: {accepted}); starts {head[:8]!r}")


def sniff_format(data: bytes) -> str:
    """The format name ("jpeg", "png", ...) by magic bytes.

    Raises UnsupportedMediaError, or EmptyFileError when data is empty.
    """
    return handler_for(data).name
