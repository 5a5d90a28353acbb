"""Round trips over every real photo of the corpus, checked by an independent reader (ExifTool)."""

from __future__ import annotations

import json
import os
import subprocess
from io import BytesIO
from pathlib import Path

import numpy
import pytest
from PIL import Image, ImageCms

from gatekeeper.media import decode, decode_source, sanitise, verify_clean
from gatekeeper.media.icc import is_standard

MAX_PIXELS = 50_000_000
_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff"}
# ExifTool family-1 groups a clean copy may show: file facts, colour and image structure only.
_ALLOWED_GROUPS = {
    "System",
    "File",
    "ExifTool",
    "Composite",
    "JFIF",
    "IFD0",
    "Adobe",
    "ICC-header",
    "ICC_Profile",
    "ICC-meas",
    "ICC-view",
    "ICC-chrm",
    "PNG",
    "RIFF",
}
_FORBIDDEN_GROUPS = ("GPS", "IFD1", "IPTC", "XMP", "MakerNotes", "Photoshop", "MPF", "ExifIFD", "Ducky")


def _corpus_root() -> Path | None:
    # Mirrors tests/conftest.py so files can be listed at collection time; the `corpus`
    # fixture still decides whether the corpus is present (skip on a laptop, fail in CI).
    candidates = [Path(os.environ["GATEKEEPER_CORPUS"])] if os.environ.get("GATEKEEPER_CORPUS") else []
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "corpus")
    return next((path for path in candidates if (path / "faces" / "manifest.csv").is_file()), None)


def _corpus_photos(*suffixes: str) -> list[str]:
    root = _corpus_root()
    if root is None:
        return ["(corpus missing)"]
    wanted = set(suffixes) or _SUFFIXES
    return sorted(
        str(path.relative_to(root))
        for folder in ("metadata", "faces")
        for path in (root / folder).rglob("*")
        if path.suffix.lower() in wanted
    )


def _exiftool_tags(exiftool: str, path: Path) -> dict[str, object]:
    result = subprocess.run(
        [exiftool, "-j", "-a", "-G1", "-s", "-ee", "-n", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    tags: dict[str, object] = json.loads(result.stdout)[0]
    tags.pop("SourceFile")
    return tags


def _is_allowed(key: str) -> bool:
    """Whether a tag ExifTool reports may appear in a clean copy."""
    group, name = key.split(":", 1)
    if group not in _ALLOWED_GROUPS or group.startswith(_FORBIDDEN_GROUPS):
        return False
    if name.startswith("GPS") or "Thumbnail" in name or "Comment" in name:
        return False
    # In IFD0 only the orientation; from ExifTool itself, a Warning usually means trailing data.
    return {"IFD0": name == "Orientation", "ExifTool": name == "ExifToolVersion"}.get(group, True)


@pytest.mark.parametrize("relpath", _corpus_photos())
def test_clean_copy_of_every_corpus_photo_shows_no_identifying_metadata_to_exiftool(
    relpath: str, corpus, exiftool: str, tmp_path: Path
) -> None:
    data = (corpus.root / relpath).read_bytes()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    out = tmp_path / f"clean{clean.extension}"
    out.write_bytes(clean.data)
    tags = _exiftool_tags(exiftool, out)
    assert [key for key in tags if not _is_allowed(key)] == []
    assert tags["File:MIMEType"] == clean.media_type
    verify_clean(clean.data)


def _srgb_reference(data: bytes) -> numpy.ndarray:
    """The source's upright pixels converted to sRGB by LittleCMS's own built-in sRGB profile."""
    source = decode_source(data, max_pixels=MAX_PIXELS)
    assert source.icc_profile is not None
    converted = ImageCms.profileToProfile(
        Image.fromarray(source.image.pixels),
        ImageCms.ImageCmsProfile(BytesIO(source.icc_profile)),
        ImageCms.createProfile("sRGB"),
        outputMode="RGB",
    )
    assert converted is not None
    return numpy.asarray(converted)


def _non_standard_profile_photos() -> list[str]:
    root = _corpus_root()
    if root is None:
        return ["(corpus missing)"]
    found = []
    for relpath in _corpus_photos(".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff"):
        with Image.open(root / relpath) as image:
            profile = image.info.get("icc_profile")
        if profile and not is_standard(profile):
            found.append(relpath)
    return found


@pytest.mark.parametrize("relpath", _non_standard_profile_photos())
def test_a_non_standard_profile_is_converted_to_srgb_with_the_right_colour(relpath: str, corpus) -> None:
    data = (corpus.root / relpath).read_bytes()
    reference = _srgb_reference(data)

    clean = sanitise(data, max_pixels=MAX_PIXELS, jpeg_quality=95)

    assert not clean.lossless
    republished = decode_source(clean.data, max_pixels=MAX_PIXELS)
    assert republished.image.pixels.shape == reference.shape
    # Mean colour per channel within 1.5 levels of LittleCMS's own conversion: the profile was
    # applied (the Apple/ProPhoto profiles here shift means by 5-30 levels when ignored).
    means = republished.image.pixels.reshape(-1, 3).mean(axis=0)
    assert numpy.abs(means - reference.reshape(-1, 3).mean(axis=0)).max() < 1.5
    assert republished.icc_profile is not None and is_standard(republished.icc_profile)


@pytest.mark.parametrize(
    "relpath",
    [p for p in _corpus_photos(".jpg", ".jpeg", ".png", ".webp") if p not in _non_standard_profile_photos()],
)
def test_clean_copy_of_a_web_format_is_lossless_and_decodes_to_the_same_pixels(relpath: str, corpus) -> None:
    data = (corpus.root / relpath).read_bytes()
    original = decode(data, max_pixels=MAX_PIXELS)

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert clean.lossless
    assert clean.format == original.format
    assert len(clean.data) <= len(data)
    republished = decode(clean.data, max_pixels=MAX_PIXELS)
    assert republished.orientation == original.orientation
    assert numpy.array_equal(republished.pixels, original.pixels)


@pytest.mark.parametrize("relpath", _corpus_photos(".heic", ".heif", ".tif", ".tiff"))
def test_heic_and_tiff_are_published_as_upright_jpeg_of_the_same_size(relpath: str, corpus) -> None:
    data = (corpus.root / relpath).read_bytes()
    original = decode(data, max_pixels=MAX_PIXELS)

    clean = sanitise(data, max_pixels=MAX_PIXELS, jpeg_quality=90)

    assert (clean.format, clean.extension, clean.media_type, clean.lossless) == (
        "jpeg",
        ".jpg",
        "image/jpeg",
        False,
    )
    republished = decode(clean.data, max_pixels=MAX_PIXELS)
    assert republished.orientation == 1
    assert republished.pixels.shape == original.pixels.shape
    if not is_standard(decode_source(data, max_pixels=MAX_PIXELS).icc_profile):
        original = decode(data, max_pixels=MAX_PIXELS)
        original = type(original)(pixels=_srgb_reference(data), format=original.format, orientation=1)
    # Lossy re-encoding (chroma subsampled) of small graphics costs a few levels; a wrong
    # rotation or colour conversion costs tens.
    assert numpy.abs(republished.pixels.astype(int) - original.pixels).mean() < 8


def test_every_corpus_photo_decodes_to_the_size_the_manifest_records(corpus) -> None:
    for row in corpus.metadata():
        image = decode((corpus.metadata_dir / row["file"]).read_bytes(), max_pixels=MAX_PIXELS)
        stored = (int(row["width"]), int(row["height"]))
        upright = stored[::-1] if int(row["orientation"] or 1) >= 5 else stored
        assert (image.width, image.height) == upright, row["file"]
        assert image.pixels.dtype == numpy.uint8 and image.pixels.shape[2] == 3


def _mean_abs_diff(a: numpy.ndarray, b: numpy.ndarray) -> float:
    return float(numpy.abs(a.astype(int) - b.astype(int)).mean())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_each_exif_orientation_decodes_to_the_same_upright_image(orientation: int, corpus) -> None:
    folder = corpus.metadata_dir / "orientation"
    first = decode((folder / "landscape_1.jpg").read_bytes(), max_pixels=MAX_PIXELS).pixels
    second = decode((folder / "landscape_2.jpg").read_bytes(), max_pixels=MAX_PIXELS).pixels

    image = decode((folder / f"landscape_{orientation}.jpg").read_bytes(), max_pixels=MAX_PIXELS)

    assert image.orientation == orientation
    assert image.pixels.shape == first.shape
    # landscape_1 was exported without the ICC profile the others carry and is about 13 levels
    # brighter, so against it "the same" means far closer than any mirror or half turn.
    upright = _mean_abs_diff(image.pixels, first)
    mirrored = [_mean_abs_diff(image.pixels[::dy, ::dx], first) for dy, dx in ((1, -1), (-1, 1), (-1, -1))]
    assert upright < 20
    assert upright * 3 < min(mirrored)
    # landscape_2..8 are encodings of one export: equal up to compression noise.
    assert _mean_abs_diff(image.pixels, second) < (5 if orientation > 1 else 20)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_clean_jpeg_shows_upright_either_baked_in_or_by_its_only_exif_tag(
    orientation: int, corpus, exiftool: str, tmp_path: Path
) -> None:
    data = (corpus.metadata_dir / "orientation" / f"landscape_{orientation}.jpg").read_bytes()
    upright = decode(data, max_pixels=MAX_PIXELS).pixels

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    out = tmp_path / "clean.jpg"
    out.write_bytes(clean.data)
    tags = _exiftool_tags(exiftool, out)
    exif = [key for key in tags if key.startswith(("IFD", "ExifIFD", "GPS"))]
    with Image.open(BytesIO(clean.data)) as image:
        # What a viewer that ignores EXIF shows: the stored pixels.
        stored = numpy.asarray(image.convert("RGB"))
    if exif:
        assert exif == ["IFD0:Orientation"] and tags["IFD0:Orientation"] == orientation
    else:
        # Converted (these carry Apple's Generic RGB profile): the rotation is in the pixels.
        assert stored.shape == upright.shape
        assert _mean_abs_diff(stored, upright) * 3 < _mean_abs_diff(stored, upright[::-1, ::-1])


def test_clean_copy_of_a_photo_without_rotation_carries_no_exif_at_all(corpus) -> None:
    data = (corpus.metadata_dir / "canon_eos_40d.jpg").read_bytes()

    clean = sanitise(data, max_pixels=MAX_PIXELS)

    assert b"Exif\x00\x00" not in clean.data
    assert b"Canon" not in clean.data


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("metadata/nikon_d70s_gps_iptc_xmp.jpg", ("GPS", "IPTC", "XMP", "IFD1")),
        ("metadata/polyphony_gt5_mpf.jpg", ("MPF",)),
        ("metadata/bluesquare_xmp_iptc.jpg", ("Photoshop",)),
        ("metadata/exiftool_png_text_xmp.png", ("XMP",)),
    ],
)
def test_the_exiftool_check_does_flag_the_dirty_originals(
    relpath: str, expected: tuple[str, ...], corpus, exiftool: str
) -> None:
    # Guards the round-trip test against passing vacuously (say, if ExifTool's group names change).
    flagged = [key for key in _exiftool_tags(exiftool, corpus.root / relpath) if not _is_allowed(key)]

    for group in expected:
        assert any(key.startswith(group) for key in flagged), group
