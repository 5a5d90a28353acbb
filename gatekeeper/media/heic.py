"""HEIC/HEIF: decoded through pillow-heif and published as JPEG (no metadata but an RGB ICC profile)."""

from __future__ import annotations

import struct
import threading

from gatekeeper.media.base import MalformedError
from gatekeeper.media.converted import ConvertedFormat

# Major brands of HEVC-coded HEIF images and image sequences, plus the generic HEIF brands.
_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_registered = False
_register_lock = threading.Lock()


def register_opener() -> None:
    """Teach Pillow to open HEIF, once, only when a HEIF file is actually met."""
    global _registered
    with _register_lock:
        if not _registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _registered = True


class HeicHandler(ConvertedFormat):
    """HEIC/HEIF in, JPEG out."""

    name = "heic"
    pillow_format = "HEIF"
    output = "jpeg"
    allowed: frozenset[str] = frozenset()

    def matches(self, head: bytes) -> bool:
        """An ISO-BMFF ftyp box first, with a HEIF major brand."""
        return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _BRANDS

    def check_complete(self, data: bytes) -> None:
        """The top-level boxes tile the file exactly; raises MalformedError."""
        pos = 0
        while pos < len(data):
            if pos + 8 > len(data):
                raise MalformedError("HEIF box header is truncated")
            size = struct.unpack_from(">I", data, pos)[0]
            header = 8
            if size == 1:
                if pos + 16 > len(data):
                    raise MalformedError("HEIF box header is truncated")
                size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
            elif size == 0:
                size = len(data) - pos
            if size < header or pos + size > len(data):
                raise MalformedError("HEIF box runs past the end (truncated)")
            pos += size


HANDLER = HeicHandler()
