"""Copies for channels with a largest size: decoded at that size, upright, colour kept, clean.

Real camera files from the corpus; the reference is an independent full decode (Pillow with
exif_transpose) resized with Lanczos.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy
import pillow_heif
import pytest
from PIL import Image, ImageOps

from gatekeeper.media import decode_source, output_size, sanitise
from gatekeeper.media.icc import is_standard

MAX_PIXELS = 50_000_000
# The independent reference decoder reads HEIF through pillow-heif's own opener.
pillow_heif.register_heif_opener()


def reference(path: Path, size: tuple[int, int]) -> numpy.ndarray:
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    return numpy.asarray(upright.resize(size, Image.Resampling.LANCZOS), dtype=numpy.int16)


@pytest.mark.parametrize(
    ("width", "height", "edge", "expected"),
    [
        (4032, 2012, 2048, (2048, 1022)),
        (2012, 4032, 2048, (1022, 2048)),
        (2048, 1536, 2048, (2048, 1536)),  # exactly the size: unchanged
        (1000, 800, 2048, (1000, 800)),  # smaller: never enlarged
        (6000, 4000, None, (6000, 4000)),  # no limit: full size
        (9000, 10, 2048, (2048, 2)),
        (10, 9000, 256, (1, 256)),  # never below one pixel
    ],
)
def test_output_size_fits_the_long_edge_and_keeps_the_shape(width, height, edge, expected):
    assert output_size(width, height, edge) == expected


@pytest.mark.parametrize(
    ("relpath", "edge"),
    [
        ("metadata/samsung_sm_g930f_gps.jpg", 2048),  # 4032x2012 phone photo
        ("metadata/apple_iphone6_gps.jpg", 1024),
        ("metadata/canon_powershot_sx60hs_orient6_iptc.jpg", 1024),  # stored sideways, EXIF 6
        ("metadata/hmd_nokia83_gps.heif", 2048),
        ("faces/group/obama_and_biden.jpg", 800),
    ],
)
def test_a_photo_larger_than_the_channel_decodes_upright_at_the_channel_size(corpus, relpath, edge):
    path = corpus.root / relpath
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).size

    source = decode_source(path.read_bytes(), max_pixels=MAX_PIXELS, long_edge=edge)

    size = output_size(*upright, edge)
    assert source.full_size == upright
    assert (source.image.pixels.shape[1], source.image.pixels.shape[0]) == size
    assert source.scale == pytest.approx(size[0] / upright[0])
    # The same picture as a full decode resized: DCT scaling costs at most a little sharpness.
    diff = numpy.abs(source.image.pixels.astype(numpy.int16) - reference(path, size)).mean()
    assert diff < 3.0, diff


def test_a_photo_within_the_channel_size_is_decoded_whole_and_stays_lossless(corpus):
    data = (corpus.root / "metadata/samsung_sm_g930f_gps.jpg").read_bytes()

    source = decode_source(data, max_pixels=MAX_PIXELS, long_edge=4032)
    clean = sanitise(data, max_pixels=MAX_PIXELS, source=source)

    assert source.full_size is None and source.scale == 1.0
    assert clean.lossless


@pytest.mark.parametrize(
    "relpath",
    [
        "metadata/samsung_sm_g930f_gps.jpg",
        "metadata/canon_powershot_sx60hs_orient6_iptc.jpg",
        "metadata/apple_iphone11promax_gps.heic",
        "faces/alex_lacamoire/alex_lacamoire_knn_test1.jpg",  # IPTC names, a colour profile
    ],
)
def test_a_downscaled_clean_copy_is_upright_clean_and_keeps_a_standard_colour_profile(
    corpus, exiftool, relpath, tmp_path
):
    path = corpus.root / relpath
    data = path.read_bytes()
    source = decode_source(data, max_pixels=MAX_PIXELS, long_edge=600)

    clean = sanitise(data, max_pixels=MAX_PIXELS, source=source)

    assert not clean.lossless
    with Image.open(io.BytesIO(clean.data)) as copy:
        assert max(copy.size) == 600 and copy.size == source.image.pixels.shape[1::-1]
        assert copy.getexif().get(0x0112, 1) == 1  # upright pixels, no orientation needed
        profile = copy.info.get("icc_profile")
        pixels = numpy.asarray(copy.convert("RGB"), dtype=numpy.int16)
    if source.icc_profile and is_standard(source.icc_profile):
        assert profile is not None and is_standard(profile)
    assert numpy.abs(pixels - source.image.pixels.astype(numpy.int16)).mean() < 3.0
    out = tmp_path / f"clean{clean.extension}"
    out.write_bytes(clean.data)
    tags = json.loads(
        subprocess.run(
            [exiftool, "-j", "-a", "-G1", "-s", str(out)], capture_output=True, text=True, check=True
        ).stdout
    )[0]
    leaked = [
        k
        for k in tags
        if k.split(":")[0] in ("GPS", "IFD1", "IPTC", "XMP", "ExifIFD", "MakerNotes", "Photoshop")
    ]
    assert leaked == []


def test_a_long_edge_below_one_pixel_is_refused(corpus):
    with pytest.raises(ValueError):
        decode_source(
            (corpus.root / "metadata/samsung_sm_g930f_gps.jpg").read_bytes(),
            max_pixels=MAX_PIXELS,
            long_edge=0,
        )
