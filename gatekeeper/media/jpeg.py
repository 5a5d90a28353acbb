"""JPEG: a lossless segment strip that keeps what decoding needs and nothing that describes anyone."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from gatekeeper.errors import MetadataLeakError, UnreadableImageError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.exif import (
    EXIF_HEADER,
    exif_findings,
    minimal_exif,
    read_orientation,
    strip_exif_header,
)
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
# The first 0xFF in entropy-coded data that starts a real marker: not a stuffed 0xFF00, not an
# RSTn, not 0xFFFF fill (the marker then starts at the last 0xFF of the run).
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_DQT, _DHT, _DRI = 0xDB, 0xC4, 0xDD
# Frame types the no-decode path proves itself: baseline, extended and progressive Huffman.
_PROBED_SOF = frozenset({0xC0, 0xC1, 0xC2})
_MPF_ID = b"MPF\x00"


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
    # One regex search in C instead of a Python step per stuffed byte (about 1 in 256 bytes).
    found = _MARKER_IN_SCAN.search(data, pos)
    if found is None:
        raise MalformedError("JPEG scan data ends without a marker (truncated)")
    return found.start()


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

    def probe(self, data: bytes) -> Probe | None:
        """Segments walked to EOI and a complete scan structure proved, without decoding; or None."""
        try:
            segments, _ = walk(data, strict=True)
            return _probe(data, segments)
        except (MalformedError, struct.error, IndexError):
            return None

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """Rebuild the file from the probed segments; raises UnreadableImageError."""
        assert isinstance(probe.layout, list)
        return _build(data, probe.layout, probe.orientation, probe.icc_profile)

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """Rebuild the file from allow-listed segments; raises UnreadableImageError."""
        try:
            segments, _ = walk(data, strict=False)
        except MalformedError as exc:
            raise UnreadableImageError(f"JPEG structure: {exc}") from exc
        return _build(data, segments, source.image.orientation, source.icc_profile)

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


def _build(data: bytes, segments: list[Segment], orientation: int, icc_profile: bytes | None) -> CleanCopy:
    jfif: bytes | None = None
    adobe: bytes | None = None
    body: list[bytes] = []
    seen_scan = False
    for seg in segments[1:]:
        if seg.marker == APP0 and jfif is None:
            jfif = _clean_jfif(seg.payload(data))
        elif seg.marker == APP14 and not seen_scan:
            # libjpeg honours the last Adobe segment read before the first scan.
            adobe = _clean_adobe(seg.payload(data)) or adobe
        elif seg.marker in _STRUCTURAL or seg.marker in (SOS, EOI):
            seen_scan = seen_scan or seg.marker == SOS
            body.append(data[seg.start : seg.end])
        elif not (0xE0 <= seg.marker <= 0xEF or seg.marker == COM):
            # A marker libjpeg would refuse; never guess what it is.
            raise UnreadableImageError(f"JPEG marker {seg.marker:#04x} is not supported")
    out = [b"\xff\xd8"]
    if jfif is not None:
        out.append(_segment(APP0, jfif))
    if orientation != 1:
        # Kept so viewers still show the photo upright without any pixel being re-encoded.
        out.append(_segment(APP1, minimal_exif(orientation)))
    # Never the source's profile chunks: only our rebuilt copy of a recognised standard one.
    profile = rebuilt(icc_profile)
    if profile is not None:
        out.append(_segment(APP2, _ICC_ID + b"\x01\x01" + profile))
    if adobe is not None:
        out.append(_segment(APP14, adobe))
    out.extend(body)
    return CleanCopy.of(b"".join(out), "jpeg", lossless=True)


def _probe(data: bytes, segments: list[Segment]) -> Probe | None:
    """The facts of a JPEG whose structure libjpeg will accept; None for anything else.

    Mirrors what Pillow reports (EXIF from the APP1 Exif segments before the first scan, the ICC
    profile from the APP2 chunks before the frame header) and what libjpeg refuses as fatal
    (undefined or malformed tables, bad frame or scan headers, a bad progression), and requires
    every coefficient of every component to be covered by a first scan.
    """
    quant: set[int] = set()
    huff: set[tuple[int, int]] = set()
    frame: dict[int, tuple[int, int]] = {}  # component id -> (sampling h*v, quant table)
    sof = 0
    size = (0, 0)
    exif: list[bytes] = []
    icc: list[bytes] = []
    covered: dict[int, set[int]] = {}
    for seg in segments[1:-1]:
        marker, payload = seg.marker, seg.payload(data)
        if marker == SOS:
            if not sof or seg.end <= seg.header_end:
                return None
            if not _scan(payload, sof, frame, quant, huff, covered):
                return None
        elif marker in _PROBED_SOF:
            if sof or covered:
                return None
            sof = marker
            size, components = _frame(payload)
            if size[0] * size[1] == 0 or not components:
                return None
            frame = components
        elif marker == _DQT:
            if not _tables(payload, quant, dqt=True):
                return None
        elif marker == _DHT:
            if not _tables(payload, huff, dqt=False):
                return None
        elif marker == _DRI:
            if len(payload) != 2:
                return None
        elif 0xE0 <= marker <= 0xEF or marker == COM:
            if covered:
                continue  # after the first scan: Pillow never reads it, the copy drops it
            if not _pillow_reads_app(marker, payload):
                return None
            if marker == APP1 and payload.startswith(EXIF_HEADER):
                exif.append(payload)
            elif marker == APP2 and payload.startswith(_ICC_ID) and not sof:
                icc.append(payload)
            elif marker == APP2 and payload.startswith(_MPF_ID):
                return None  # Pillow opens it as MPO, with checks of its own
        else:
            return None
    if not sof or any(covered.get(c) != _ALL_COEFFICIENTS for c in frame):
        return None
    orientation = 1
    if exif:
        # Pillow concatenates further Exif segments after the first one's TIFF body.
        joined = exif[0] + b"".join(p[len(EXIF_HEADER) :] for p in exif[1:])
        if not _pillow_reads_exif(joined):
            return None
        orientation = read_orientation(strip_exif_header(joined))
    profile: bytes | None = None
    if icc:
        icc.sort()  # as Pillow does: by sequence number, then bytes
        if icc[0][13] == len(icc):
            profile = b"".join(p[14:] for p in icc) or None
    return Probe(width=size[1], height=size[0], orientation=orientation, icc_profile=profile, layout=segments)


_ALL_COEFFICIENTS = set(range(64))


def _pillow_reads_app(marker: int, payload: bytes) -> bool:
    """Whether Pillow's JPEG header parser gets through this APPn without raising."""
    if marker == APP0 and payload.startswith(b"JFIF"):
        return len(payload) >= 7  # it reads the version unguarded
    if marker == APP14 and payload.startswith(_ADOBE_ID):
        return len(payload) >= 7
    if marker == 0xED and payload.startswith(b"Photoshop 3.0\x00"):
        # Its 8BIM loop catches struct.error but not IndexError (a resource name length byte).
        offset = 14
        try:
            while payload[offset : offset + 4] == b"8BIM":
                offset += 6
                offset += 1 + payload[offset]
                offset += offset & 1
                (size,) = struct.unpack_from(">I", payload, offset)
                offset += 4 + size
                offset += offset & 1
        except struct.error:
            return True
        except IndexError:
            return False
    return True


def _pillow_reads_exif(exif: bytes) -> bool:
    """Whether Pillow's dpi-from-EXIF step, run on every JPEG with EXIF, gets through it."""
    from PIL import Image  # already imported by whoever opens images; kept out of this module's import

    try:
        tags = Image.Exif()
        tags.load(exif)
        unit, resolution = tags[0x0128], tags[0x011A]
        try:
            dpi = float(resolution[0]) / resolution[1]
        except TypeError:
            dpi = resolution
        if unit == 3:
            dpi *= 2.54
    except (struct.error, KeyError, SyntaxError, TypeError, ValueError, ZeroDivisionError):
        return True  # Pillow catches exactly these and falls back to 72 dpi
    except Exception:
        return False
    return True


def _frame(payload: bytes) -> tuple[tuple[int, int], dict[int, tuple[int, int]]]:
    """(height, width) and the components of an 8-bit, 1- or 3-component frame; empty otherwise."""
    if len(payload) < 6:
        return (0, 0), {}
    precision, height, width, count = struct.unpack_from(">BHHB", payload)
    if precision != 8 or count not in (1, 3) or len(payload) != 6 + 3 * count:
        return (0, 0), {}
    components: dict[int, tuple[int, int]] = {}
    for i in range(count):
        ident, sampling, table = payload[6 + 3 * i : 9 + 3 * i]
        h, v = sampling >> 4, sampling & 0x0F
        if ident in components or not (1 <= h <= 4 and 1 <= v <= 4) or table > 3:
            return (0, 0), {}
        components[ident] = (h * v, table)
    return (height, width), components


def _tables(payload: bytes, defined: set[int] | set[tuple[int, int]], *, dqt: bool) -> bool:
    """Record the tables of a DQT or DHT segment; False when libjpeg would refuse it."""
    pos = 0
    while pos < len(payload):
        kind, index = payload[pos] >> 4, payload[pos] & 0x0F
        if kind > 1 or index > 3:
            return False
        if dqt:
            pos += 1 + 64 * (kind + 1)
            defined.add(index)  # type: ignore[arg-type]
            continue
        if pos + 17 > len(payload):
            return False
        counts = payload[pos + 1 : pos + 17]
        total = sum(counts)
        if total > 256 or pos + 17 + total > len(payload):
            return False
        # libjpeg's canonical-code check: the all-ones code of each length stays unused.
        code = 0
        for length, count in enumerate(counts, start=1):
            code += count
            if code >= 1 << length:
                return False
            code <<= 1
        if kind == 0 and max(payload[pos + 17 : pos + 17 + total], default=0) > 15:
            return False
        defined.add((kind, index))  # type: ignore[arg-type]
        pos += 17 + total
    return pos == len(payload)


def _scan(
    payload: bytes,
    sof: int,
    frame: dict[int, tuple[int, int]],
    quant: set[int],
    huff: set[tuple[int, int]],
    covered: dict[int, set[int]],
) -> bool:
    """Check one scan header against the frame and the tables defined so far; record coverage."""
    if not payload or len(payload) != 4 + 2 * payload[0]:
        return False
    count = payload[0]
    ss, se, approx = payload[-3], payload[-2], payload[-1]
    ah, al = approx >> 4, approx & 0x0F
    idents = [payload[1 + 2 * i] for i in range(count)]
    if not 1 <= count <= 4 or len(set(idents)) != count or any(i not in frame for i in idents):
        return False
    if count > 1 and sum(frame[i][0] for i in idents) > 10:
        return False  # libjpeg: too many blocks in an interleaved MCU
    progressive = sof == 0xC2
    if progressive:
        if (ss == 0) != (se == 0) or se > 63 or ss > se or (ss > 0 and count != 1):
            return False
        if al > 13 or (ah != 0 and ah != al + 1):
            return False
    elif (ss, se, approx) != (0, 63, 0):
        return False
    for i in range(count):
        ident, tables = payload[1 + 2 * i], payload[2 + 2 * i]
        if frame[ident][1] not in quant:
            return False
        needs_dc = ss == 0 and ah == 0
        needs_ac = se > 0
        if (needs_dc and (0, tables >> 4) not in huff) or (needs_ac and (1, tables & 0x0F) not in huff):
            return False
        if ah == 0:
            done = covered.setdefault(ident, set())
            if not progressive and done:
                return False  # a component in two sequential scans
            done.update(range(ss, se + 1))
    return True


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
