"""Every leak channel of the issue, each proven on a file the test builds (mostly with ExifTool).

A planted string is searched for in the clean copy in ASCII and in UTF-16 (both byte orders),
since EXIF XP* tags, ICC 'mluc' and some XMP writers store text as UTF-16.
"""

from __future__ import annotations

import struct
import subprocess
import zipfile
from io import BytesIO
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageCms

from gatekeeper.errors import MetadataLeakError, UnreadableImageError, UnsupportedMediaError
from gatekeeper.media import decode, decode_source, sanitise, sniff_format, verify_clean
from gatekeeper.media import jpeg as jpeg_format
from gatekeeper.media.icc import SRGB, Standard, is_rebuilt, recognise

MAX_PIXELS = 50_000_000
NAME = "Jane Pupil Smith"


def _absent(data: bytes, *planted: str) -> None:
    for text in planted:
        for encoding in ("ascii", "utf-16-le", "utf-16-be"):
            assert text.encode(encoding) not in data, f"{text!r} found as {encoding}"


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _exiftool_write(exiftool: str, path: Path, *args: str) -> bytes:
    subprocess.run([exiftool, "-q", "-q", "-overwrite_original", *args, str(path)], check=True)
    return path.read_bytes()


def _exiftool_keys(exiftool: str, data: bytes, tmp_path: Path, suffix: str = ".bin") -> list[str]:
    path = tmp_path / f"out{suffix}"
    path.write_bytes(data)
    out = subprocess.run(
        [exiftool, "-j", "-a", "-G0", "-s", "-ee", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return list(__import__("json").loads(out)[0])


def _scan_bytes(data: bytes) -> bytes:
    """From the first SOS to EOI: the entropy-coded data (with its scan headers)."""
    segments, end = jpeg_format.walk(data, strict=False)
    first = next(s for s in segments if s.marker == jpeg_format.SOS)
    return data[first.start : end]


@pytest.fixture
def photo(corpus) -> Image.Image:
    with Image.open(corpus.faces_dir / "obama" / "obama_small.jpg") as image:
        return image.convert("RGB")


# --- EXIF: nothing but Orientation ---------------------------------------------------------------

_EXIF_CASES = {
    "gps": ["-GPSLatitude=51.501364", "-GPSLatitudeRef=N", "-GPSLongitude=0.14189", "-GPSLongitudeRef=W"],
    "xp": [f"-XP{t}={NAME} {t}" for t in ("Author", "Comment", "Keywords", "Subject", "Title")],
    "artist": [f"-Artist={NAME}"],
    "copyright": [f"-Copyright=(c) {NAME}"],
    "image_description": [f"-ImageDescription={NAME} at sports day"],
    "user_comment": [f"-UserComment={NAME} comment"],
    "owner_name": [f"-OwnerName={NAME}"],
}
_EXIF_GROUPS = {
    "gps": "GPS",
    "xp": "IFD0",
    "artist": "IFD0",
    "copyright": "IFD0",
    "image_description": "IFD0",
}


@pytest.mark.parametrize("case", sorted(_EXIF_CASES))
def test_exif_tag_written_by_exiftool_is_gone(
    case: str, photo: Image.Image, exiftool: str, tmp_path: Path
) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(_encode(photo, "JPEG"))
    data = _exiftool_write(exiftool, path, *_EXIF_CASES[case])
    assert NAME.encode() in data or NAME.encode("utf-16-le") in data or case == "gps"

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    keys = _exiftool_keys(exiftool, clean.data, tmp_path, ".jpg")
    assert [k for k in keys if k.split(":")[0] == "EXIF"] == []
    _absent(clean.data, NAME)
    assert clean.lossless and _scan_bytes(clean.data) == _scan_bytes(data)


def test_maker_note_is_gone(photo: Image.Image, corpus, exiftool: str, tmp_path: Path) -> None:
    path = tmp_path / "in.jpg"
    path.write_bytes(_encode(photo, "JPEG"))
    donor = corpus.metadata_dir / "canon_powershot_sx60hs_orient6_iptc.jpg"
    _exiftool_write(exiftool, path, "-tagsfromfile", str(donor), "-makernotes", "-make", "-model")
    data = _exiftool_write(exiftool, path, f"-Canon:OwnerName={NAME}")
    assert any(k.startswith("MakerNotes:") for k in _exiftool_keys(exiftool, data, tmp_path, ".jpg"))

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert not any(
        k.startswith(("MakerNotes:", "EXIF:")) for k in _exiftool_keys(exiftool, clean.data, tmp_path)
    )
    _absent(clean.data, NAME, "Canon")


def test_ifd1_thumbnail_is_gone(photo: Image.Image, exiftool: str, tmp_path: Path) -> None:
    thumb = tmp_path / "thumb.jpg"
    thumb.write_bytes(_encode(photo.resize((32, 32)), "JPEG", comment=b"thumbnail of Jane Pupil Smith"))
    path = tmp_path / "in.jpg"
    path.write_bytes(_encode(photo, "JPEG"))
    data = _exiftool_write(exiftool, path, f"-ThumbnailImage<={thumb}")
    assert thumb.read_bytes()[-500:] in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert thumb.read_bytes()[-500:] not in clean.data
    assert not any(k.startswith("EXIF:") for k in _exiftool_keys(exiftool, clean.data, tmp_path))
    _absent(clean.data, NAME)


# --- XMP face regions carry names: JPEG, PNG and WebP ---------------------------------------------

_REGIONS = [
    "-RegionInfo={AppliedToDimensions={W=100,H=100,Unit=pixel},"
    f"RegionList=[{{Area={{X=0.5,Y=0.5,W=0.2,H=0.2,Unit=normalized}},Name={NAME} MWG,Type=Face}}]}}",
    f"-RegionInfoMP={{Regions=[{{PersonDisplayName={NAME} MP,Rectangle=0.1|, 0.1|, 0.2|, 0.2}}]}}",
    f"-XMP-iptcExt:PersonInImage={NAME} IPTC",
]


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_xmp_face_regions_naming_people_are_gone(
    fmt: str, photo: Image.Image, exiftool: str, tmp_path: Path
) -> None:
    path = tmp_path / f"in.{fmt.lower()}"
    path.write_bytes(_encode(photo, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    data = _exiftool_write(exiftool, path, *_REGIONS)
    written = _exiftool_keys(exiftool, data, tmp_path)
    assert {"XMP:RegionName", "XMP:RegionPersonDisplayName", "XMP:PersonInImage"} <= set(written)

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert not any(k.startswith("XMP") for k in _exiftool_keys(exiftool, clean.data, tmp_path))
    _absent(clean.data, NAME, "mwg-rs", "RegionInfo", "PersonInImage", "x:xmpmeta")
    assert clean.lossless
    assert numpy.array_equal(
        decode(clean.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


# --- JPEG segments --------------------------------------------------------------------------------


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def test_every_jpeg_segment_outside_the_allow_list_is_gone_and_the_scans_are_untouched(
    photo: Image.Image,
) -> None:
    base = _encode(photo, "JPEG", quality=90, restart_marker_blocks=4)
    xmp = (
        b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta><dc:creator>"
        + NAME.encode()
        + b"</dc:creator></x:xmpmeta>"
    )
    extended = (
        b"http://ns.adobe.com/xmp/extension/\x00" + b"0" * 32 + struct.pack(">II", 30, 0) + NAME.encode()
    )
    # Photoshop image resources: IPTC (0x0404) with a By-line, and a thumbnail (0x040C).
    iptc = b"\x1c\x02\x50" + struct.pack(">H", len(NAME)) + NAME.encode()
    thumb = b"\xff\xd8THUMBNAIL-OF-JANE\xff\xd9"

    def resource(rid: int, body: bytes) -> bytes:
        return (
            b"8BIM"
            + struct.pack(">H", rid)
            + b"\x00\x00"
            + struct.pack(">I", len(body))
            + body
            + b"\x00" * (len(body) & 1)
        )

    photoshop = b"Photoshop 3.0\x00" + resource(0x0404, iptc) + resource(0x040C, thumb)
    extras = [
        _segment(0xE1, xmp),
        _segment(0xE1, extended),
        _segment(0xED, photoshop),
        _segment(0xFE, f"comment by {NAME}".encode()),
        _segment(0xE3, b"APP3 " + NAME.encode()),
        _segment(0xEF, b"APP15 " + NAME.encode()),
    ]
    data = base[:2] + b"".join(extras) + base[2:] + b"trailing " + NAME.encode()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    _absent(clean.data, NAME, "THUMBNAIL-OF-JANE", "xap/1.0", "xmp/extension", "Photoshop", "MPF")
    segments, end = jpeg_format.walk(clean.data, strict=True)
    assert end == len(clean.data)
    markers = {s.marker for s in segments}
    assert markers <= {0xD8, 0xE0, 0xDB, 0xC0, 0xC4, 0xDD, 0xDA, 0xD9}
    assert 0xDD in markers  # DRI kept: the restart intervals need it
    assert _scan_bytes(clean.data) == _scan_bytes(base)
    # Every table and frame segment is kept byte for byte.
    structural = {0xDB, 0xC0, 0xC4, 0xDD}
    src_segments, _ = jpeg_format.walk(base, strict=False)
    assert [base[s.start : s.end] for s in src_segments if s.marker in structural] == [
        clean.data[s.start : s.end] for s in segments if s.marker in structural
    ]


def test_a_malformed_mpf_segment_is_refused_clearly(photo: Image.Image) -> None:
    base = _encode(photo, "JPEG")
    data = base[:2] + _segment(0xE2, b"MPF\x00MM\x00*\x00\x00\x00\x08" + NAME.encode()) + base[2:]

    with pytest.raises(UnreadableImageError, match="MPO"):
        sanitise(data, max_pixels=MAX_PIXELS)


# --- ICC profiles: recognised by colorimetry, rebuilt, never passed through -----------------------


def _with_text(profile: bytes, text: str) -> bytes:
    """The profile with its 'desc' (and a new 'cprt') replaced by `text`, header fields filled."""
    utf16 = text.encode("utf-16-be")
    mluc = (
        b"mluc\x00\x00\x00\x00"
        + struct.pack(">II", 1, 12)
        + b"enUS"
        + struct.pack(">II", len(utf16), 28)
        + utf16
    )
    count = struct.unpack_from(">I", profile, 128)[0]
    entries = [struct.unpack_from(">4sII", profile, 132 + 12 * i) for i in range(count)]
    entries = [e for e in entries if e[0] not in (b"desc", b"cprt")]
    new_count = len(entries) + 2
    shift = 12 * (new_count - count)
    body = profile[132 + 12 * count :]
    body += b"\x00" * (-len(body) % 4)
    desc_at = 132 + 12 * new_count + len(body)
    table = [struct.pack(">4sII", sig, off + shift, size) for sig, off, size in entries]
    table += [
        struct.pack(">4sII", b"desc", desc_at, len(mluc)),
        struct.pack(">4sII", b"cprt", desc_at, len(mluc)),
    ]
    header = bytearray(profile[:128])
    header[48:52] = b"JANE"  # device manufacturer
    header[80:84] = b"JPSm"  # creator
    out = bytes(header) + struct.pack(">I", new_count) + b"".join(table) + body + mluc
    return struct.pack(">I", len(out)) + out[4:]


@pytest.fixture
def named_srgb() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    named = _with_text(profile, NAME)
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(BytesIO(named))).strip() == NAME
    return named


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_srgb_profile_whose_description_names_a_person_is_rebuilt(
    fmt: str, named_srgb: bytes, photo: Image.Image
) -> None:
    data = _encode(photo, fmt, icc_profile=named_srgb, **({"lossless": True} if fmt == "WEBP" else {}))
    assert recognise(named_srgb) is SRGB

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    _absent(clean.data, NAME, "JANE", "JPSm")
    assert clean.lossless
    profile = decode_source(clean.data, max_pixels=MAX_PIXELS).icc_profile
    assert profile == SRGB.profile and is_rebuilt(profile)
    if fmt == "JPEG":
        assert _scan_bytes(clean.data) == _scan_bytes(data)
    if fmt == "PNG":
        assert b"ICC Profile\x00\x00" in clean.data
    assert numpy.array_equal(
        decode(clean.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


def test_png_iccp_profile_name_is_made_neutral(photo: Image.Image) -> None:
    data = _encode(photo, "PNG", icc_profile=SRGB.profile)
    data = data.replace(b"ICC Profile\x00", b"JanePupilSm\x00")  # same length, CRC fixed below
    start = data.index(b"iCCP") - 4
    length = struct.unpack_from(">I", data, start)[0]
    body_end = start + 8 + length
    crc = struct.pack(">I", __import__("zlib").crc32(data[start + 4 : body_end]))
    data = data[:body_end] + crc + data[body_end + 4 :]

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    _absent(clean.data, "JanePupilSm")
    assert b"ICC Profile\x00\x00" in clean.data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_an_unknown_profile_is_never_passed_through_the_pixels_are_converted(
    fmt: str, photo: Image.Image
) -> None:
    # A wide-gamut space of our own making, described with a name: not sRGB, P3 or Adobe RGB.
    wide = Standard("wide", NAME, ((0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)), lambda x: x**1.8)
    data = _encode(
        photo, fmt, icc_profile=wide.profile, quality=95, **({"lossless": True} if fmt == "WEBP" else {})
    )
    assert recognise(wide.profile) is None
    reference = ImageCms.profileToProfile(
        photo,
        ImageCms.ImageCmsProfile(BytesIO(wide.profile)),
        ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    assert reference is not None

    clean = sanitise(data, max_pixels=MAX_PIXELS, jpeg_quality=95)

    _absent(clean.data, NAME)
    assert not clean.lossless and clean.format == fmt.lower()
    out = decode_source(clean.data, max_pixels=MAX_PIXELS)
    assert out.icc_profile == SRGB.profile
    means = out.image.pixels.reshape(-1, 3).mean(axis=0)
    expected = numpy.asarray(reference).reshape(-1, 3).mean(axis=0)
    assert numpy.abs(means - expected).max() < 1.5
    # The conversion really changed the colours (else the check above would prove nothing).
    assert numpy.abs(numpy.asarray(photo).reshape(-1, 3).mean(axis=0) - expected).max() > 5


def test_a_profile_that_cannot_be_converted_is_refused_clearly(photo: Image.Image) -> None:
    broken = bytearray(SRGB.profile)
    broken[132 + 12 * 2 : 132 + 12 * 2 + 4] = b"zzzz"  # rXYZ tag renamed: unrecognised and unusable
    data = _encode(photo, "JPEG", icc_profile=bytes(broken))

    with pytest.raises(UnreadableImageError, match="ICC profile"):
        sanitise(data, max_pixels=MAX_PIXELS)


def test_verify_clean_rejects_any_icc_but_a_rebuilt_one(named_srgb: bytes, photo: Image.Image) -> None:
    for fmt in ("JPEG", "PNG", "WEBP"):
        with pytest.raises(MetadataLeakError, match=r"ICC|iCCP"):
            verify_clean(_encode(photo, fmt, icc_profile=named_srgb))
        verify_clean(_encode(photo, fmt, icc_profile=SRGB.profile))


# --- PNG, WebP, GIF ------------------------------------------------------------------------------


def _png_chunk(ctype: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body))
        + ctype
        + body
        + struct.pack(">I", __import__("zlib").crc32(ctype + body))
    )


@pytest.mark.parametrize(
    "chunk",
    [
        _png_chunk(b"eXIf", Image.Exif().tobytes()[6:] + NAME.encode()),
        _png_chunk(b"tIME", struct.pack(">HBBBBB", 2026, 6, 15, 9, 30, 0) + NAME.encode()),
        _png_chunk(
            b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>" + NAME.encode() + b"</x:xmpmeta>"
        ),
        _png_chunk(b"tEXt", b"Author\x00" + NAME.encode()),
        _png_chunk(b"zTXt", b"Author\x00\x00" + __import__("zlib").compress(NAME.encode())),
        _png_chunk(b"prVt", NAME.encode()),
    ],
    ids=["eXIf", "tIME", "iTXt-XMP", "tEXt", "zTXt", "private"],
)
def test_png_ancillary_chunks_are_gone(chunk: bytes, photo: Image.Image) -> None:
    png = _encode(photo, "PNG")
    data = png[:33] + chunk + png[33:]

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert chunk[4:8] not in clean.data
    _absent(clean.data, NAME, "xmpmeta")
    assert clean.lossless


def test_acropalypse_png_with_a_second_image_after_iend_loses_it(photo: Image.Image) -> None:
    # CVE-2023-21036 / CVE-2023-28303: a cropped screenshot written over the original file left
    # the original's tail after the new IEND; the hidden image can be recovered from it.
    original = _encode(photo, "PNG")
    original = original[:33] + _png_chunk(b"tEXt", b"Author\x00" + NAME.encode()) + original[33:]
    cropped = _encode(photo.crop((0, 0, 40, 40)), "PNG")
    data = cropped + original[len(cropped) :] if len(original) > len(cropped) else cropped + original

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert clean.data.endswith(b"IEND\xaeB`\x82") and clean.data.count(b"IEND") == 1
    assert len(clean.data) <= len(cropped)
    _absent(clean.data, NAME)
    assert decode(clean.data, max_pixels=MAX_PIXELS).pixels.shape == (40, 40, 3)


def test_webp_exif_and_xmp_chunks_built_by_pillow_are_gone(photo: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x013B] = NAME
    data = _encode(
        photo, "WEBP", lossless=True, exif=exif.tobytes(), xmp=f"<x:xmpmeta>{NAME}</x:xmpmeta>".encode()
    )
    assert b"EXIF" in data and b"XMP " in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"EXIF" not in clean.data and b"XMP " not in clean.data
    _absent(clean.data, NAME)


def _gif_with_xmp_application_block(gif: bytes, xmp: bytes) -> bytes:
    packed = gif[10]
    table = 3 * (2 ** ((packed & 7) + 1)) if packed & 0x80 else 0
    at = 13 + table
    blocks = b"".join(bytes([len(xmp[i : i + 255])]) + xmp[i : i + 255] for i in range(0, len(xmp), 255))
    return gif[:at] + b"\x21\xff\x0bXMP DataXMP" + blocks + b"\x00" + gif[at:]


def test_gif_comment_and_application_extensions_are_gone(photo: Image.Image) -> None:
    frames = [photo.convert("P"), photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).convert("P")]
    gif = _encode(
        frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0, comment=f"by {NAME}".encode()
    )
    data = _gif_with_xmp_application_block(gif, f"<x:xmpmeta>{NAME} XMP</x:xmpmeta>".encode())
    assert b"NETSCAPE2.0" in data and b"XMP DataXMP" in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    _absent(clean.data, NAME, "NETSCAPE", "XMP Data")
    assert clean.format == "png"
    assert numpy.array_equal(
        decode(clean.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


# --- hostile files --------------------------------------------------------------------------------


def test_jpeg_with_a_second_jpeg_after_eoi_loses_it(photo: Image.Image) -> None:
    first = _encode(photo, "JPEG")
    second = _encode(photo.crop((0, 0, 30, 30)), "JPEG", comment=f"hidden {NAME}".encode())

    clean = sanitise(first + second, max_pixels=MAX_PIXELS)

    assert clean.data.count(b"\xff\xd8") == 1 and clean.data.endswith(b"\xff\xd9")
    _absent(clean.data, NAME)
    assert _scan_bytes(clean.data) == _scan_bytes(first)


def test_mpo_whose_second_frame_differs_is_published_as_its_first_frame_only(photo: Image.Image) -> None:
    second = Image.new("RGB", photo.size, (0, 255, 0))
    buffer = BytesIO()
    photo.save(buffer, "MPO", save_all=True, append_images=[second])
    data = buffer.getvalue()
    assert data.count(b"MPF\x00") >= 1

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"MPF\x00" not in clean.data and clean.data.count(b"\xff\xd8") == 1
    with Image.open(BytesIO(clean.data)) as image:
        assert getattr(image, "n_frames", 1) == 1
    assert numpy.array_equal(
        decode(clean.data, max_pixels=MAX_PIXELS).pixels, decode(data, max_pixels=MAX_PIXELS).pixels
    )


def test_a_file_name_that_lies_about_the_type_changes_nothing(photo: Image.Image, tmp_path: Path) -> None:
    liar = tmp_path / "holiday.png"
    liar.write_bytes(_encode(photo, "JPEG"))
    text = tmp_path / "holiday.jpg"
    text.write_bytes(f"Dear parents, {NAME} ...\n".encode())

    assert sniff_format(liar.read_bytes()) == "jpeg"
    assert sanitise(liar.read_bytes(), max_pixels=MAX_PIXELS).format == "jpeg"
    with pytest.raises(UnsupportedMediaError, match="not an accepted image format"):
        sanitise(text.read_bytes(), max_pixels=MAX_PIXELS)


@pytest.mark.parametrize("build", ["zip_appended", "zip_with_jpeg_prefix"])
def test_jpeg_zip_polyglot_loses_the_archive(build: str, photo: Image.Image, tmp_path: Path) -> None:
    jpeg = _encode(photo, "JPEG")
    path = tmp_path / "poly.jpg"
    if build == "zip_appended":
        archive = BytesIO()
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("pupils.txt", f"{NAME}, Year 4")
        data = jpeg + archive.getvalue()
    else:
        # Opened in append mode, zipfile writes its offsets relative to the start of the JPEG.
        path.write_bytes(jpeg)
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr("pupils.txt", f"{NAME}, Year 4")
        data = path.read_bytes()
    assert zipfile.is_zipfile(BytesIO(data))

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert not zipfile.is_zipfile(BytesIO(clean.data))
    assert b"PK\x03\x04" not in clean.data and b"PK\x05\x06" not in clean.data
    _absent(clean.data, NAME, "pupils.txt")
    assert clean.data == sanitise(jpeg, max_pixels=MAX_PIXELS).data


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_the_source_file_name_never_reaches_the_output(
    fmt: str, photo: Image.Image, exiftool: str, tmp_path: Path
) -> None:
    name = "Jane_Pupil_Smith_sports_day_2026"
    path = tmp_path / f"{name}.{fmt.lower()}"
    path.write_bytes(_encode(photo, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    args = [f"-XMP-dc:Title={name}", f"-XMP-xmpMM:PreservedFileName={name}.jpg"]
    if fmt == "JPEG":
        args += [f"-IFD0:DocumentName={name}", f"-IPTC:ObjectName={name}"]
    data = _exiftool_write(exiftool, path, *args)
    assert name.encode() in data

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    _absent(clean.data, name, "Jane_Pupil")
