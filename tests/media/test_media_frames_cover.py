"""Frame-by-frame decoding for gating, and covering faces before publication."""

from __future__ import annotations

from io import BytesIO

import numpy
import pytest
from PIL import Image

from gatekeeper.errors import FrameLimitError
from gatekeeper.media import cover, decode, encode_clean, frames, sanitise, verify_clean
from gatekeeper.media.icc import DISPLAY_P3, SRGB

MAX_PIXELS = 50_000_000
_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def _saved(fmt: str, images: list[Image.Image], **options: object) -> bytes:
    buffer = BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:], **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options"), [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {}), ("MPO", {})]
)
def test_every_frame_of_a_multi_frame_file_is_decoded_upright(fmt: str, options: dict[str, object]) -> None:
    images = [Image.new("RGB", (40, 30), colour) for colour in _COLOURS]
    data = _saved(fmt, images, **options)

    decoded = frames(data, max_pixels=MAX_PIXELS)

    assert len(decoded) == 3
    for frame, colour in zip(decoded, _COLOURS, strict=True):
        assert frame.pixels.shape == (30, 40, 3)
        assert numpy.abs(frame.pixels.reshape(-1, 3).mean(axis=0) - colour).max() < 3
    # The published copy stays the first frame only.
    clean = sanitise(data, max_pixels=MAX_PIXELS)
    with Image.open(BytesIO(clean.data)) as image:
        assert getattr(image, "n_frames", 1) == 1
    assert (
        numpy.abs(
            decode(clean.data, max_pixels=MAX_PIXELS).pixels.reshape(-1, 3).mean(axis=0) - _COLOURS[0]
        ).max()
        < 3
    )


def test_a_still_image_is_one_frame(corpus) -> None:
    data = (corpus.metadata_dir / "orientation" / "landscape_6.jpg").read_bytes()

    decoded = frames(data, max_pixels=MAX_PIXELS)

    assert len(decoded) == 1
    assert numpy.array_equal(decoded[0].pixels, decode(data, max_pixels=MAX_PIXELS).pixels)


def test_too_many_frames_are_refused_before_decoding() -> None:
    images = [Image.new("RGB", (8, 8), (i, i, i)) for i in range(12)]
    data = _saved("GIF", images)

    with pytest.raises(FrameLimitError, match="12 frames; at most 10"):
        frames(data, max_pixels=MAX_PIXELS, max_frames=10)


def test_cover_fills_each_enlarged_box_and_nothing_else() -> None:
    pixels = numpy.full((100, 100, 3), 200, dtype=numpy.uint8)

    covered = cover(pixels, [(40, 40, 60, 60)], margin=0.5)

    assert (covered[30:70, 30:70] == 128).all()
    assert (covered[:29] == 200).all() and (covered[71:] == 200).all()
    assert (pixels == 200).all()  # the input is not changed


def test_cover_clips_to_the_image_and_refuses_bad_boxes() -> None:
    pixels = numpy.zeros((50, 50, 3), dtype=numpy.uint8)
    assert (cover(pixels, [(-10, -10, 10, 10)])[:16, :16] == 128).all()
    with pytest.raises(ValueError, match="empty or inverted"):
        cover(pixels, [(10, 10, 5, 20)])


def test_encode_clean_writes_a_verified_copy_with_a_standard_profile_only() -> None:
    pixels = numpy.full((20, 30, 3), 90, dtype=numpy.uint8)

    for fmt in ("jpeg", "png", "webp"):
        copy = encode_clean(pixels, fmt=fmt, icc_profile=DISPLAY_P3.profile)
        verify_clean(copy.data)
        assert copy.format == fmt and DISPLAY_P3.profile in _profile_of(copy.data)
    assert b"Exif" not in encode_clean(pixels).data
    with pytest.raises(ValueError):
        encode_clean(pixels, fmt="gif")


def _profile_of(data: bytes) -> bytes:
    with Image.open(BytesIO(data)) as image:
        return bytes(image.info.get("icc_profile") or b"")


def _faces(engine: object, pixels: numpy.ndarray) -> list[tuple[int, int, int, int]]:
    # The engine's return type is moving from a list to an object with `.faces`; accept both.
    result = engine.analyse(pixels)  # type: ignore[attr-defined]
    found = result.faces if hasattr(result, "faces") else result
    return [tuple(face.box) for face in found]


def test_covered_faces_are_not_found_again_by_dlib(corpus) -> None:
    from engines import RecordedFaceEngine

    # The dlib engine at its defaults (every angle), its answers recorded (tests/engines.py).
    engine = RecordedFaceEngine()
    for entry in (e for e in corpus.faces() if e.file.startswith("group/")):
        source = decode(entry.path.read_bytes(), max_pixels=MAX_PIXELS)
        assert len(_faces(engine, source.pixels)) >= len(entry.boxes)

        copy = encode_clean(cover(source.pixels, entry.boxes), jpeg_quality=90, icc_profile=SRGB.profile)

        republished = decode(copy.data, max_pixels=MAX_PIXELS).pixels
        for left, top, right, bottom in _faces(engine, republished):
            cx, cy = (left + right) / 2, (top + bottom) / 2
            for bl, bt, br, bb in entry.boxes:
                assert not (bl <= cx <= br and bt <= cy <= bb), (entry.file, (left, top, right, bottom))
