"""Templates as bytes: exact round trip, fixed little-endian layout, wrong input refused; sealed at rest."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from gatekeeper.errors import FaceError
from gatekeeper.faces import encoding_from_bytes, encoding_to_bytes
from gatekeeper.faces.codec import SEALED_BYTES, TemplateKeys, is_sealed


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


# --- sealed templates (AES-256-GCM, the person's id as associated data) --------------------------

KEY_A, KEY_B = bytes(range(32)), bytes(range(32, 64))


def _float_runs(encoding: np.ndarray) -> list[bytes]:
    return [struct.pack("<d", value) for value in encoding]


def test_a_sealed_template_holds_no_float64_of_the_encoding_and_opens_for_its_person_only():
    encoding = np.random.default_rng(3).normal(scale=0.1, size=128)
    keys = TemplateKeys([KEY_A])

    sealed = keys.seal(encoding, 41)

    assert is_sealed(sealed) and len(sealed) == SEALED_BYTES
    assert [run for run in _float_runs(encoding) if run in sealed] == []
    assert np.array_equal(keys.open(sealed, 41), encoding)
    with pytest.raises(FaceError, match="another person"):
        keys.open(sealed, 42)
    # Sealing twice gives different bytes (a fresh nonce each time).
    assert keys.seal(encoding, 41) != sealed


def test_a_sealed_template_altered_by_one_bit_does_not_open():
    keys = TemplateKeys([KEY_A])
    sealed = bytearray(keys.seal(np.zeros(128), 7))
    sealed[40] ^= 1
    with pytest.raises(FaceError):
        keys.open(bytes(sealed), 7)


def test_the_first_key_seals_and_every_key_opens():
    encoding = np.linspace(-0.2, 0.2, 128)
    old = TemplateKeys([KEY_A]).seal(encoding, 5)
    rotated = TemplateKeys([KEY_B, KEY_A])

    assert np.array_equal(rotated.open(old, 5), encoding)
    assert not rotated.is_current(old)
    assert rotated.is_current(rotated.seal(encoding, 5))
    with pytest.raises(FaceError, match="not configured"):
        TemplateKeys([KEY_B]).open(old, 5)


def test_a_template_stored_in_the_clear_before_encryption_still_opens():
    encoding = np.linspace(-0.1, 0.1, 128)
    plain = encoding_to_bytes(encoding)
    keys = TemplateKeys([KEY_A])
    assert not is_sealed(plain) and not keys.is_current(plain)
    assert np.array_equal(keys.open(plain, 1), encoding)


@pytest.mark.parametrize("keys", [[], [b"short"], [KEY_A, b"\x00" * 31]], ids=["none", "short", "one-short"])
def test_keys_must_be_32_bytes(keys):
    with pytest.raises(FaceError):
        TemplateKeys(keys)
