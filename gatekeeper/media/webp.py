"""WebP: a lossless chunk strip that drops EXIF, XMP and unknown chunks and fixes the headers."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gatekeeper.errors import MetadataLeakError
from gatekeeper.media.base import CleanCopy, DecodedSource, MalformedError, Probe
from gatekeeper.media.conversion import encode_webp_lossless
from gatekeeper.media.exif import read_orientation, strip_exif_header
from gatekeeper.media.icc import is_rebuilt, rebuilt

# A clean copy is a still image: an animation is published as its first frame only.
_TOP_LEVEL = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP"})
_ICC_FLAG, _ALPHA_FLAG, _EXIF_FLAG, _XMP_FLAG, _ANIMATION_FLAG = 0x20, 0x10, 0x08, 0x04, 0x02
_KEPT_FLAGS = _ICC_FLAG | _ALPHA_FLAG
_VP8X_SIZE = 10
_ANMF_HEADER = 16


@dataclass(frozen=True)
class Chunk:
    """One RIFF chunk: its FourCC and payload (the pad byte is not part of it)."""

    fourcc: bytes
    payload: bytes
    pad: bytes


def _chunks(data: bytes, start: int, end: int, *, strict: bool) -> list[Chunk]:
    chunks = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise MalformedError("WebP chunk header runs past its container (truncated)")
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        body_end = pos + 8 + size
        padded_end = body_end + (size & 1)
        if padded_end > end:
            raise MalformedError(f"WebP chunk {fourcc!r} runs past its container (truncated)")
        pad = data[body_end:padded_end]
        if strict and pad not in (b"", b"\x00"):
            raise MalformedError(f"WebP chunk {fourcc!r} has a non-zero pad byte")
        chunks.append(Chunk(fourcc, data[pos + 8 : body_end], pad))
        pos = padded_end
    return chunks


def walk(data: bytes, *, strict: bool) -> tuple[list[Chunk], int]:
    """The top-level chunks and the end of the RIFF container; raises MalformedError."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise MalformedError("not a RIFF WEBP header")
    end = 8 + struct.unpack_from("<I", data, 4)[0]
    if end > len(data):
        raise MalformedError("WebP is shorter than its RIFF size (truncated)")
    chunks = _chunks(data, 12, end, strict=strict)
    if not any(c.fourcc in (b"VP8 ", b"VP8L", b"ANMF") for c in chunks):
        raise MalformedError("WebP holds no image data")
    return chunks, end


def _frame_chunks(payload: bytes, *, strict: bool) -> tuple[bytes, list[Chunk]]:
    if len(payload) < _ANMF_HEADER:
        raise MalformedError("WebP ANMF frame is too short")
    return payload[:_ANMF_HEADER], _chunks(payload, _ANMF_HEADER, len(payload), strict=strict)


def _pack(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _build(chunks: list[Chunk], icc_profile: bytes | None) -> CleanCopy:
    profile = rebuilt(icc_profile)
    out = []
    for chunk in chunks:
        if chunk.fourcc == b"VP8X":
            if len(chunk.payload) < _VP8X_SIZE:
                raise MalformedError("WebP VP8X is too short")
            flags = chunk.payload[0] & _KEPT_FLAGS & ~(0 if profile else _ICC_FLAG)
            out.append(_pack(b"VP8X", bytes([flags, 0, 0, 0]) + chunk.payload[4:_VP8X_SIZE]))
        elif chunk.fourcc == b"ICCP":
            # Never the source's profile bytes: only our rebuilt copy of the standard one.
            if profile is not None:
                out.append(_pack(b"ICCP", profile))
        elif chunk.fourcc in _TOP_LEVEL:
            out.append(_pack(chunk.fourcc, chunk.payload))
    body = b"WEBP" + b"".join(out)
    return CleanCopy.of(b"RIFF" + struct.pack("<I", len(body)) + body, "webp", lossless=True)


def _bitstream_size(chunk: Chunk) -> tuple[int, int] | None:
    """(width, height) from a VP8 key frame or VP8L header that fits its chunk; None otherwise."""
    payload = chunk.payload
    if chunk.fourcc == b"VP8 ":
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            return None
        tag = payload[0] | payload[1] << 8 | payload[2] << 16
        key_frame, version, shown, first_partition = not tag & 1, (tag >> 1) & 7, (tag >> 4) & 1, tag >> 5
        if not key_frame or version > 3 or not shown or 10 + first_partition > len(payload):
            return None
        width, height = struct.unpack_from("<HH", payload, 6)
        width, height = width & 0x3FFF, height & 0x3FFF
    else:
        if len(payload) < 5 or payload[0] != 0x2F:
            return None
        bits = struct.unpack_from("<I", payload, 1)[0]
        if bits >> 29:  # version must be 0
            return None
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return (width, height) if width and height else None


def _probe(chunks: list[Chunk]) -> tuple[int, int, int, bytes | None] | None:
    """(width, height, orientation, ICC profile) of a still WebP laid out as libwebp expects."""
    kinds = [c.fourcc for c in chunks]
    if kinds in ([b"VP8 "], [b"VP8L"]):
        size = _bitstream_size(chunks[0])
        return None if size is None else (*size, 1, None)
    if kinds[0] != b"VP8X" or len(chunks[0].payload) != _VP8X_SIZE:
        return None
    vp8x = chunks[0].payload
    flags = vp8x[0]
    canvas = (int.from_bytes(vp8x[4:7], "little") + 1, int.from_bytes(vp8x[7:10], "little") + 1)
    images = [i for i, k in enumerate(kinds) if k in (b"VP8 ", b"VP8L")]
    if (
        flags & _ANIMATION_FLAG
        or len(images) != 1
        or any(k in (b"ANIM", b"ANMF", b"VP8X") for k in kinds[1:])
    ):
        return None
    image = images[0]
    # Order libwebp's demuxer requires: VP8X, ICCP, ALPH (lossy only), then the bitstream.
    head = kinds[1:image]
    if head not in ([], [b"ICCP"], [b"ALPH"], [b"ICCP", b"ALPH"]):
        return None
    if b"ALPH" in head and kinds[image] != b"VP8 ":
        return None
    if bool(flags & _ICC_FLAG) != (b"ICCP" in head) or kinds.count(b"ICCP") != int(b"ICCP" in head):
        return None
    if kinds.count(b"ALPH") != int(b"ALPH" in head) or _bitstream_size(chunks[image]) != canvas:
        return None
    exif = [c.payload for c in chunks if c.fourcc == b"EXIF"]
    orientation = read_orientation(strip_exif_header(exif[0])) if exif else 1
    profile = chunks[kinds.index(b"ICCP")].payload if b"ICCP" in head else None
    return (*canvas, orientation, profile or None)


class WebpHandler:
    """WebP in, WebP out; the VP8/VP8L bitstreams are copied byte for byte."""

    name = "webp"
    pillow_format = "WEBP"
    output = "webp"
    allowed = frozenset(c.decode().strip() for c in _TOP_LEVEL)

    def matches(self, head: bytes) -> bool:
        """WebP is a RIFF container of form type WEBP."""
        return len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"

    def check_complete(self, data: bytes) -> None:
        """Walk every chunk, frames included, within the RIFF size; raises MalformedError."""
        chunks, _ = walk(data, strict=False)
        for chunk in chunks:
            if chunk.fourcc == b"ANMF":
                _frame_chunks(chunk.payload, strict=False)

    def probe(self, data: bytes) -> Probe | None:
        """RIFF and chunk sizes exact, a still image with consistent headers, upright; or None."""
        try:
            chunks, end = walk(data, strict=False)
            if end != len(data):
                return None  # bytes after the container: the decoder decides
            facts = _probe(chunks)
        except (MalformedError, struct.error, IndexError):
            return None
        if facts is None:
            return None
        width, height, orientation, profile = facts
        if orientation != 1:
            return None  # to be baked into the pixels
        return Probe(width=width, height=height, orientation=1, icc_profile=profile, layout=chunks)

    def strip(self, data: bytes, probe: Probe) -> CleanCopy:
        """Keep the probed file's allow-listed chunks; raises MalformedError."""
        assert isinstance(probe.layout, list)
        return _build(probe.layout, probe.icc_profile)

    def sanitise(self, data: bytes, source: DecodedSource, *, jpeg_quality: int) -> CleanCopy:
        """Keep allow-listed chunks, clear the EXIF/XMP flags, fix the RIFF size; raises MalformedError."""
        profile = rebuilt(source.icc_profile)
        chunks, _ = walk(data, strict=False)
        animated = any(c.fourcc in (b"ANIM", b"ANMF") for c in chunks)
        if source.image.orientation != 1 or animated:
            # The orientation lives in the EXIF chunk, which may not stay: bake it into the pixels.
            # An animation is published as its (composited) first frame only.
            pixels = encode_webp_lossless(source.image.pixels, profile)
            return CleanCopy.of(pixels, "webp", lossless=False)
        return _build(chunks, source.icc_profile)

    def verify(self, data: bytes) -> None:
        """Accept only allow-listed chunks and flags, nothing after the RIFF; raises MetadataLeakError."""
        try:
            found = self._findings(data)
        except MalformedError as exc:
            raise MetadataLeakError(
                f"clean WebP cannot be parsed: {exc}", found=("WebP: unparseable",)
            ) from exc
        if found:
            raise MetadataLeakError("clean WebP holds: " + "; ".join(found), found=tuple(found))

    def _findings(self, data: bytes) -> list[str]:
        chunks, end = walk(data, strict=True)
        found = []
        for chunk in chunks:
            name = chunk.fourcc.decode("latin-1")
            if chunk.fourcc not in _TOP_LEVEL:
                found.append(f"WebP: {name!r} chunk")
            elif chunk.fourcc == b"VP8X":
                payload = chunk.payload
                if len(payload) != _VP8X_SIZE or payload[0] & ~_KEPT_FLAGS or payload[1:4] != b"\0\0\0":
                    found.append("WebP: VP8X flags or reserved bits beyond ICC/alpha")
            elif chunk.fourcc == b"ICCP" and not is_rebuilt(chunk.payload):
                found.append("WebP: ICCP that is not a rebuilt standard profile")
        if end != len(data):
            found.append(f"WebP: {len(data) - end} bytes after the RIFF container")
        return found


HANDLER = WebpHandler()
