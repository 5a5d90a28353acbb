"""Round trip over every corpus photo: ExifTool sees only the allow-list, no identifying string survives.

Identifying strings are taken from ExifTool's reading of the INPUT and searched for in the output
bytes in ASCII and UTF-16 (both byte orders). Strings shorter than 5 characters are skipped: short
values ("N", "Sony", "2.2") occur by chance in compressed pixel data and would make the check
flaky without proving anything.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy
import pytest

from gatekeeper.media import decode, sanitise
from gatekeeper.media import jpeg as jpeg_format

MAX_PIXELS = 50_000_000
_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff"}
MIN_SCANNED = 5

# What a clean copy may show to ExifTool (-G1 group: tag names; "*" = any tag of the group).
ALLOWED: dict[str, frozenset[str] | str] = {
    "System": "*",  # the file system's facts about our temporary output file
    "ExifTool": frozenset({"ExifToolVersion"}),
    "File": frozenset(
        {"FileType", "FileTypeExtension", "MIMEType", "ImageWidth", "ImageHeight", "EncodingProcess"}
        | {"BitsPerSample", "ColorComponents", "YCbCrSubSampling", "ExifByteOrder"}
    ),
    "Composite": frozenset({"ImageSize", "Megapixels"}),
    "JFIF": frozenset({"JFIFVersion", "ResolutionUnit", "XResolution", "YResolution"}),
    "Adobe": frozenset({"DCTEncodeVersion", "APP14Flags0", "APP14Flags1", "ColorTransform"}),
    "IFD0": frozenset({"Orientation"}),
    "PNG": frozenset(
        {"ImageWidth", "ImageHeight", "BitDepth", "ColorType", "Compression", "Filter", "Interlace"}
        | {"ProfileName", "SRGBRendering", "Gamma", "WhitePointX", "WhitePointY", "RedX", "RedY"}
        | {"GreenX", "GreenY", "BlueX", "BlueY", "SignificantBits", "Palette", "Transparency"}
    ),
    "RIFF": frozenset(
        {"ImageWidth", "ImageHeight", "VP8Version", "HorizontalScale", "VerticalScale", "WebP_Flags"}
        | {"AlphaCompression", "AlphaFiltering", "AlphaPreprocessing"}
    ),
    # The header of our rebuilt profile: every field neutral (checked by value below).
    "ICC-header": frozenset(
        {"ProfileCMMType", "ProfileVersion", "ProfileClass", "ColorSpaceData", "ProfileConnectionSpace"}
        | {"ProfileDateTime", "ProfileFileSignature", "PrimaryPlatform", "CMMFlags", "DeviceManufacturer"}
        | {
            "DeviceModel",
            "DeviceAttributes",
            "RenderingIntent",
            "ConnectionSpaceIlluminant",
            "ProfileCreator",
        }
        | {"ProfileID"}
    ),
    "ICC_Profile": frozenset(
        {"ProfileDescription", "MediaWhitePoint", "RedMatrixColumn", "GreenMatrixColumn", "BlueMatrixColumn"}
        | {"RedTRC", "GreenTRC", "BlueTRC"}
    ),
}
_NEUTRAL_ICC = {
    "ICC_Profile:ProfileDescription": {"sRGB", "Display P3", "Adobe RGB (1998)"},
    "ICC-header:DeviceManufacturer": {"", 0, "0"},
    "ICC-header:DeviceModel": {"", 0, "0"},
    "ICC-header:ProfileCreator": {"", 0, "0"},
    "ICC-header:ProfileCMMType": {"", 0, "0"},
}
# Tags of the INPUT whose values identify a person, a device or a place.
IDENTIFYING = (
    "Artist", "By-line", "Creator", "Copyright", "CopyrightNotice", "Rights", "Credit", "OwnerName",
    "CameraOwnerName", "Caption-Abstract", "ImageDescription", "Description", "XPAuthor", "XPComment",
    "XPKeywords", "XPSubject", "XPTitle", "UserComment", "SerialNumber", "InternalSerialNumber",
    "LensSerialNumber", "Make", "Model", "Software", "PersonInImage", "RegionName", "Keywords",
    "Headline", "City", "Country", "Sub-location", "Province-State", "ObjectName", "Title",
    "DocumentName", "HostComputer", "LensModel", "Source", "Contact", "Writer-Editor",
)  # fmt: skip


def _photos(root: Path) -> list[Path]:
    return sorted(
        p
        for folder in ("metadata", "faces")
        for p in (root / folder).rglob("*")
        if p.suffix.lower() in _SUFFIXES
    )


def _exiftool(exiftool: str, paths: list[Path], *extra: str) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [exiftool, "-j", "-a", "-G1", "-s", "-ee", *extra, *map(str, paths)], capture_output=True, text=True
    ).stdout
    return {Path(d.pop("SourceFile")).name: d for d in json.loads(out)}


@pytest.fixture(scope="module")
def round_trip(
    corpus, exiftool: str, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[Path, Path, Any]]:
    out_dir = tmp_path_factory.mktemp("clean")
    results = []
    for index, path in enumerate(_photos(corpus.root)):
        clean = sanitise(path.read_bytes(), max_pixels=MAX_PIXELS)
        out = out_dir / f"{index:03d}{clean.extension}"
        out.write_bytes(clean.data)
        results.append((path, out, clean))
    return results


def _is_allowed(key: str) -> bool:
    group, _, name = key.partition(":")
    allowed = ALLOWED.get(group)
    return allowed == "*" or (isinstance(allowed, frozenset) and name in allowed)


def test_exiftool_sees_only_allow_listed_tags_in_every_clean_copy(round_trip, exiftool: str) -> None:
    read = _exiftool(exiftool, [out for _, out, _ in round_trip])
    residue = {}
    for source, out, _ in round_trip:
        tags = read[out.name]
        bad = [k for k in tags if not _is_allowed(k)]
        bad += [f"{k}={tags[k]!r}" for k, ok in _NEUTRAL_ICC.items() if k in tags and tags[k] not in ok]
        if bad:
            residue[str(source.relative_to(source.parents[1]))] = bad
    assert residue == {}
    assert len(round_trip) >= 60


def _identifying_strings(tags: dict[str, Any]) -> set[str]:
    found = set()
    for key, value in tags.items():
        name = key.partition(":")[2]
        if name in IDENTIFYING or name.startswith("GPS"):
            for item in value if isinstance(value, list) else [value]:
                text = str(item).strip()
                if len(text) >= MIN_SCANNED:
                    found.add(text)
    return found


def test_no_identifying_string_of_the_input_survives_in_the_output_bytes(round_trip, exiftool: str) -> None:
    inputs = [source for source, _, _ in round_trip]
    printed, raw = _exiftool(exiftool, inputs), _exiftool(exiftool, inputs, "-n")
    leaks = {}
    scanned = 0
    for source, out, _ in round_trip:
        strings = _identifying_strings(printed[source.name]) | _identifying_strings(raw[source.name])
        data = out.read_bytes()
        scanned += len(strings)
        hits = [
            s
            for s in strings
            for enc in ("utf-8", "utf-16-le", "utf-16-be")
            if s.encode(enc, "ignore") in data
        ]
        if hits:
            leaks[source.name] = hits
    assert leaks == {}
    assert scanned > 200  # the corpus is rich in names: the scan is not vacuous


def test_jpeg_pixels_and_scan_bytes_are_identical_where_no_pixel_changes(round_trip) -> None:
    lossless = 0
    for source, out, clean in round_trip:
        if clean.format != "jpeg" or not clean.lossless:
            continue
        lossless += 1
        data, copy = source.read_bytes(), out.read_bytes()
        segments, end = jpeg_format.walk(data, strict=False)
        clean_segments, clean_end = jpeg_format.walk(copy, strict=False)
        first = next(s for s in segments if s.marker == jpeg_format.SOS)
        clean_first = next(s for s in clean_segments if s.marker == jpeg_format.SOS)
        assert data[first.start : end] == copy[clean_first.start : clean_end], source.name
        assert numpy.array_equal(
            decode(data, max_pixels=MAX_PIXELS).pixels, decode(copy, max_pixels=MAX_PIXELS).pixels
        ), source.name
    assert lossless >= 30
