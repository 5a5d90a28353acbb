"""HEIC/HEIF: decoded through pillow-heif and published as JPEG (no metadata but an RGB ICC profile)."""

from __future__ import annotations

import struct
import threading

from gatekeeper.errors import MetadataLeakError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.conversion import encode_jpeg
from gatekeeper.media.icc import rebuilt

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


class HeicHandler:
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

    def probe(self, data: bytes) -> Probe | None:
        """Never: this format is always converted from decoded pixels."""
        return None

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """Never called: `probe` proves nothing for this format."""
        raise MalformedError(f"{self.name} has no lossless clean copy")

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """The primary image as a JPEG at jpeg_quality."""
        pixels = encode_jpeg(source.image.pixels, rebuilt(source.icc_profile), quality=jpeg_quality)
        return CleanCopy.of(pixels, "jpeg", lossless=False)

    def verify(self, data: bytes) -> None:
        """HEIF is never published as is; raises MetadataLeakError."""
        raise MetadataLeakError("HEIF is never a clean copy (it is converted to JPEG)", found=("HEIF file",))


HANDLER = HeicHandler()
