"""Fixtures for the face tests: one engine per module and an upright RGB decoder for corpus files."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from occlusions import OCCLUSIONS
from PIL import Image, ImageOps

from gatekeeper.faces import DlibFaceEngine

MIN_FACE_PX = 40


def decode_rgb(path: Path) -> np.ndarray:
    """Decode a file upright as HxWx3 uint8 RGB, independently of gatekeeper.media."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.fixture(scope="module")
def engine() -> DlibFaceEngine:
    """The dlib engine at its default settings (models load once per process)."""
    return DlibFaceEngine(min_face_px=MIN_FACE_PX, time_limit_s=600.0)


@pytest.fixture(scope="session")
def load_rgb() -> Callable[[Path], np.ndarray]:
    """The test decoder, as a fixture so test modules need not import conftest."""
    return decode_rgb


Box = tuple[int, int, int, int]


def face_crop(pixels: np.ndarray, box: Box, face_px: int) -> np.ndarray:
    """The face at `box` with half a face of context around it, resized so the face is face_px wide."""
    left, top, right, bottom = box
    margin = (right - left) // 2
    height, width = pixels.shape[:2]
    crop = pixels[
        max(top - margin, 0) : min(bottom + margin, height),
        max(left - margin, 0) : min(right + margin, width),
    ]
    factor = face_px / (right - left)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize(size, Image.Resampling.LANCZOS))


def crowd_montage(corpus, sizes: list[int]) -> tuple[np.ndarray, list[Box]]:
    """A grid of real corpus faces, one per size (cycling through the photos), and their boxes.

    Built in memory from corpus/faces; nothing is written. Boxes are the manifest boxes scaled.
    """
    sources = [(entry.path, box) for entry in corpus.faces() for box in entry.boxes]
    cell = 2 * max(sizes) + 8
    columns = math.ceil(math.sqrt(len(sizes)))
    rows = math.ceil(len(sizes) / columns)
    canvas = np.full((rows * cell, columns * cell, 3), 128, dtype=np.uint8)
    boxes: list[Box] = []
    decoded: dict[Path, np.ndarray] = {}
    for i, face_px in enumerate(sizes):
        path, box = sources[i % len(sources)]
        if path not in decoded:
            decoded[path] = decode_rgb(path)
        pixels = decoded[path]
        crop = face_crop(pixels, box, face_px)[: cell - 8, : cell - 8]
        factor = face_px / (box[2] - box[0])
        # Where the face lands inside the crop (the crop may be cut by the photo's border).
        margin = (box[2] - box[0]) // 2
        off_x = (box[0] - max(box[0] - margin, 0)) * factor
        off_y = (box[1] - max(box[1] - margin, 0)) * factor
        x, y = (i % columns) * cell + 4, (i // columns) * cell + 4
        canvas[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
        boxes.append(
            (
                round(x + off_x),
                round(y + off_y),
                round(x + off_x + face_px),
                round(y + off_y + (box[3] - box[1]) * factor),
            )
        )
    return canvas, boxes


@pytest.fixture(scope="session")
def montage() -> Callable[..., tuple[np.ndarray, list[Box]]]:
    """The crowd montage builder, as a fixture so test modules need not import conftest."""
    return crowd_montage


def turned_face(pixels: np.ndarray, box: Box, face_px: int, angle: float) -> np.ndarray:
    """The face at `box` with context, face_px wide, turned counter-clockwise by `angle` on grey."""
    crop = Image.fromarray(face_crop(pixels, box, face_px))
    return np.asarray(
        crop.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=(128, 128, 128))
    )


def scene(parts: list[np.ndarray], gap: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The parts side by side on grey, `gap` px apart and around; each part's centre."""
    height = max(p.shape[0] for p in parts) + 2 * gap
    width = sum(p.shape[1] for p in parts) + gap * (len(parts) + 1)
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    centres = []
    x = gap
    for part in parts:
        y = (height - part.shape[0]) // 2
        canvas[y : y + part.shape[0], x : x + part.shape[1]] = part
        centres.append((x + part.shape[1] / 2, y + part.shape[0] / 2))
        x += part.shape[1] + gap
    return canvas, centres


@pytest.fixture(scope="session")
def turned_scene(corpus) -> Callable[..., tuple[np.ndarray, list[tuple[float, float]]]]:
    """Builds a scene of an upright biden face and obama (then kit_harington) faces turned by angles.

    Returns the pixels and the centres: the upright face's first, then each turned face's.
    """
    faces = corpus.faces_dir
    sources = {
        "biden": (decode_rgb(faces / "biden" / "biden.jpg"), (433, 230, 741, 537)),
        "obama": (decode_rgb(faces / "obama" / "obama.jpg"), (349, 142, 617, 409)),
        "kit": (decode_rgb(faces / "kit_harington" / "kit_harington_john2.jpeg"), (283, 98, 469, 284)),
    }

    def build(face_px: int, *angles: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
        upright = turned_face(*sources["biden"], face_px, 0)
        turned = [
            turned_face(*sources[name], face_px, angle)
            for name, angle in zip(("obama", "kit"), angles, strict=False)
        ]
        return scene([upright, *turned], face_px // 2)

    return build


# --- faces as a camera at a school event sees them: occluded, blurred, dim ----------------------


FACE_SOURCES = {
    "biden": ("biden/biden.jpg", (433, 230, 741, 537)),
    "obama": ("obama/obama.jpg", (349, 142, 617, 409)),
}


def crop_and_box(pixels: np.ndarray, box: Box, face_px: int) -> tuple[np.ndarray, Box]:
    """face_crop's crop and where the face's box lands in it."""
    left, top, right, bottom = box
    margin = (right - left) // 2
    crop = face_crop(pixels, box, face_px)
    factor = face_px / (right - left)
    x, y = (left - max(left - margin, 0)) * factor, (top - max(top - margin, 0)) * factor
    return crop, (round(x), round(y), round(x + face_px), round(y + (bottom - top) * factor))


@pytest.fixture(scope="session")
def occluded_scene(corpus) -> Callable[..., np.ndarray]:
    """Builds a scene: biden upright (when `with_biden`) beside a face with an occlusion, turned.

    `face` names the occluded person (obama: a stranger; biden: the consented person alone).
    """
    decoded = {name: decode_rgb(corpus.faces_dir / path) for name, (path, _) in FACE_SOURCES.items()}

    def build(face: str, occlusion: str, face_px: int, angle: int, *, with_biden: bool) -> np.ndarray:
        crop, box = crop_and_box(decoded[face], FACE_SOURCES[face][1], face_px)
        hidden = Image.fromarray(OCCLUSIONS[occlusion](crop, box))
        turned = np.asarray(hidden.rotate(angle, expand=True, fillcolor=(128, 128, 128)))
        parts = [turned]
        if with_biden:
            parts.insert(0, face_crop(decoded["biden"], FACE_SOURCES["biden"][1], face_px))
        pixels, _ = scene(parts, face_px // 2)
        return pixels

    return build
