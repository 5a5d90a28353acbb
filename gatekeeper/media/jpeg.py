"""JPEG: a lossless segment strip that keeps what decoding needs and nothing that describes anyone."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gatekeeper.errors import MetadataLeakError, UnreadableImageError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError
from gatekeeper.media.exif import EXIF_HEADER, exif_findings, minimal_exif
from gatekeeper.media.icc import is_rebuilt, rebuilt

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
APP0, APP1, APP2, APP14, COM = 0xE0, 0xE1, 0xE2, 0xEE, 0xFE
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Tables and frame structure: everything the decoder needs besides the scans themselves.
_STRUCTURAL = _SOF | {0xC4, 0xCC, 0xDB, 0xDC, 0xDD}  # DHT, DAC, DQT, DNL, DRI
_JFIF_ID = b"JFIF\x00"
_ICC_ID = b"ICC_PROFILE\x00"
_ADOBE_ID = b"Adobe"
# JFIF identifier, version, units, densities; the two thumbnail sizes follow and are set to 0.
_JFIF_FIXED = 12
_ADOBE_LENGTH = 12


@dataclass(frozen=True)
class Segment:
    """One marker segment; for SOS, end includes the entropy-coded data that follows it."""

    marker: int
    start: int
    header_end: int
    end: int

    def payload(self, data: bytes) -> bytes:
        """The bytes after the length field (for SOS: the scan header only)."""
        return data[self.start + 4 : self.header_end]


def walk(data: bytes, *, strict: bool) -> tuple[list[Segment], int]:
    """The segments up to the first EOI, and the offset just after it; raises MalformedError."""
    if not data.startswith(b"\xff\xd8"):
        raise MalformedError("JPEG does not start with SOI")
    segments = [Segment(SOI, 0, 2, 2)]
    pos, size = 2, len(data)
    while True:
        if pos + 1 >= size:
            raise MalformedError("JPEG ends before EOI (truncated)")
        if data[pos] != 0xFF:
            if strict:
                raise MalformedError(f"JPEG has stray bytes at offset {pos}")
            # Decoders skip junk between segments, so dropping it changes no pixel.
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                raise MalformedError("JPEG ends before EOI (truncated)")
            pos = nxt
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            if strict:
                raise MalformedError(f"JPEG has fill bytes at offset {pos}")
            pos += 1
            continue
        if marker == EOI:
            segments.append(Segment(EOI, pos, pos + 2, pos + 2))
            break
        if marker in (0x00, 0x01, SOI) or 0xD0 <= marker <= 0xD7:
            raise MalformedError(f"JPEG has marker {marker:#04x} outside a scan")
        if pos + 4 > size:
            raise MalformedError("JPEG ends inside a segment header (truncated)")
        length = struct.unpack_from(">H", data, pos + 2)[0]
        header_end = pos + 2 + length
        if length < 2 or header_end > size:
            raise MalformedError(f"JPEG segment {marker:#04x} runs past the end (truncated)")
        end = _scan_end(data, header_end) if marker == SOS else header_end
        segments.append(Segment(marker, pos, header_end, end))
        pos = end
    markers = {s.marker for s in segments}
    if not markers & _SOF or SOS not in markers:
        raise MalformedError("JPEG has no frame or no scan")
    return segments, pos + 2


def _scan_end(data: bytes, pos: int) -> int:
    """Where the entropy-coded data starting at pos ends: at the next real marker."""
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0 or ff + 1 >= len(data):
            raise MalformedError("JPEG scan data ends without a marker (truncated)")
        following = data[ff + 1]
        # 0xFF00 is a stuffed byte, RSTn sit inside a scan, and 0xFFFF is fill before a marker.
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos = ff + 1 if following == 0xFF else ff + 2
            continue
        return ff


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _clean_jfif(payload: bytes) -> bytes | None:
    if not payload.startswith(_JFIF_ID) or len(payload) < _JFIF_FIXED + 2:
        return None
    return payload[:_JFIF_FIXED] + b"\x00\x00"


def _clean_adobe(payload: bytes) -> bytes | None:
    # Only the version and the colour transform are read by decoders; the flags carry nothing needed.
    if not payload.startswith(_ADOBE_ID) or len(payload) < _ADOBE_LENGTH:
        return None
    return _ADOBE_ID + payload[5:7] + b"\x00\x00\x00\x00" + payload[11:12]


class JpegHandler:
    """JPEG in, JPEG out, with no pixel re-encoded."""

    name = "jpeg"
    pillow_format = "JPEG"
    output = "jpeg"
    allowed = frozenset(
        {
            "SOI",
            "APP0 JFIF (no thumbnail)",
            "APP1 Exif (Orientation only)",
            "APP2 ICC_PROFILE (rebuilt standard)",
        }
        | {"APP14 Adobe (transform only)", "DQT", "SOF", "DHT", "DAC", "DRI", "DNL", "SOS", "EOI"}
    )

    def matches(self, head: bytes) -> bool:
        """JPEG starts with SOI followed by a marker."""
        return head.startswith(b"\xff\xd8\xff")

    def check_complete(self, data: bytes) -> None:
        """Walk every segment and scan to EOI; raises MalformedError."""
        walk(data, strict=False)

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """Rebuild the file from allow-listed segments; raises UnreadableImageError."""
        try:
            segments, _ = walk(data, strict=False)
        except MalformedError as exc:
            raise UnreadableImageError(f"JPEG structure: {exc}") from exc
        jfif: bytes | None = None
        adobe: bytes | None = None
        body: list[bytes] = []
        seen_scan = False
        for seg in segments[1:]:
            payload = seg.payload(data)
            if seg.marker == APP0 and jfif is None:
                jfif = _clean_jfif(payload)
            elif seg.marker == APP14 and not seen_scan:
                # libjpeg honours the last Adobe segment read before the first scan.
                adobe = _clean_adobe(payload) or adobe
            elif seg.marker in _STRUCTURAL or seg.marker in (SOS, EOI):
                seen_scan = seen_scan or seg.marker == SOS
                body.append(data[seg.start : seg.end])
            elif not (0xE0 <= seg.marker <= 0xEF or seg.marker == COM):
                # A marker libjpeg would refuse; never guess what it is.
                raise UnreadableImageError(f"JPEG marker {seg.marker:#04x} is not supported")
        out = [b"\xff\xd8"]
        if jfif is not None:
            out.append(_segment(APP0, jfif))
        if source.image.orientation != 1:
            # Kept so viewers still show the photo upright without any pixel being re-encoded.
            out.append(_segment(APP1, minimal_exif(source.image.orientation)))
        # Never the source's profile chunks: only our rebuilt copy of a recognised standard one.
        profile = rebuilt(source.icc_profile)
        if profile is not None:
            out.append(_segment(APP2, _ICC_ID + b"\x01\x01" + profile))
        if adobe is not None:
            out.append(_segment(APP14, adobe))
        out.extend(body)
        return CleanCopy.of(b"".join(out), "jpeg", lossless=True)

    def verify(self, data: bytes) -> None:
        """Accept only allow-listed segments and nothing after EOI; raises MetadataLeakError."""
        try:
            segments, end = walk(data, strict=True)
        except MalformedError as exc:
            raise MetadataLeakError(
                f"clean JPEG cannot be parsed: {exc}", found=("JPEG: unparseable",)
            ) from exc
        found = [f"JPEG: {finding}" for finding in _segment_findings(data, segments)]
        if end != len(data):
            found.append(f"JPEG: {len(data) - end} bytes after EOI")
        if found:
            raise MetadataLeakError("clean JPEG holds: " + "; ".join(found), found=tuple(found))


def _segment_findings(data: bytes, segments: list[Segment]) -> list[str]:
    found: list[str] = []
    icc: list[bytes] = []
    # A second JFIF, Exif or Adobe segment is a place to hide data even if well formed.
    singles = {APP0: _JFIF_ID, APP1: EXIF_HEADER, APP14: _ADOBE_ID}
    seen: set[int] = set()
    for seg in segments:
        marker, payload = seg.marker, seg.payload(data)
        if marker in _STRUCTURAL or marker in (SOI, SOS, EOI):
            continue
        if marker in singles and payload.startswith(singles[marker]):
            if marker in seen:
                found.append(f"APP{marker - APP0} {_label(payload)} repeated")
                continue
            seen.add(marker)
        if marker == APP0:
            if _clean_jfif(payload) != payload:
                found.append(f"APP0 {_label(payload)}")
        elif marker == APP1:
            if payload.startswith(EXIF_HEADER):
                found.extend(exif_findings(payload))
            else:
                found.append(f"APP1 {_label(payload)}")
        elif marker == APP2:
            if payload.startswith(_ICC_ID):
                icc.append(payload)
            else:
                found.append(f"APP2 {_label(payload)}")
        elif marker == APP14:
            if _clean_adobe(payload) != payload:
                found.append(f"APP14 {_label(payload)}")
        elif marker == COM:
            found.append("COM (comment)")
        elif 0xE0 <= marker <= 0xEF:
            found.append(f"APP{marker - APP0} {_label(payload)}")
        else:
            found.append(f"marker {marker:#04x}")
    # We write one chunk holding a rebuilt profile; anything else is not ours.
    if icc and (len(icc) != 1 or icc[0][12:14] != b"\x01\x01" or not is_rebuilt(icc[0][14:])):
        found.append("APP2 ICC_PROFILE that is not a rebuilt standard profile")
    return found


def _label(payload: bytes) -> str:
    """The identifier a segment starts with, for messages (e.g. 'http://ns.adobe.com/xap/1.0/')."""
    ident = payload.split(b"\x00", 1)[0][:40]
    return repr(ident.decode("latin-1")) if ident else "(no identifier)"


HANDLER = JpegHandler()
