"""The ResNet encoder run by numpy gives dlib's own encodings, and refuses any other model file.

dlib's `face_recognition_model_v1` (the same network on dlib's matrix code) is the reference: every
corpus face, aligned by the manifest box and dlib's 5-point predictor, must encode to within 1e-5 of
what dlib computes, so the thresholds calibrated on dlib's encodings hold.
"""

from __future__ import annotations

import math
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from gatekeeper.errors import FaceError
from gatekeeper.faces.resnet import CHIP_PADDING, CHIP_PX, ResNetEncoder

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import face_recognition_models as models
import dlib

MODEL = Path(models.face_recognition_model_location())


@pytest.fixture(scope="module")
def encoder() -> ResNetEncoder:
    return ResNetEncoder.load(MODEL)


@pytest.fixture(scope="module")
def corpus_chips(corpus, load_rgb) -> tuple[np.ndarray, np.ndarray]:
    """Every manifest face of the corpus as a dlib chip, and dlib's own encoding of it."""
    predictor = dlib.shape_predictor(models.pose_predictor_five_point_model_location())
    reference = dlib.face_recognition_model_v1(str(MODEL))
    chips, encodings = [], []
    for entry in corpus.faces():
        if not entry.boxes:
            continue
        pixels = load_rgb(entry.path)
        shapes = dlib.full_object_detections()
        for box in entry.boxes:
            shapes.append(predictor(pixels, dlib.rectangle(*box)))
        cut = dlib.get_face_chips(pixels, shapes, size=CHIP_PX, padding=CHIP_PADDING)
        chips += [np.asarray(c) for c in cut]
        encodings += [np.array(d) for d in reference.compute_face_descriptor(pixels, shapes, 1)]
    return np.stack(chips), np.stack(encodings)


def test_every_corpus_face_encodes_as_dlib_encodes_it(encoder, corpus_chips):
    chips, expected = corpus_chips

    got = encoder.encode(chips)

    assert len(chips) >= 25
    assert got.shape == expected.shape == (len(chips), 128) and got.dtype == np.float64
    # Same-person distances start at 0.039 and the bands are 0.1 wide: 1e-5 changes no verdict.
    assert np.linalg.norm(got - expected, axis=1).max() < 1e-5


def test_a_chips_encoding_does_not_depend_on_the_rest_of_its_batch(encoder, corpus_chips):
    chips, _ = corpus_chips
    together = encoder.encode(chips[:6])

    for i in range(6):
        assert np.array_equal(encoder.encode(chips[i : i + 1])[0], together[i])
    assert np.array_equal(encoder.encode(chips[3:6]), together[3:6])


@pytest.mark.parametrize(
    "chips",
    [
        np.zeros((1, 150, 150), dtype=np.uint8),
        np.zeros((1, 149, 150, 3), dtype=np.uint8),
        np.zeros((1, 150, 150, 3), dtype=np.float32),
        np.zeros((150, 150, 3), dtype=np.uint8),
    ],
)
def test_chips_of_another_shape_or_type_are_refused(encoder, chips):
    with pytest.raises(FaceError, match="150, 150, 3"):
        encoder.encode(chips)


# The input layer's 150 x 150, just before the first convolution's name.
INPUT_SIZE = b"\x01\x96\x01\x96\x01\x05con_4"


def _first_weight(data: bytes) -> int:
    """The offset of the first convolution's first weight (after its name and tensor header)."""
    at = data.index(b"\x05con_4") + len(b"\x05con_4")
    # version 2, then 4736 x 1 x 1 x 1 (32 filters of 3x7x7 and their biases)
    header = b"\x01\x02\x02\x80\x12\x01\x01\x01\x01\x01\x01"
    assert data[at : at + len(header)] == header
    return at + len(header)


def _changed(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) >= 1
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) // 2], "ends"),
        (lambda d: d[:-600_000], "ends inside a tensor"),
        (lambda d: _changed(d, b"input_rgb_image_sized", b"input_rgb_image_sizex"), "no input"),
        (lambda d: _changed(d, INPUT_SIZE, b"\x01\x97" + INPUT_SIZE[2:]), "input is not 150x150"),
        (lambda d: _changed(d, b"\x01\x05relu_", b"\x01\x05relx_"), r"layer 3 is \('max_pool'"),
        (lambda d: _changed(d, b"\x01\x09add_prev_", b"\x01\x09add_next_"), r"expected \('add_prev',\)"),
        (
            lambda d: d[: _first_weight(d)] + struct.pack("<f", math.nan) + d[_first_weight(d) + 4 :],
            "not a finite number",
        ),
    ],
    ids=["half", "cut-in-fc", "no-input", "input-151", "missing-relu", "missing-add", "nan-weight"],
)
def test_a_damaged_or_different_model_file_is_refused(tmp_path, damage, message):
    path = tmp_path / "model.dat"
    path.write_bytes(damage(MODEL.read_bytes()))

    with pytest.raises(FaceError, match=message):
        ResNetEncoder.load(path)


def test_a_missing_model_file_is_refused(tmp_path):
    with pytest.raises(FaceError, match="cannot read"):
        ResNetEncoder.load(tmp_path / "absent.dat")
