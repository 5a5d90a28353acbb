"""TIFF: the first page, decoded upright and published as JPEG (no tag survives but an RGB ICC profile)."""

from __future__ import annotations

from gatekeeper.media.base import MalformedError
from gatekeeper.media.converted import ConvertedFormat
from gatekeeper.media.exif import TiffReader

_STRIP_OFFSETS, _STRIP_COUNTS = 273, 279
_TILE_OFFSETS, _TILE_COUNTS = 324, 325


class TiffHandler(ConvertedFormat):
    """TIFF in, JPEG out."""

    name = "tiff"
    pillow_format = "TIFF"
    output = "jpeg"
    allowed: frozenset[str] = frozenset()

    def matches(self, head: bytes) -> bool:
        """Classic TIFF in either byte order (BigTIFF is not accepted)."""
        return head[:4] in (b"II*\x00", b"MM\x00*")

    def check_complete(self, data: bytes) -> None:
        """Every strip or tile of the first page lies inside the file; raises MalformedError."""
        # Pillow reads uncompressed strips through the same loop as JPEG, so a short file would
        # decode quietly when LOAD_TRUNCATED_IMAGES is set.
        reader = TiffReader(data)
        entries, _ = reader.read_ifd(reader.first_ifd)
        tags = {entry.tag: entry for entry in entries}
        for offsets_tag, counts_tag in ((_STRIP_OFFSETS, _STRIP_COUNTS), (_TILE_OFFSETS, _TILE_COUNTS)):
            if offsets_tag in tags and counts_tag in tags:
                offsets, counts = reader.ints(tags[offsets_tag]), reader.ints(tags[counts_tag])
                if len(offsets) != len(counts):
                    raise MalformedError("TIFF strip offsets and byte counts differ in number")
                for offset, count in zip(offsets, counts, strict=True):
                    if offset + count > len(data):
                        raise MalformedError("TIFF image data runs past the end (truncated)")
                return
        raise MalformedError("TIFF first page has no strips or tiles")


HANDLER = TiffHandler()
