"""Decoding: recognition by content, colour modes to 8-bit RGB, and refusal of bad input."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable
from io import BytesIO

import numpy
import pytest
from PIL import Image, ImageFile

from gatekeeper.errors import ImageTooLargeError, MediaError, UnreadableImageError, UnsupportedMediaError
from gatekeeper.media import decode, sanitise, sniff_format

MAX_PIXELS = 50_000_000


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png(width: int, height: int, raw: bytes) -> bytes:
    def chunk(ctype: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@pytest.fixture
def photo(corpus) -> Image.Image:
    """A real photo, small enough to re-encode in many ways quickly."""
    with Image.open(corpus.faces_dir / "obama" / "obama_small.jpg") as image:
        return image.convert("RGB")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "png"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00", "heic"),
        (b"GIF89a\x01\x00\x01\x00", "gif"),
        (b"GIF87a\x01\x00\x01\x00", "gif"),
        (b"II*\x00\x08\x00\x00\x00", "tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "tiff"),
    ],
)
def test_format_is_recognised_by_magic_bytes(head: bytes, expected: str) -> None:
    assert sniff_format(head) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7",
        b"BM\x00\x00",
        b"\x00\x00\x00\x1cftypavif",
        b"RIFF\x10\x00\x00\x00WAVEfmt ",
        b"II+\x00\x08\x00",
        b"Some text that merely mentions JPEG",
    ],
)
def test_unaccepted_formats_are_refused_by_content(head: bytes) -> None:
    with pytest.raises(UnsupportedMediaError):
        sniff_format(head)


def test_empty_data_is_unreadable_rather_than_unsupported() -> None:
    with pytest.raises(UnreadableImageError):
        sniff_format(b"")


def _truncated_jpeg(corpus) -> bytes:
    data = (corpus.faces_dir / "obama" / "obama.jpg").read_bytes()
    return data[: len(data) // 2]


BAD_INPUTS: dict[str, tuple[Callable[..., bytes], type[MediaError], int]] = {
    "empty bytes": (lambda corpus: b"", UnreadableImageError, MAX_PIXELS),
    "random bytes": (lambda corpus: random.Random(7).randbytes(4096), UnsupportedMediaError, MAX_PIXELS),
    "a text file": (
        lambda corpus: (corpus.root / "README.md").read_bytes(),
        UnsupportedMediaError,
        MAX_PIXELS,
    ),
    "a JPEG cut in half": (_truncated_jpeg, UnreadableImageError, MAX_PIXELS),
    "a JPEG over the pixel cap": (
        lambda corpus: (corpus.faces_dir / "obama" / "obama_small.jpg").read_bytes(),
        ImageTooLargeError,
        240 * 320 - 1,
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_with_the_matching_error_by_decode_and_sanitise(case: str, corpus) -> None:
    make, error, max_pixels = BAD_INPUTS[case]
    data = make(corpus)

    with pytest.raises(error):
        decode(data, max_pixels=max_pixels)
    with pytest.raises(error):
        sanitise(data, max_pixels=max_pixels)


def test_pixel_cap_is_checked_on_the_header_before_any_pixel_is_inflated() -> None:
    # 8000 x 8000 claimed, with image data far too short: only the header may have been read.
    data = _png(8000, 8000, b"\x00" * 100)

    with pytest.raises(ImageTooLargeError) as caught:
        decode(data, max_pixels=MAX_PIXELS)

    assert (caught.value.pixels, caught.value.limit) == (64_000_000, MAX_PIXELS)


def test_pillow_bomb_warning_never_escapes_when_our_cap_allows_the_image(
    corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow warns between its limit and twice its limit; pytest turns warnings into errors.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)
    data = (corpus.faces_dir / "obama" / "obama_small.jpg").read_bytes()

    image = decode(data, max_pixels=MAX_PIXELS)

    assert (image.width, image.height) == (320, 240)


def test_pillow_bomb_error_becomes_image_too_large(corpus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    data = (corpus.faces_dir / "obama" / "obama_small.jpg").read_bytes()

    with pytest.raises(ImageTooLargeError):
        decode(data, max_pixels=MAX_PIXELS)


def _cut(data: bytes, keep: float = 0.5) -> bytes:
    return data[: int(len(data) * keep)]


TRUNCATED: dict[str, Callable[..., bytes]] = {
    "jpeg": lambda corpus, photo: _cut((corpus.faces_dir / "obama" / "obama.jpg").read_bytes()),
    "progressive jpeg": lambda corpus, photo: _cut(_encode(photo, "JPEG", progressive=True)),
    "png": lambda corpus, photo: _cut(
        (corpus.faces_dir / "lin_manuel_miranda" / "lin-manuel-miranda.png").read_bytes()
    ),
    "png with a forged end": lambda corpus, photo: _forge_png_end(_encode(photo, "PNG")),
    "webp": lambda corpus, photo: _cut(_encode(photo, "WEBP", quality=90)),
    "gif": lambda corpus, photo: _cut(_encode(photo, "GIF")),
    "tiff": lambda corpus, photo: _cut((corpus.metadata_dir / "dudleyleavittutah_icc.tiff").read_bytes()),
    "heic": lambda corpus, photo: _cut((corpus.metadata_dir / "samplefilehub.heif").read_bytes()),
}


def _forge_png_end(data: bytes) -> bytes:
    """A PNG whose only IDAT is cut short, re-framed with a valid CRC and a proper IEND."""
    start = data.index(b"IDAT") - 4
    length = struct.unpack_from(">I", data, start)[0]
    body = data[start + 8 : start + 8 + length][: length // 2]
    idat = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return data[:start] + idat + data[start + 12 + length :]


@pytest.fixture
def pillow_accepts_truncated_images(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process-wide flag face_recognition sets on import (restored after the test)."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)


@pytest.mark.parametrize("fmt", TRUNCATED)
@pytest.mark.usefixtures("pillow_accepts_truncated_images")
def test_truncated_file_is_refused_even_when_pillow_is_told_to_accept_truncation(
    fmt: str, corpus, photo: Image.Image
) -> None:
    data = TRUNCATED[fmt](corpus, photo)

    with pytest.raises(UnreadableImageError):
        decode(data, max_pixels=MAX_PIXELS)
    with pytest.raises(UnreadableImageError):
        sanitise(data, max_pixels=MAX_PIXELS)


@pytest.mark.usefixtures("pillow_accepts_truncated_images")
def test_pillow_alone_would_have_accepted_the_truncated_jpeg(corpus) -> None:
    # Shows the test above guards against something real, not a Pillow error we merely pass on.
    with Image.open(BytesIO(_truncated_jpeg(corpus))) as image:
        image.load()
        assert image.size == (910, 1137)


def test_transparent_pixels_decode_as_white_so_hidden_colour_cannot_reappear() -> None:
    rgba = numpy.zeros((4, 4, 4), dtype=numpy.uint8)
    rgba[..., 0] = 255  # red everywhere...
    rgba[:2, :, 3] = 255  # ...but only the top half is opaque

    image = decode(_encode(Image.fromarray(rgba), "PNG"), max_pixels=MAX_PIXELS)

    assert (image.pixels[:2] == (255, 0, 0)).all()
    assert (image.pixels[2:] == (255, 255, 255)).all()


def test_half_transparent_photo_is_composited_on_white(corpus) -> None:
    with Image.open(corpus.faces_dir / "obama" / "obama2_32bit.png") as source:
        rgba = numpy.array(source.convert("RGBA"))
    rgba[..., 3] = 128
    expected = (rgba[..., :3].astype(int) * 128 + 255 * 127 + 127) // 255

    image = decode(_encode(Image.fromarray(rgba), "PNG"), max_pixels=MAX_PIXELS)

    assert numpy.abs(image.pixels.astype(int) - expected).max() <= 1


CONVERSIONS: dict[str, Callable[[Image.Image], tuple[bytes, Image.Image]]] = {
    "greyscale L": lambda p: (_encode(p.convert("L"), "PNG"), p.convert("L").convert("RGB")),
    "bilevel 1": lambda p: (_encode(p.convert("1"), "PNG"), p.convert("1").convert("RGB")),
    "palette P": lambda p: (_encode(p.convert("P"), "PNG"), p.convert("P").convert("RGB")),
    "palette GIF": lambda p: (_encode(p.convert("P"), "GIF"), p.convert("P").convert("RGB")),
    "greyscale with alpha LA": lambda p: (_encode(p.convert("LA"), "PNG"), p.convert("L").convert("RGB")),
    "greyscale TIFF": lambda p: (_encode(p.convert("L"), "TIFF"), p.convert("L").convert("RGB")),
    "RGB TIFF": lambda p: (_encode(p, "TIFF", compression="tiff_lzw"), p),
    "lossless WebP": lambda p: (_encode(p, "WEBP", lossless=True), p),
}


@pytest.mark.parametrize("mode", CONVERSIONS)
def test_colour_modes_decode_to_8_bit_rgb(mode: str, photo: Image.Image) -> None:
    data, expected = CONVERSIONS[mode](photo)

    image = decode(data, max_pixels=MAX_PIXELS)

    assert image.pixels.dtype == numpy.uint8
    assert image.pixels.shape == (240, 320, 3)
    assert numpy.array_equal(image.pixels, numpy.array(expected))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_is_scaled_to_8_bit_not_clipped(fmt: str) -> None:
    ramp = numpy.linspace(0, 65535, 64 * 16, dtype=numpy.uint16).reshape(16, 64)

    image = decode(_encode(Image.fromarray(ramp), fmt), max_pixels=MAX_PIXELS)

    expected = ((ramp.astype(int) * 255 + 32767) // 65535).astype(numpy.uint8)
    assert numpy.array_equal(image.pixels[..., 0], expected)
    assert numpy.array_equal(image.pixels[..., 1], expected)


def test_adobe_cmyk_jpeg_decodes_to_the_right_colours() -> None:
    # Pillow writes CMYK JPEGs the Adobe way (inverted, with an APP14 Adobe segment).
    data = _encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=100)
    assert b"Adobe" in data

    image = decode(data, max_pixels=MAX_PIXELS)

    assert numpy.abs(image.pixels.astype(int) - (255, 0, 0)).max() <= 2


def test_only_the_first_frame_of_an_animated_gif_is_decoded(photo: Image.Image) -> None:
    second = Image.new("RGB", photo.size, (0, 0, 255))
    data = _encode(photo.convert("P"), "GIF", save_all=True, append_images=[second.convert("P")])

    image = decode(data, max_pixels=MAX_PIXELS)

    assert numpy.array_equal(image.pixels, numpy.array(photo.convert("P").convert("RGB")))


def test_only_the_first_page_of_a_multi_page_tiff_is_decoded(photo: Image.Image) -> None:
    second = Image.new("RGB", (50, 50), (0, 0, 255))
    data = _encode(photo, "TIFF", save_all=True, append_images=[second])

    image = decode(data, max_pixels=MAX_PIXELS)

    assert numpy.array_equal(image.pixels, numpy.array(photo))


def test_decoded_image_reports_its_format_and_upright_size(corpus) -> None:
    data = (corpus.metadata_dir / "canon_powershot_sx60hs_orient6_iptc.jpg").read_bytes()

    image = decode(data, max_pixels=MAX_PIXELS)

    assert (image.format, image.orientation, image.width, image.height) == ("jpeg", 6, 1536, 2048)
