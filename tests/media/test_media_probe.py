"""The no-decode path of `sanitise`: proved by our own parsers, refusing what decoding refused."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy
import pytest
from PIL import Image

from gatekeeper.errors import ImageTooLargeError, MediaError, UnreadableImageError
from gatekeeper.media import decode, decode_source, sanitise
from gatekeeper.media.jpeg import HANDLER as JPEG
from gatekeeper.media.png import HANDLER as PNG
from gatekeeper.media.webp import HANDLER as WEBP

MAX_PIXELS = 50_000_000


def _photo(width: int = 96, height: int = 64) -> Image.Image:
    rng = numpy.random.default_rng(7)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=numpy.uint8))


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _png(raw_rows: bytes, width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows))
        + _png_chunk(b"IEND", b"")
    )


SAMPLES = {
    "jpeg": _encode(_photo(), "JPEG", quality=90),
    "progressive": _encode(_photo(), "JPEG", quality=90, progressive=True),
    "png": _encode(_photo(), "PNG"),
    "interlaced": _encode(_photo(), "PNG", interlace=1),
    "webp": _encode(_photo(), "WEBP", quality=80),
    "webp-lossless": _encode(_photo(), "WEBP", lossless=True),
}
HANDLERS = {
    "jpeg": JPEG,
    "progressive": JPEG,
    "png": PNG,
    "interlaced": PNG,
    "webp": WEBP,
    "webp-lossless": WEBP,
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_probe_takes_plain_files_and_the_copy_matches_the_decoding_path(name: str) -> None:
    data = SAMPLES[name]
    probe = HANDLERS[name].probe(data)
    assert probe is not None
    assert (probe.width, probe.height) == (96, 64)
    fast = sanitise(data, max_pixels=MAX_PIXELS)
    slow = sanitise(data, max_pixels=MAX_PIXELS, source=decode_source(data, max_pixels=MAX_PIXELS))
    assert fast == slow
    assert numpy.array_equal(
        decode(fast.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


def test_corpus_copies_are_identical_with_and_without_decoding(corpus: Any) -> None:
    root: Path = corpus.root
    suffixes = {".jpg", ".jpeg", ".png", ".webp"}
    files = sorted(
        p for d in ("metadata", "faces") for p in (root / d).rglob("*") if p.suffix.lower() in suffixes
    )
    assert files
    probed = 0
    for path in files:
        data = path.read_bytes()
        source = decode_source(data, max_pixels=MAX_PIXELS)
        assert sanitise(data, max_pixels=MAX_PIXELS) == sanitise(
            data, max_pixels=MAX_PIXELS, source=source
        ), path
        probed += JPEG.probe(data) is not None or PNG.probe(data) is not None
    assert probed >= len(files) // 2


def test_truncated_jpeg_scan_is_refused() -> None:
    data = SAMPLES["jpeg"]
    cut = data[: len(data) * 2 // 3]
    assert JPEG.probe(cut) is None
    with pytest.raises(UnreadableImageError):
        sanitise(cut, max_pixels=MAX_PIXELS)


def test_truncated_jpeg_with_an_eoi_appended_has_no_complete_scan_structure() -> None:
    data = SAMPLES["progressive"]
    sos = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xda"]
    # Only the first (DC) scan left: the AC coefficients have no first scan.
    cut = data[: sos[1]] + b"\xff\xd9"
    assert JPEG.probe(cut) is None


def test_jpeg_scan_using_an_undefined_table_is_not_probed() -> None:
    data = SAMPLES["jpeg"]
    # Point the first scan's first component at Huffman table 3, which is never defined.
    sos = data.index(b"\xff\xda")
    broken = data[: sos + 6] + b"\x33" + data[sos + 7 :]
    assert JPEG.probe(broken) is None


def test_png_with_a_bad_crc_is_refused() -> None:
    data = bytearray(SAMPLES["png"])
    idat = data.index(b"IDAT")
    data[idat + 10] ^= 0xFF
    assert PNG.probe(bytes(data)) is None
    with pytest.raises(UnreadableImageError):
        sanitise(bytes(data), max_pixels=MAX_PIXELS)


def test_png_with_a_short_idat_stream_is_refused() -> None:
    width, height = 8, 4
    rows = b"".join(b"\x00" + bytes(3 * width) for _ in range(height))
    data = _png(rows[:-3], width, height)
    assert PNG.probe(data) is None
    with pytest.raises(UnreadableImageError):
        sanitise(data, max_pixels=MAX_PIXELS)


def test_png_with_a_truncated_zlib_stream_is_refused() -> None:
    width, height = 8, 4
    rows = b"".join(b"\x00" + bytes(3 * width) for _ in range(height))
    body = zlib.compress(rows)[:-6]
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", body)
        + _png_chunk(b"IEND", b"")
    )
    assert PNG.probe(data) is None
    with pytest.raises(UnreadableImageError):
        sanitise(data, max_pixels=MAX_PIXELS)


def test_png_with_an_unknown_row_filter_is_refused() -> None:
    width, height = 8, 4
    rows = b"".join(bytes([9 if y == 2 else 0]) + bytes(3 * width) for y in range(height))
    data = _png(rows, width, height)
    assert PNG.probe(data) is None
    with pytest.raises(MediaError):
        sanitise(data, max_pixels=MAX_PIXELS)


def test_webp_with_a_wrong_riff_size_is_refused() -> None:
    data = SAMPLES["webp"]
    longer = data[:4] + struct.pack("<I", struct.unpack_from("<I", data, 4)[0] + 100) + data[8:]
    assert WEBP.probe(longer) is None
    with pytest.raises(UnreadableImageError):
        sanitise(longer, max_pixels=MAX_PIXELS)
    shorter = data[:4] + struct.pack("<I", struct.unpack_from("<I", data, 4)[0] - 10) + data[8:]
    assert WEBP.probe(shorter) is None
    with pytest.raises(UnreadableImageError):
        sanitise(shorter, max_pixels=MAX_PIXELS)


def test_webp_truncated_is_refused() -> None:
    data = SAMPLES["webp"]
    assert WEBP.probe(data[:-20]) is None
    with pytest.raises(UnreadableImageError):
        sanitise(data[:-20], max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_dimensions_over_the_cap_are_refused_without_decoding(name: str) -> None:
    data = SAMPLES[name]
    with pytest.raises(ImageTooLargeError):
        sanitise(data, max_pixels=96 * 64 - 1)
    assert sanitise(data, max_pixels=96 * 64).data


def test_png_header_claiming_huge_dimensions_is_refused() -> None:
    data = bytearray(SAMPLES["png"])
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data[8:33] = _png_chunk(b"IHDR", ihdr)
    with pytest.raises(ImageTooLargeError):
        sanitise(bytes(data), max_pixels=MAX_PIXELS)


def test_jpeg_orientation_is_read_without_decoding() -> None:
    image = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _encode(image, "JPEG", quality=90, exif=exif.tobytes())
    probe = JPEG.probe(data)
    assert probe is not None and probe.orientation == 6
    assert decode_source(data, max_pixels=MAX_PIXELS).image.orientation == 6
    copy = sanitise(data, max_pixels=MAX_PIXELS)
    assert copy.lossless
    assert numpy.array_equal(
        decode(copy.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


def test_png_and_webp_with_an_orientation_still_decode_and_bake_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    for fmt, handler in (("PNG", PNG), ("WEBP", WEBP)):
        data = _encode(_photo(), fmt, exif=exif.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
        assert handler.probe(data) is None
        copy = sanitise(data, max_pixels=MAX_PIXELS)
        assert not copy.lossless
        assert decode(copy.data, max_pixels=MAX_PIXELS).pixels.shape[:2] == (96, 64)
