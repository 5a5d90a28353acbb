"""Matching a face encoding against every enrolled template at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from gatekeeper.errors import FaceError
from gatekeeper.faces.engine import ENCODING_SIZE

if TYPE_CHECKING:
    from numpy.typing import NDArray


@dataclass(frozen=True)
class Match:
    """A candidate person for a face and the Euclidean distance to their closest template."""

    key: str
    distance: float


class TemplateIndex:
    """All templates held in memory as one (n, 128) numpy matrix; matching is one vectorised op."""

    def __init__(self, keys: Sequence[str], encodings: NDArray[np.float64]) -> None:
        """Index one key per row of encodings; raises FaceError on mismatched or non-finite input."""
        matrix = np.array(encodings, dtype=np.float64)  # a copy: callers cannot change it later
        if matrix.size == 0 and len(keys) == 0:
            matrix = matrix.reshape(0, ENCODING_SIZE)
        if matrix.ndim != 2 or matrix.shape[1] != ENCODING_SIZE:
            raise FaceError(f"templates must be an (n, {ENCODING_SIZE}) matrix (got shape {matrix.shape})")
        if matrix.shape[0] != len(keys):
            raise FaceError(f"{len(keys)} keys for {matrix.shape[0]} templates")
        if not np.isfinite(matrix).all():
            raise FaceError("templates must be finite numbers")
        if isinstance(keys, str) or not all(isinstance(key, str) for key in keys):
            raise FaceError("keys must be a sequence of strings, one per template")
        distinct, codes = np.unique(np.array(list(keys), dtype=str), return_inverse=True)
        codes = codes.reshape(-1)
        # Rows grouped by key so that the best distance per key is one minimum.reduceat.
        order = np.argsort(codes, kind="stable")
        self._matrix = matrix[order]
        self._matrix.flags.writeable = False
        self._keys: tuple[str, ...] = tuple(str(key) for key in distinct)
        self._starts = np.searchsorted(codes[order], np.arange(len(distinct)))

    @classmethod
    def empty(cls) -> TemplateIndex:
        """An index with no templates: every face is unknown."""
        return cls((), np.empty((0, ENCODING_SIZE), dtype=np.float64))

    def __len__(self) -> int:
        """The number of templates (rows), not of distinct people."""
        return int(self._matrix.shape[0])

    def best_matches(self, encoding: NDArray[np.float64], limit: int = 2) -> tuple[Match, ...]:
        """Best distance per distinct key, ascending, at most `limit`; raises FaceError on a bad encoding."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1 (got {limit})")
        probe = np.asarray(encoding, dtype=np.float64)
        if probe.shape != (ENCODING_SIZE,) or not np.isfinite(probe).all():
            raise FaceError(f"an encoding must be {ENCODING_SIZE} finite numbers (got shape {probe.shape})")
        if not self._keys:
            return ()
        distances = np.linalg.norm(self._matrix - probe, axis=1)
        per_key = np.minimum.reduceat(distances, self._starts)
        # Ties broken by key so the result never depends on insertion order.
        ranked = np.lexsort((np.arange(len(per_key)), per_key))[:limit]
        return tuple(Match(key=self._keys[i], distance=float(per_key[i])) for i in ranked)
