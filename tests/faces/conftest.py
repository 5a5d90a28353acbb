"""Fixtures for the face tests: one engine per module and an upright RGB decoder for corpus files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
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
    return DlibFaceEngine(min_face_px=MIN_FACE_PX)


@pytest.fixture(scope="session")
def load_rgb() -> Callable[[Path], np.ndarray]:
    """The test decoder, as a fixture so test modules need not import conftest."""
    return decode_rgb
