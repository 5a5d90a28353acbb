"""A face template as bytes, for storage: 128 float64 values, little-endian, 1024 bytes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
