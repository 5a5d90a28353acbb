"""Templates as bytes: exact round trip, fixed little-endian layout, wrong input refused."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from gatekeeper.errors import FaceError
from gatekeeper.faces import encoding_from_bytes, encoding_to_bytes


def test_encoding_round_trips_exactly_through_1024_bytes():
    encoding = np.random.default_rng(7).normal(scale=0.1, size=128)

    data = encoding_to_bytes(encoding)

    assert len(data) == 1024
    assert np.array_equal(encoding_from_bytes(data), encoding)
    assert encoding_from_bytes(data).dtype == np.float64


def test_bytes_are_little_endian_float64_whatever_the_input_byte_order():
    encoding = np.arange(128, dtype=">f8")

    data = encoding_to_bytes(encoding)

    assert struct.unpack("<3d", data[:24]) == (0.0, 1.0, 2.0)


@pytest.mark.parametrize("length", [0, 512, 1023, 1025, 2048])
def test_stored_bytes_of_the_wrong_length_are_refused(length):
    with pytest.raises(FaceError):
        encoding_from_bytes(b"\x00" * length)


def test_stored_bytes_holding_nan_are_refused():
    with pytest.raises(FaceError):
        encoding_from_bytes(struct.pack("<d", float("nan")) + b"\x00" * 1016)


@pytest.mark.parametrize(
    "encoding",
    [np.zeros(127), np.zeros((2, 64)), np.zeros(128, dtype=np.int64), np.full(128, np.nan)],
    ids=["short", "two-d", "integers", "nan"],
)
def test_an_encoding_that_is_not_128_finite_floats_is_not_stored(encoding):
    with pytest.raises(FaceError):
        encoding_to_bytes(encoding)
