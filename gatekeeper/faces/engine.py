"""Face detection and encoding: the FaceEngine interface and its dlib implementation.

Encodings live only in memory here. Nothing in this module stores them; the caller decides, and
only an enrolment template of a person with biometric consent is ever kept (DESIGN §2).

Detection (docs/faces.md, "Finding every face" and "Faces at any angle"): dlib's HOG detector on a
greyscale copy, upright and turned by every multiple of `probe_step` degrees, each scaled so that a
face of `min_detect_px` becomes DETECTOR_FACE_PX wide, in overlapping tiles when that copy is large
(gatekeeper/faces/search.py); boxes merged by overlap (merging.py). Upright detections between
`possible_score` and CONFIDENT_SCORE, and every face found only in a turned copy, are reported
`possible`: never identified, always reviewed.

Encoding: dlib's 5-point alignment and 150x150 chips, then dlib's ResNet with its own weights, run
by numpy (resnet.py: the same encodings, about 7x faster than dlib-bin's).

One photo's windows and encoding batches are shared among `workers` processes (pool.py).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from gatekeeper import policy
from gatekeeper.errors import EnrolmentPhotoError, FaceError
from gatekeeper.faces.merging import Candidate, merged
from gatekeeper.faces.models import DLIB_MODEL, load_models
from gatekeeper.faces.pool import cores, run_all
from gatekeeper.faces.resnet import CHIP_PADDING, CHIP_PX
from gatekeeper.faces.search import DETECTOR_FACE_PX, Box, Orientation, orientations, scan, windows

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["CONFIDENT_SCORE", "DLIB_MODEL", "DetectedFace", "DlibFaceEngine", "FaceAnalysis", "FaceEngine"]

# dlib's own decision threshold: at or above it a detection is a face we may identify.
CONFIDENT_SCORE = 0.0
# Encodings are computed in batches of at most this size, so the time limit is checked between them
# and the batches can be shared among processes (per-face cost is about the same at 1 or 16 per call).
_ENCODE_BATCH = 8


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an upright image; `box` is (left, top, right, bottom), clipped to the image."""

    box: Box
    encoding: NDArray[np.float64] | None  # None when too_small or possible
    too_small: bool  # shorter side < min_face_px: never identified, sent to review
    score: float  # the HOG detector's score (0 is dlib's own threshold)
    # A probable face that cannot be identified: below the confident score, or found only with the
    # image turned (or not encoded before the time limit). Never identified; the photo goes to review.
    possible: bool = False
    angle: int = 0  # degrees the image was turned by when the face was found (0: upright)


@dataclass(frozen=True)
class FaceAnalysis:
    """Every face found in one image, sorted by left edge; `limit` says why analysis stopped early."""

    faces: tuple[DetectedFace, ...]
    limit: str | None = None  # policy.TOO_MANY_FACES or policy.TIME_LIMIT: the result is partial
    min_detect_px: int = policy.MIN_DETECT_PX  # the smallest face width searched for, at any angle


class FaceEngine(Protocol):
    """Finds faces in an image and encodes them for matching."""

    model: str
    min_detect_px: int

    def analyse(self, pixels: NDArray[np.uint8]) -> FaceAnalysis:
        """Detect and encode every face in HxWx3 uint8 RGB pixels, sorted by left edge; raises FaceError."""
        ...

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face."""
        ...


class _Deadline:
    """The time limit of one analysis."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self._end


class DlibFaceEngine:
    """HOG detection at every angle, 5-point alignment and the dlib ResNet encoder."""

    model = DLIB_MODEL

    def __init__(
        self,
        *,
        min_face_px: int = policy.MIN_FACE_PX,
        min_detect_px: int = policy.MIN_DETECT_PX,
        possible_score: float = -0.3,
        probe_step: int = policy.PROBE_STEP,
        tile_px: int = 3072,
        max_faces: int = policy.MAX_FACES,
        time_limit_s: float = policy.FACE_TIME_LIMIT_S,
        workers: int | None = None,
    ) -> None:
        """Load the dlib models; raises ValueError on bad settings, FaceError when the models cannot load.

        min_face_px: faces whose shorter side is smaller are reported too_small (never identified).
        min_detect_px: the smallest face (width, px of the given image) searched for, at any angle.
        possible_score: upright detections from here up to 0 are reported possible (review), lower
            ones dropped; in turned copies only detections scoring at least 0 count.
        probe_step: the image is also searched turned by every multiple of this many degrees
            (a divisor of 360; 0 searches upright only, which misses turned faces: for measurement).
        tile_px: side of the square tiles, in detector pixels, that large photos are searched in.
        max_faces, time_limit_s: work caps per photo; past either the result is partial, with `limit`.
        workers: processes one photo's windows and encodings are shared among (this one plus
            forked copies of it; dlib's detector holds the GIL, so threads would not help); None: one
            per core.
        """
        if workers is None:
            workers = cores()
        if (
            min_face_px < 1
            or min_detect_px < 8
            or tile_px < 4 * DETECTOR_FACE_PX
            or max_faces < 1
            or workers < 1
        ):
            raise ValueError(
                f"need min_face_px >= 1, min_detect_px >= 8, tile_px >= {4 * DETECTOR_FACE_PX}, "
                "max_faces >= 1, workers >= 1 "
                f"(got {min_face_px}, {min_detect_px}, {tile_px}, {max_faces}, {workers})"
            )
        if not possible_score <= CONFIDENT_SCORE or not time_limit_s > 0:
            raise ValueError(
                f"need possible_score <= {CONFIDENT_SCORE} and time_limit_s > 0 "
                f"(got {possible_score}, {time_limit_s})"
            )
        if probe_step < 0 or (probe_step and 360 % probe_step):
            raise ValueError(f"probe_step must divide 360, or be 0 (got {probe_step})")
        self.min_face_px = min_face_px
        self.min_detect_px = min_detect_px
        self.possible_score = possible_score
        self.probe_step = probe_step
        self.tile_px = tile_px
        self.max_faces = max_faces
        self.time_limit_s = time_limit_s
        self.workers = workers
        models = load_models()
        self._detector: Any = models.detector
        # The 5-point predictor is the alignment the ResNet encoder was trained with.
        self._predictor: Any = models.predictor
        self._encoder = models.encoder
        self._chips: Any = models.dlib.get_face_chips
        self._rectangle: Any = models.dlib.rectangle
        self._shapes: Any = models.dlib.full_object_detections
        # One BLAS thread per process while encoding: the processes already share the batches, and
        # the same arithmetic in every process keeps the encodings identical whatever `workers` is.
        self._blas: Any = models.threads

    def analyse(self, pixels: NDArray[np.uint8]) -> FaceAnalysis:
        """Detect and encode every face in HxWx3 uint8 RGB pixels, sorted by left edge; raises FaceError."""
        return self._analyse(pixels, self.probe_step)

    def _analyse(self, pixels: NDArray[np.uint8], probe_step: int) -> FaceAnalysis:
        image = _checked_pixels(pixels)
        deadline = _Deadline(self.time_limit_s)
        # HOG on greyscale: measured 1.5x faster than on RGB, same faces found.
        grey = np.asarray(Image.fromarray(image).convert("L"))
        found, limit = self._search(orientations(grey, probe_step), deadline)
        if len(found) > self.max_faces:
            found = sorted(found, key=lambda c: -c.score)[: self.max_faces]
        faces, encode_limit = self._faces(image, found, deadline)
        faces.sort(key=lambda face: (face.box[0], face.box[1]))
        return FaceAnalysis(faces=tuple(faces), limit=limit or encode_limit, min_detect_px=self.min_detect_px)

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face.

        Searched upright only: a turned face could never be the one enrolled (it is not encoded), and
        nothing is published from an enrolment photo.
        """
        analysis = self._analyse(pixels, 0)
        faces = analysis.faces
        if len(faces) != 1 or analysis.limit is not None:
            raise EnrolmentPhotoError(
                f"an enrolment photo must show exactly one face; found {len(faces)}",
                faces_found=len(faces),
            )
        face = faces[0]
        if face.too_small:
            side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
            raise EnrolmentPhotoError(
                f"the face in the enrolment photo is {side} px; at least {self.min_face_px} px is needed",
                faces_found=1,
            )
        if face.encoding is None:
            raise EnrolmentPhotoError(
                "the face in the enrolment photo is not clear enough to identify "
                f"(detector score {face.score:.2f}, or turned sideways)",
                faces_found=1,
            )
        return face.encoding

    def plan(self, shape: tuple[int, ...]) -> list[tuple[Orientation, tuple[Box, float]]]:
        """Every (orientation, (window, scale)) an image of `shape` is searched in; no detector runs."""
        grey = np.zeros(shape[:2], dtype=np.uint8)
        return [
            (turned, window)
            for turned in orientations(grey, self.probe_step)
            for window in windows(turned.grey.shape, self.min_detect_px, self.tile_px)
            if turned.shows_photo(window[0])
        ]

    def _search(self, images: list[Orientation], deadline: _Deadline) -> tuple[list[Candidate], str | None]:
        """Every detection in each orientation, mapped back and merged; the limit if a cap stopped it.

        Every window of every orientation is one job, shared among `workers` processes; results
        are merged in window order, so the outcome is the same with one process or several.
        """
        jobs = [
            functools.partial(self._scan_job, turned, window, scale, deadline)
            for turned in images
            for window, scale in windows(turned.grey.shape, self.min_detect_px, self.tile_px)
            if turned.shows_photo(window)
        ]
        found: list[Candidate] = []
        limit = None
        # One process: window by window, so too many faces stops the search early. Several: every
        # window is searched (the time limit still bounds it) and merged in the same order.
        results = (job() for job in jobs) if self.workers == 1 else run_all(jobs, self.workers)
        for result in results:
            if result is None:
                # A window not searched before the time limit: report what the others found.
                limit = policy.TIME_LIMIT
                continue
            found = merged(found + result)
            if len(found) > self.max_faces:
                return found, policy.TOO_MANY_FACES
        return found, limit

    def _scan_job(
        self, turned: Orientation, window: Box, scale: float, deadline: _Deadline
    ) -> list[Candidate] | None:
        """One window's detections in the given image's coordinates; None when out of time."""
        if deadline.passed():
            return None
        # Turned copies: only confident detections. Lower scores there fired on large faceless
        # photos, and every face turned at 45° steps scored at least 0.14 (bench/angles.py).
        threshold = self.possible_score if turned.angle == 0 else CONFIDENT_SCORE
        return [turned.to_given(c) for c in scan(self._detector, turned.grey, window, scale, threshold)]

    def _faces(
        self, image: NDArray[np.uint8], found: list[Candidate], deadline: _Deadline
    ) -> tuple[list[DetectedFace], str | None]:
        """Faces from candidates: encodings for confident, large-enough upright ones, batched."""
        height, width = image.shape[:2]
        faces: list[DetectedFace] = []
        to_encode: list[tuple[Box, Candidate]] = []
        for c in found:
            box = (
                max(round(c.left), 0),
                max(round(c.top), 0),
                min(round(c.right), width),
                min(round(c.bottom), height),
            )
            too_small = min(box[2] - box[0], box[3] - box[1]) < self.min_face_px
            possible = c.turned or c.score < CONFIDENT_SCORE
            if too_small or possible:
                faces.append(DetectedFace(box, None, too_small, c.score, possible and not too_small, c.angle))
            else:
                to_encode.append((box, c))
        limit = None
        size = max(1, min(_ENCODE_BATCH, math.ceil(len(to_encode) / self.workers)))
        batches = [to_encode[start : start + size] for start in range(0, len(to_encode), size)]
        jobs = [functools.partial(self._encode_job, image, batch, deadline) for batch in batches]
        for batch, encodings in zip(batches, run_all(jobs, self.workers), strict=True):
            if encodings is None:
                # Out of time: the rest are still reported, as faces nobody may identify.
                limit = policy.TIME_LIMIT
                faces.extend(DetectedFace(box, None, False, c.score, True) for box, c in batch)
                continue
            for (box, c), encoding in zip(batch, encodings, strict=True):
                faces.append(DetectedFace(box, encoding, False, c.score))
        return faces, limit

    def _encode_job(
        self, image: NDArray[np.uint8], batch: list[tuple[Box, Candidate]], deadline: _Deadline
    ) -> list[NDArray[np.float64]] | None:
        """The encodings of one batch of faces, in order; None when out of time."""
        if deadline.passed():
            return None
        shapes = self._shapes()
        for _, c in batch:
            # Alignment gets the detector's unclipped rectangle: for a face cut by the border it
            # lands the landmarks better than the clipped box (measured on obama_partial_face).
            rect = self._rectangle(round(c.left), round(c.top), round(c.right), round(c.bottom))
            shapes.append(self._predictor(image, rect))
        # dlib cuts the aligned 150x150 chips, exactly as its compute_face_descriptor does.
        chips = np.stack(self._chips(image, shapes, size=CHIP_PX, padding=CHIP_PADDING))
        with self._blas.limit(limits=1, user_api="blas"):
            return list(self._encoder.encode(chips))


def _checked_pixels(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels as a C-contiguous HxWx3 uint8 array; raises FaceError on any other shape or type."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise FaceError(f"pixels must be a uint8 numpy array (got {getattr(pixels, 'dtype', type(pixels))})")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise FaceError(f"pixels must be HxWx3 RGB (got shape {pixels.shape})")
    # dlib finds no face at all, silently, in a strided view such as a crop: a fail-open trap.
    return np.ascontiguousarray(pixels)
