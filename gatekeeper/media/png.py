"""PNG: a lossless chunk strip keeping image data and colour chunks, dropping every text chunk."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from PIL import PngImagePlugin

from gatekeeper.errors import MetadataLeakError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.conversion import encode_png
from gatekeeper.media.icc import is_rebuilt, rebuilt

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_KEEP = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT"})
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
_INFLATE_STEP = 1 << 20
# The profile name of every iCCP we write: the name field is free text in the source.
ICCP_NAME = b"ICC Profile"  # what Pillow writes too, so both paths agree
_MAX_ICC = 1 << 16
# (bit depth, colour type) pairs Pillow decodes; anything else is left to the decoder to refuse.
_PILLOW_MODES = frozenset(PngImagePlugin._MODES)
# Chunks Pillow has a handler for: those the probe mirrors below, and the rest (zTXt, eXIf, APNG)
# which always go through the decoder. Chunks without a handler are skipped by Pillow too.
_PILLOW_HANDLED = frozenset(n[6:].encode() for n in dir(PngImagePlugin.PngStream) if n.startswith("chunk_"))
_MIRRORED = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"tRNS",
        b"IDAT",
        b"IEND",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"pHYs",
        b"tEXt",
        b"iTXt",
        b"iCCP",
    }
)
_MINIMUM_LENGTH = {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}
_CHUNK_TYPE = re.compile(rb"[A-Za-z]{4}\Z")
_FILTER_TYPES = b"\x00\x01\x02\x03\x04"


@dataclass(frozen=True)
class Chunk:
    """One chunk; start..end covers length, type, data and CRC."""

    type: bytes
    start: int
    end: int

    def body(self, data: bytes) -> bytes:
        """The chunk's data field."""
        return data[self.start + 8 : self.end - 4]


def walk(data: bytes) -> tuple[list[Chunk], int]:
    """The chunks up to IEND (CRCs checked), and the offset after IEND; raises MalformedError."""
    if not data.startswith(SIGNATURE):
        raise MalformedError("not a PNG signature")
    chunks: list[Chunk] = []
    pos = len(SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise MalformedError("PNG ends before IEND (truncated)")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            raise MalformedError(f"PNG chunk {ctype!r} runs past the end (truncated)")
        if zlib.crc32(data[pos + 4 : end - 4]) != struct.unpack_from(">I", data, end - 4)[0]:
            raise MalformedError(f"PNG chunk {ctype!r} fails its CRC (corrupt)")
        chunks.append(Chunk(ctype, pos, end))
        pos = end
        if ctype == b"IEND":
            break
    if chunks[0].type != b"IHDR" or len(chunks[0].body(data)) != 13:
        raise MalformedError("PNG does not start with IHDR")
    return chunks, pos


def _expected_raw_size(ihdr: bytes) -> int:
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    if colour not in _CHANNELS or depth not in (1, 2, 4, 8, 16) or interlace not in (0, 1):
        raise MalformedError("PNG header is invalid")
    bits = _CHANNELS[colour] * depth

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits + 7) // 8)

    if interlace == 0:
        return rows(width, height)
    return sum(
        rows(max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy))
        for x0, y0, dx, dy in _ADAM7
    )


def _passes(ihdr: bytes) -> list[tuple[int, int, int]]:
    """(start, end, row stride) of each pass's rows in the inflated stream; a filter byte starts each row."""
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    bits = _CHANNELS[colour] * depth
    sizes = (
        [(width, height)]
        if interlace == 0
        else [
            (max(0, (width - x0 + dx - 1) // dx), max(0, (height - y0 + dy - 1) // dy))
            for x0, y0, dx, dy in _ADAM7
        ]
    )
    out, start = [], 0
    for w, h in sizes:
        if w and h:
            stride = 1 + (w * bits + 7) // 8
            out.append((start, start + h * stride, stride))
            start += h * stride
    return out


def check_image_data(data: bytes, chunks: list[Chunk], *, filters: bool = False) -> None:
    """The IDAT stream must inflate completely to exactly the image's size; raises MalformedError.

    With `filters`, every row's filter type must also be one the decoder knows (0..4): the check
    the decoder would otherwise make, for callers that do not decode.
    """
    # Pillow stops quietly at the end of the data when LOAD_TRUNCATED_IMAGES is set, and bytes
    # beyond the image inside the stream would be copied verbatim into the clean copy.
    expected = _expected_raw_size(chunks[0].body(data))
    passes = _passes(chunks[0].body(data)) if filters else []
    inflater = zlib.decompressobj()
    total = 0
    try:
        for chunk in (c for c in chunks if c.type == b"IDAT"):
            pending = chunk.body(data)
            while pending:
                piece = inflater.decompress(pending, _INFLATE_STEP)
                if passes and _bad_filter(piece, total, passes):
                    raise MalformedError("PNG image data has an unknown row filter (corrupt)")
                total += len(piece)
                pending = inflater.unconsumed_tail
                if total > expected:
                    raise MalformedError("PNG image data is longer than the image")
    except zlib.error as exc:
        raise MalformedError(f"PNG image data is corrupt: {exc}") from exc
    if not inflater.eof or inflater.unused_data or total != expected:
        raise MalformedError("PNG image data is incomplete (truncated)")


def _bad_filter(piece: bytes, offset: int, passes: list[tuple[int, int, int]]) -> bool:
    """Whether a row of the inflated bytes piece (at offset in the stream) has a filter type > 4."""
    stop = offset + len(piece)
    for start, end, stride in passes:
        if end <= offset or start >= stop:
            continue
        first = start if offset <= start else start + -(-(offset - start) // stride) * stride
        # translate() deletes the known filter types in C; anything left is not one.
        if piece[first - offset : min(end, stop) - offset : stride].translate(None, _FILTER_TYPES):
            return True
    return False


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _iccp_findings(body: bytes) -> str:
    """Empty when an iCCP chunk holds our neutral name and a rebuilt profile, else what is wrong."""
    name, sep, rest = body.partition(b"\x00")
    if name != ICCP_NAME or not sep or rest[:1] != b"\x00":
        return "PNG: iCCP with a profile name other than the neutral one"
    inflater = zlib.decompressobj()
    try:
        # Bounded: a rebuilt profile is a few kilobytes, so a larger stream is not ours anyway.
        profile = inflater.decompress(rest[1:], _MAX_ICC)
    except zlib.error:
        return "PNG: iCCP that does not inflate"
    if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data or not is_rebuilt(profile):
        return "PNG: iCCP that is not a rebuilt standard profile"
    return ""


def _build(data: bytes, chunks: list[Chunk], icc_profile: bytes | None) -> CleanCopy:
    profile = rebuilt(icc_profile)
    kept = []
    for chunk in chunks:
        if chunk.type == b"iCCP":
            # The profile name is free text and the profile itself may carry any: rebuild both.
            if profile is not None:
                kept.append(_chunk(b"iCCP", ICCP_NAME + b"\x00\x00" + zlib.compress(profile, 9)))
        elif chunk.type in _KEEP:
            kept.append(data[chunk.start : chunk.end])
    return CleanCopy.of(SIGNATURE + b"".join(kept), "png", lossless=True)


def _probe(data: bytes, chunks: list[Chunk]) -> tuple[int, int, bytes | None] | None:
    """(width, height, ICC profile as Pillow reads it) when Pillow reads every chunk without error
    and no orientation can come from the file; None otherwise (the caller then decodes)."""
    ihdr = chunks[0].body(data)
    width, height, depth, colour, _, filter_method, interlace = struct.unpack(">IIBBBBB", ihdr)
    if (depth, colour) not in _PILLOW_MODES or filter_method or interlace > 1 or not width or not height:
        return None
    mode = PngImagePlugin._MODES[(depth, colour)][0]
    types = [c.type for c in chunks]
    first_idat = types.index(b"IDAT") if b"IDAT" in types else -1
    last_idat = len(types) - 1 - types[::-1].index(b"IDAT") if first_idat >= 0 else -1
    # Pillow reads one run of IDAT chunks; a chunk between two IDATs ends its image data early.
    if first_idat < 0 or any(t != b"IDAT" for t in types[first_idat : last_idat + 1]):
        return None
    if colour == 3 and b"PLTE" not in types[:first_idat]:
        return None
    profile: bytes | None = None
    text = 0
    for index, chunk in enumerate(chunks[1:], start=1):
        ctype = chunk.type
        if not _CHUNK_TYPE.match(ctype) or (ctype in _PILLOW_HANDLED and ctype not in _MIRRORED):
            return None  # zTXt, eXIf (an orientation), APNG chunks: the decoder decides
        body = chunk.body(data)
        if len(body) < _MINIMUM_LENGTH.get(ctype, 0):
            return None
        if ctype == b"tRNS" and mode in ("1", "L", "I;16", "RGB") and len(body) < (6 if mode == "RGB" else 2):
            return None
        if ctype == b"tEXt":
            if body.split(b"\x00", 1)[0] == b"exif":
                return None  # Pillow takes a tEXt keyed "exif" as the EXIF (an orientation)
            text += len(body)
        elif ctype == b"iTXt":
            parts = body.split(b"\x00", 1)
            if len(parts) == 2 and len(parts[1]) >= 2 and parts[1][0] != 0:
                return None  # compressed international text: Pillow inflates it, with limits
            text += len(body)
        elif ctype == b"iCCP":
            if index > first_idat or profile is not None:
                return None
            profile = _pillow_icc(body)
            if profile is None:
                return None
    if text > PngImagePlugin.MAX_TEXT_MEMORY:
        return None
    return width, height, profile or None


def _pillow_icc(body: bytes) -> bytes | None:
    """The profile exactly as Pillow reads an iCCP chunk; None when Pillow would raise or drop it."""
    name_end = body.find(b"\x00")
    if name_end < 0 or len(body) < name_end + 2 or body[name_end + 1] != 0:
        return None
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(body[name_end + 2 :], PngImagePlugin.MAX_TEXT_CHUNK)
    except zlib.error:
        return None
    if inflater.unconsumed_tail or not profile:
        return None
    return profile


class PngHandler:
    """PNG in, PNG out; pixels untouched unless an orientation must be baked in."""

    name = "png"
    pillow_format = "PNG"
    output = "png"
    allowed = frozenset(t.decode() for t in _KEEP)

    def matches(self, head: bytes) -> bool:
        """PNG starts with its 8-byte signature."""
        return head.startswith(SIGNATURE)

    def check_complete(self, data: bytes) -> None:
        """Walk every chunk to IEND and inflate the image data; raises MalformedError."""
        chunks, _ = walk(data)
        check_image_data(data, chunks)

    def probe(self, data: bytes) -> Probe | None:
        """CRCs, chunk contents Pillow reads and the complete IDAT stream proved; or None."""
        try:
            chunks, _ = walk(data)
            facts = _probe(data, chunks)
            if facts is None:
                return None
            check_image_data(data, chunks, filters=True)
        except (MalformedError, struct.error, IndexError):
            return None
        width, height, profile = facts
        return Probe(width=width, height=height, orientation=1, icc_profile=profile, layout=chunks)

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """Keep the probed file's allow-listed chunks byte for byte."""
        assert isinstance(probe.layout, list)
        return _build(data, probe.layout, probe.icc_profile)

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """Keep allow-listed chunks byte for byte; raises MalformedError on a broken file."""
        if source.image.orientation != 1:
            # The orientation lives in eXIf, which is not allowed to stay: bake it into the pixels.
            return CleanCopy.of(
                encode_png(source.image.pixels, rebuilt(source.icc_profile)), "png", lossless=False
            )
        chunks, _ = walk(data)
        return _build(data, chunks, source.icc_profile)

    def verify(self, data: bytes) -> None:
        """Accept only allow-listed chunks and nothing after IEND; raises MetadataLeakError."""
        try:
            chunks, end = walk(data)
        except MalformedError as exc:
            raise MetadataLeakError(
                f"clean PNG cannot be parsed: {exc}", found=("PNG: unparseable",)
            ) from exc
        found = [f"PNG: {c.type.decode('latin-1')!r} chunk" for c in chunks if c.type not in _KEEP]
        found.extend(f for f in (_iccp_findings(c.body(data)) for c in chunks if c.type == b"iCCP") if f)
        if end != len(data):
            found.append(f"PNG: {len(data) - end} bytes after IEND")
        if found:
            raise MetadataLeakError("clean PNG holds: " + "; ".join(found), found=tuple(found))


HANDLER = PngHandler()
