"""GIF: the first frame, decoded and re-encoded as PNG (comments and application blocks do not survive)."""

from __future__ import annotations

import struct

from gatekeeper.media.base import MalformedError
from gatekeeper.media.converted import ConvertedFormat


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise MalformedError("GIF data block runs past the end (truncated)")
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos


def _colour_table_size(packed: int) -> int:
    return 3 * (2 ** ((packed & 0x07) + 1)) if packed & 0x80 else 0


class GifHandler(ConvertedFormat):
    """GIF in, PNG of its first frame out."""

    name = "gif"
    pillow_format = "GIF"
    output = "png"
    allowed: frozenset[str] = frozenset()

    def matches(self, head: bytes) -> bool:
        """GIF starts with GIF87a or GIF89a."""
        return head[:6] in (b"GIF87a", b"GIF89a")

    def check_complete(self, data: bytes) -> None:
        """Walk the blocks up to the end of the first frame's image data; raises MalformedError."""
        if len(data) < 13:
            raise MalformedError("GIF header is truncated")
        pos = 13 + _colour_table_size(data[10])
        while True:
            if pos >= len(data):
                raise MalformedError("GIF ends before its first frame (truncated)")
            introducer = data[pos]
            if introducer == 0x21:
                pos = _skip_sub_blocks(data, pos + 2)
            elif introducer == 0x2C:
                if pos + 10 > len(data):
                    raise MalformedError("GIF image descriptor is truncated")
                width, height = struct.unpack_from("<HH", data, pos + 5)
                if width == 0 or height == 0:
                    raise MalformedError("GIF first frame is empty")
                # Descriptor, local colour table, LZW code size, then the image data sub-blocks.
                pos += 10 + _colour_table_size(data[pos + 9]) + 1
                _skip_sub_blocks(data, pos)
                return
            else:
                raise MalformedError(f"GIF has an unknown block {introducer:#04x} before its first frame")


HANDLER = GifHandler()
