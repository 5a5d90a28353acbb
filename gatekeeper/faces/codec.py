"""A face template as bytes, for storage: 128 float64 values, little-endian, 1024 bytes, sealed
with AES-256-GCM (`TemplateKeys`) so that the database holds no encoding in the clear.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gatekeeper.errors import FaceError
from gatekeeper.faces.resnet import ENCODING_SIZE

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Explicit byte order: a template written on one machine must read the same on any other.
_DTYPE = np.dtype("<f8")
ENCODING_BYTES = ENCODING_SIZE * _DTYPE.itemsize


def encoding_to_bytes(encoding: NDArray[np.float64]) -> bytes:
    """The encoding as 1024 little-endian float64 bytes; raises FaceError unless 128 finite numbers."""
    values = np.asarray(encoding)
    if values.shape != (ENCODING_SIZE,) or not np.issubdtype(values.dtype, np.floating):
        raise FaceError(f"an encoding must be {ENCODING_SIZE} floats (got {values.dtype} {values.shape})")
    if not np.isfinite(values).all():
        raise FaceError("an encoding must be finite numbers")
    return values.astype(_DTYPE).tobytes()


def encoding_from_bytes(data: bytes) -> NDArray[np.float64]:
    """The encoding stored by encoding_to_bytes; raises FaceError on a wrong length or non-finite value."""
    if len(data) != ENCODING_BYTES:
        raise FaceError(f"a stored encoding must be {ENCODING_BYTES} bytes (got {len(data)})")
    values = np.frombuffer(data, dtype=_DTYPE).astype(np.float64)
    if not np.isfinite(values).all():
        raise FaceError("a stored encoding holds a non-finite value")
    return values


# A sealed template: version, key id, nonce, then AES-256-GCM of the 1024 bytes above with its tag.
# The person's id is the associated data: a template copied onto another person's row fails to open.
_SEALED_V1 = b"\x01"
KEY_ID_BYTES = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16
SEALED_BYTES = 1 + KEY_ID_BYTES + _NONCE_BYTES + ENCODING_BYTES + _TAG_BYTES


def key_id(key: bytes) -> bytes:
    """The short public name of a key, stored with each template it sealed (never the key)."""
    return hashlib.sha256(b"gatekeeper template key\0" + key).digest()[:KEY_ID_BYTES]


class TemplateKeys:
    """The keys templates are sealed with: the first seals, every one of them opens."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) != 32 for k in keys):
            raise FaceError("template keys must be one or more 32-byte AES keys")
        self.keys = tuple(keys)
        self._by_id = {key_id(k): AESGCM(k) for k in reversed(self.keys)}
        self.current_id = key_id(self.keys[0])

    def seal(self, encoding: NDArray[np.float64], person_id: int) -> bytes:
        """The encoding of `person_id`, encrypted with the first key; raises FaceError on a bad encoding."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._by_id[self.current_id].encrypt(nonce, encoding_to_bytes(encoding), _aad(person_id))
        return _SEALED_V1 + self.current_id + nonce + sealed

    def open(self, data: bytes, person_id: int) -> NDArray[np.float64]:
        """The encoding stored for `person_id`: sealed, or plain from before encryption.

        Raises FaceError when the key is not among these keys or the data or person id do not match.
        """
        if not is_sealed(data):
            return encoding_from_bytes(data)
        ident = data[1 : 1 + KEY_ID_BYTES]
        cipher = self._by_id.get(ident)
        if cipher is None:
            raise FaceError("a face template is sealed with a key that is not configured")
        nonce = data[1 + KEY_ID_BYTES : 1 + KEY_ID_BYTES + _NONCE_BYTES]
        try:
            plain = cipher.decrypt(nonce, data[1 + KEY_ID_BYTES + _NONCE_BYTES :], _aad(person_id))
        except InvalidTag:
            raise FaceError("a face template does not open: altered, or stored for another person") from None
        return encoding_from_bytes(plain)

    def is_current(self, data: bytes) -> bool:
        """True when `data` is sealed with the first key (nothing to re-encrypt)."""
        return is_sealed(data) and data[1 : 1 + KEY_ID_BYTES] == self.current_id


def is_sealed(data: bytes) -> bool:
    """True for a sealed template, False for a plain one stored before templates were encrypted."""
    return len(data) == SEALED_BYTES and data[:1] == _SEALED_V1


def _aad(person_id: int) -> bytes:
    return f"gatekeeper face template of person {person_id}".encode()
