"""Sanitising hostile and unusual files, and the strict verifier every clean copy passes."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import numpy
import pytest
from PIL import Image, PngImagePlugin

from gatekeeper.errors import MetadataLeakError
from gatekeeper.media import CleanCopy, decode, sanitise, verify_clean

MAX_PIXELS = 50_000_000


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _same_pixels(a: bytes, b: bytes) -> bool:
    return numpy.array_equal(decode(a, max_pixels=MAX_PIXELS).pixels, decode(b, max_pixels=MAX_PIXELS).pixels)


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def _orientation_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.fixture
def photo(corpus) -> Image.Image:
    with Image.open(corpus.faces_dir / "obama" / "obama_small.jpg") as image:
        return image.convert("RGB")


@pytest.fixture
def clean_jpeg(corpus) -> bytes:
    return sanitise((corpus.faces_dir / "biden" / "biden.jpg").read_bytes(), max_pixels=MAX_PIXELS).data


# --- hostile inputs ------------------------------------------------------------------------------


def test_jpeg_with_a_second_jpeg_appended_loses_everything_after_the_first_eoi(corpus) -> None:
    first = (corpus.metadata_dir / "canon_eos_40d.jpg").read_bytes()
    second = (corpus.faces_dir / "obama" / "obama_small.jpg").read_bytes()

    clean = sanitise(first + second, max_pixels=MAX_PIXELS)

    assert clean.data.endswith(b"\xff\xd9")
    assert len(clean.data) < len(first)
    assert second[-2000:] not in clean.data
    assert _same_pixels(clean.data, first)


def test_mpf_index_is_dropped(corpus) -> None:
    data = (corpus.metadata_dir / "polyphony_gt5_mpf.jpg").read_bytes()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"MPF\x00" not in clean.data
    assert clean.data.endswith(b"\xff\xd9")
    assert _same_pixels(clean.data, data)


def test_png_with_bytes_after_iend_loses_them(photo: Image.Image) -> None:
    data = _encode(photo, "PNG")
    trailer = b"secret: taken at Hillside Primary by J. Smith"

    clean = sanitise(data + trailer, max_pixels=MAX_PIXELS)

    assert trailer not in clean.data
    assert clean.data.endswith(_png_chunk(b"IEND", b""))
    assert clean.lossless


@pytest.mark.parametrize("chunk", ["tEXt", "zTXt", "iTXt"])
def test_png_text_chunks_naming_a_person_are_dropped(chunk: str, photo: Image.Image) -> None:
    info = PngImagePlugin.PngInfo()
    if chunk == "tEXt":
        info.add_text("Author", "Jane Pupil, Year 4")
    else:
        info.add_text("Author", "Jane Pupil, Year 4", zip=chunk == "zTXt")
        if chunk == "iTXt":
            info.add_itxt("Author", "Jane Pupil, Year 4", lang="en")
    data = _encode(photo, "PNG", pnginfo=info)
    assert chunk.encode() in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert chunk.encode() not in clean.data
    assert b"Jane" not in clean.data
    assert _same_pixels(clean.data, data)


def test_jfif_thumbnail_and_jfxx_extension_are_dropped_without_changing_pixels(photo: Image.Image) -> None:
    # Pillow's JPEG starts with a thumbnail-free JFIF; give it a 2x2 thumbnail and a JFXX segment.
    clean_jpeg = _encode(photo, "JPEG")
    assert clean_jpeg[6:11] == b"JFIF\x00"
    jfif_length = struct.unpack_from(">H", clean_jpeg, 4)[0]
    jfif = clean_jpeg[6 : 4 + jfif_length]
    thumbnail = jfif[:12] + b"\x02\x02" + bytes(range(12))
    jfxx = b"JFXX\x00\x13" + b"\x01\x01" + bytes(6)
    dirty = (
        clean_jpeg[:2]
        + _jpeg_segment(0xE0, thumbnail)
        + _jpeg_segment(0xE0, jfxx)
        + clean_jpeg[4 + jfif_length :]
    )

    clean = sanitise(dirty, max_pixels=MAX_PIXELS)

    assert clean.data == clean_jpeg
    assert b"JFXX" not in clean.data


def test_progressive_jpeg_keeps_every_scan_and_loses_comment_and_exif(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x013B] = "Jane Photographer"  # Artist
    data = _encode(photo, "JPEG", progressive=True, comment="Sports day, Year 4", exif=exif.tobytes())
    assert data.count(b"\xff\xda") > 1

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert clean.data.count(b"\xff\xda") == data.count(b"\xff\xda")
    assert b"Sports day" not in clean.data and b"Jane" not in clean.data
    assert _same_pixels(clean.data, data)


def test_restart_markers_inside_scans_are_kept_byte_for_byte(photo: Image.Image) -> None:
    data = _encode(photo, "JPEG", restart_marker_rows=1, comment="hello")
    assert b"\xff\xdd" in data and b"\xff\xd0" in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert clean.data.count(b"\xff\xd0") == data.count(b"\xff\xd0")
    assert _same_pixels(clean.data, data)


def test_adobe_cmyk_jpeg_keeps_its_colour_transform_and_decodes_identically(corpus) -> None:
    with Image.open(corpus.faces_dir / "obama" / "obama_small.jpg") as image:
        cmyk = image.convert("CMYK")
    data = _encode(cmyk, "JPEG", quality=90, comment="CMYK from the yearbook printer")

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"Adobe" in clean.data and b"yearbook" not in clean.data
    assert clean.lossless
    assert _same_pixels(clean.data, data)


def test_bluesquare_keeps_a_rewritten_adobe_segment_and_its_icc_profile(corpus) -> None:
    data = (corpus.metadata_dir / "bluesquare_xmp_iptc.jpg").read_bytes()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"ICC_PROFILE\x00" in clean.data
    adobe = clean.data.index(b"Adobe")
    assert clean.data[adobe - 4 : adobe - 2] == b"\xff\xee"
    assert struct.unpack_from(">H", clean.data, adobe - 2)[0] == 14
    assert b"Photoshop 3.0" not in clean.data and b"http://ns.adobe.com/xap" not in clean.data


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_with_an_exif_orientation_are_rotated_into_the_pixels(
    fmt: str, photo: Image.Image
) -> None:
    options: dict[str, object] = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(photo, fmt, exif=_orientation_exif(6), **options)
    source = decode(data, max_pixels=MAX_PIXELS)
    assert (source.orientation, source.width, source.height) == (6, 240, 320)

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert not clean.lossless
    assert b"Exif" not in clean.data and b"eXIf" not in clean.data
    republished = decode(clean.data, max_pixels=MAX_PIXELS)
    assert republished.orientation == 1
    assert numpy.array_equal(republished.pixels, source.pixels)


def test_webp_exif_and_xmp_chunks_are_dropped_and_the_flags_cleared(corpus) -> None:
    data = (corpus.metadata_dir / "exiftool_webp_exif_xmp.webp").read_bytes()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"EXIF" not in clean.data and b"XMP " not in clean.data
    assert struct.unpack_from("<I", clean.data, 4)[0] == len(clean.data) - 8
    if clean.data[12:16] == b"VP8X":
        assert clean.data[20] & 0x0C == 0


def test_animated_webp_is_published_as_its_first_frame_without_metadata(photo: Image.Image) -> None:
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    data = _encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, xmp=b"<x>Jane</x>"
    )
    assert b"XMP " in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"ANMF" not in clean.data and b"ANIM" not in clean.data
    assert b"XMP " not in clean.data and b"Jane" not in clean.data
    assert _same_pixels(clean.data, data)


def test_gif_becomes_a_png_of_its_first_frame_without_its_comment(photo: Image.Image) -> None:
    data = _encode(photo.convert("P"), "GIF", comment=b"Jane Pupil, Year 4")

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert (clean.format, clean.extension, clean.media_type, clean.lossless) == (
        "png",
        ".png",
        "image/png",
        False,
    )
    assert b"Jane" not in clean.data
    assert _same_pixels(clean.data, data)


def test_clean_copy_is_a_plain_value_describing_its_format(corpus) -> None:
    clean = sanitise((corpus.faces_dir / "obama" / "obama_small.jpg").read_bytes(), max_pixels=MAX_PIXELS)

    assert isinstance(clean, CleanCopy)
    assert (clean.format, clean.extension, clean.media_type, clean.lossless) == (
        "jpeg",
        ".jpg",
        "image/jpeg",
        True,
    )


# --- the verifier --------------------------------------------------------------------------------


def test_verify_clean_accepts_what_sanitise_produced(clean_jpeg: bytes) -> None:
    verify_clean(clean_jpeg)


def test_verify_clean_rejects_a_jpeg_with_a_comment(clean_jpeg: bytes) -> None:
    with pytest.raises(MetadataLeakError) as caught:
        verify_clean(_after_soi(clean_jpeg, _jpeg_segment(0xFE, b"Jane Pupil")))

    assert any("COM" in item for item in caught.value.found)


def test_verify_clean_rejects_a_jpeg_with_xmp(clean_jpeg: bytes) -> None:
    xmp = b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>Jane</x:xmpmeta>"

    with pytest.raises(MetadataLeakError) as caught:
        verify_clean(_after_soi(clean_jpeg, _jpeg_segment(0xE1, xmp)))

    assert any("xap" in item for item in caught.value.found)


def test_verify_clean_rejects_bytes_after_eoi(clean_jpeg: bytes) -> None:
    with pytest.raises(MetadataLeakError, match="after EOI"):
        verify_clean(clean_jpeg + b"\xff\xd8hidden")


def _exif_with_artist() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x013B] = "Jane Photographer"
    return exif.tobytes()


def _exif_with_ifd1() -> bytes:
    exif = bytearray(_orientation_exif(6))
    # Link IFD0's "next IFD" back to itself: any non-zero link is an IFD1.
    order = "<I" if exif[6:8] == b"II" else ">I"
    exif[6 + 8 + 2 + 12 : 6 + 8 + 2 + 12 + 4] = struct.pack(order, 8)
    return bytes(exif)


@pytest.mark.parametrize(
    ("payload", "finding"),
    [(_exif_with_artist(), "Artist"), (_exif_with_ifd1(), "IFD1")],
    ids=["an Artist tag", "a thumbnail IFD"],
)
def test_verify_clean_rejects_exif_beyond_orientation(
    payload: bytes, finding: str, clean_jpeg: bytes
) -> None:
    assert payload.startswith(b"Exif\x00\x00")

    with pytest.raises(MetadataLeakError) as caught:
        verify_clean(_after_soi(clean_jpeg, _jpeg_segment(0xE1, payload)))

    assert any(finding in item for item in caught.value.found)


def test_verify_clean_lists_what_a_camera_original_holds(corpus) -> None:
    data = (corpus.metadata_dir / "nikon_d70s_gps_iptc_xmp.jpg").read_bytes()

    with pytest.raises(MetadataLeakError) as caught:
        verify_clean(data)

    found = " ".join(caught.value.found)
    assert "GPS" in found and "xap" in found and "Photoshop" in found


def test_verify_clean_rejects_png_text_and_trailing_bytes(corpus) -> None:
    data = (corpus.metadata_dir / "exiftool_png_text_xmp.png").read_bytes()

    with pytest.raises(MetadataLeakError) as caught:
        verify_clean(data + b"trailer")

    found = " ".join(caught.value.found)
    assert "tEXt" in found and "iTXt" in found and "after IEND" in found


def test_verify_clean_rejects_webp_with_exif(corpus) -> None:
    with pytest.raises(MetadataLeakError, match="EXIF"):
        verify_clean((corpus.metadata_dir / "exiftool_webp_exif_xmp.webp").read_bytes())


@pytest.mark.parametrize("relpath", ["metadata/samplefilehub.heif", "metadata/arbitro_xmp.tiff", "README.md"])
def test_verify_clean_rejects_formats_that_are_never_published(relpath: str, corpus) -> None:
    with pytest.raises(MetadataLeakError):
        verify_clean((corpus.root / relpath).read_bytes())


def test_verify_clean_rejects_a_gif(photo: Image.Image) -> None:
    with pytest.raises(MetadataLeakError):
        verify_clean(_encode(photo, "GIF"))


def test_verify_clean_rejects_a_truncated_clean_copy(clean_jpeg: bytes) -> None:
    with pytest.raises(MetadataLeakError):
        verify_clean(clean_jpeg[: len(clean_jpeg) // 2])
