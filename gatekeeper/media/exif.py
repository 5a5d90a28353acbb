"""The few TIFF/EXIF structures the media package reads and writes itself, without Pillow."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gatekeeper.media.base import MalformedError

EXIF_HEADER = b"Exif\x00\x00"
ORIENTATION = 0x0112
_SHORT = 3
# Bytes per value for each TIFF field type (1..13, BigTIFF types are not accepted).
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_TAG_NAMES = {
    0x8769: "ExifIFD",
    0x8825: "GPS",
    0xA005: "InteropIFD",
    0x927C: "MakerNote",
    0x010E: "ImageDescription",
    0x013B: "Artist",
    0x8298: "Copyright",
    0x0201: "ThumbnailOffset",
    0x83BB: "IPTC",
    0x02BC: "XMP",
    0x8649: "Photoshop",
}


@dataclass(frozen=True)
class IfdEntry:
    """One IFD entry; value_at is where its value bytes start inside the TIFF data."""

    tag: int
    type: int
    count: int
    value_at: int


class TiffReader:
    """Bounds-checked reader of a TIFF structure (a TIFF file or the body of an EXIF segment)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
            raise MalformedError("not a TIFF header")
        self.data = data
        self.order = "<" if data[:2] == b"II" else ">"
        self.first_ifd = self.u32(4)

    def u16(self, at: int) -> int:
        """An unsigned 16-bit value at a checked offset."""
        self._need(at, 2)
        return int(struct.unpack_from(self.order + "H", self.data, at)[0])

    def u32(self, at: int) -> int:
        """An unsigned 32-bit value at a checked offset."""
        self._need(at, 4)
        return int(struct.unpack_from(self.order + "I", self.data, at)[0])

    def read_ifd(self, offset: int) -> tuple[list[IfdEntry], int]:
        """The entries of the IFD at offset and the offset of the next IFD (0: none)."""
        count = self.u16(offset)
        self._need(offset + 2, 12 * count + 4)
        entries = []
        for i in range(count):
            at = offset + 2 + 12 * i
            tag, typ, n = self.u16(at), self.u16(at + 2), self.u32(at + 4)
            size = _TYPE_SIZES.get(typ, 1) * n
            value_at = at + 8 if size <= 4 else self.u32(at + 8)
            entries.append(IfdEntry(tag, typ, n, value_at))
        return entries, self.u32(offset + 2 + 12 * count)

    def ints(self, entry: IfdEntry) -> tuple[int, ...]:
        """The values of an unsigned integer entry (BYTE, SHORT or LONG)."""
        sizes = {1: (1, "B"), 3: (2, "H"), 4: (4, "I"), 13: (4, "I")}
        if entry.type not in sizes:
            raise MalformedError(f"tag {entry.tag:#06x} is not an integer (type {entry.type})")
        size, code = sizes[entry.type]
        self._need(entry.value_at, size * entry.count)
        return tuple(struct.unpack_from(f"{self.order}{entry.count}{code}", self.data, entry.value_at))

    def raw(self, entry: IfdEntry) -> bytes:
        """The value bytes of an entry, whatever its type."""
        size = _TYPE_SIZES.get(entry.type, 1) * entry.count
        self._need(entry.value_at, size)
        return self.data[entry.value_at : entry.value_at + size]

    def _need(self, at: int, size: int) -> None:
        if at < 0 or at + size > len(self.data):
            raise MalformedError("TIFF structure points outside the data")


def strip_exif_header(payload: bytes) -> bytes:
    """The TIFF body of an EXIF blob, with any "Exif\\0\\0" prefixes removed."""
    # Some PNG writers put the JPEG-style prefix inside eXIf too, and Pillow adds another.
    while payload.startswith(EXIF_HEADER):
        payload = payload[len(EXIF_HEADER) :]
    return payload


def read_orientation(tiff: bytes) -> int:
    """The Orientation of IFD0 (1..8), or 1 when absent, out of range or unreadable."""
    try:
        reader = TiffReader(tiff)
        entries, _ = reader.read_ifd(reader.first_ifd)
        for entry in entries:
            if entry.tag == ORIENTATION and entry.count >= 1:
                value = reader.ints(entry)[0]
                return value if 1 <= value <= 8 else 1
    except MalformedError:
        # A broken source EXIF is never copied, so falling back to "upright as stored" is safe.
        return 1
    return 1


def minimal_exif(orientation: int) -> bytes:
    """An APP1 Exif payload holding IFD0 with only the Orientation tag, and no next IFD."""
    if not 1 <= orientation <= 8:
        raise ValueError(f"orientation must be 1..8 (got {orientation})")
    tiff = b"MM\x00*" + struct.pack(">I", 8)
    ifd = struct.pack(">HHHIHH", 1, ORIENTATION, _SHORT, 1, orientation, 0) + struct.pack(">I", 0)
    return EXIF_HEADER + tiff + ifd


def exif_findings(payload: bytes) -> list[str]:
    """What an EXIF payload holds beyond IFD0 with a single Orientation; empty when minimal."""
    if not payload.startswith(EXIF_HEADER):
        return ["EXIF without its header"]
    tiff = payload[len(EXIF_HEADER) :]
    try:
        reader = TiffReader(tiff)
        entries, next_ifd = reader.read_ifd(reader.first_ifd)
        found = []
        for entry in entries:
            if entry.tag != ORIENTATION:
                found.append(f"EXIF {_TAG_NAMES.get(entry.tag, f'tag {entry.tag:#06x}')}")
            elif entry.type != _SHORT or entry.count != 1 or not 1 <= reader.ints(entry)[0] <= 8:
                found.append("EXIF Orientation of an unexpected form")
        if len(entries) > 1 and not found:
            found.append("EXIF repeated Orientation")
        if next_ifd:
            found.append("EXIF IFD1 (thumbnail)")
        # Bytes no entry accounts for could carry anything; the minimal form has none.
        expected = 8 + 2 + 12 * len(entries) + 4
        if reader.first_ifd != 8 or len(tiff) != expected:
            found.append("EXIF bytes outside IFD0")
        return found
    except MalformedError:
        return ["EXIF that cannot be parsed"]
