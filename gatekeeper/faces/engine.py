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

The second look (second_look.py): every search also keeps weak boxes (from WEAK_SCORE), and dlib's
CNN detector is asked about each weak and each `possible` box: a box it confirms is a face, encoded
in an upright crop and reported `degraded`; a box it finds no face in at any quarter turn is dropped.

Quality (quality.py): every encoded face gets a score from 0 to 1 from its detector and its pixels
(contrast, sharpness); below RELIABLE_QUALITY the face is `degraded`, and a match to it is never
trusted on its own (policy.py).

One photo's windows, second looks and encoding batches are shared among `workers` processes (pool.py).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image

from gatekeeper import policy
from gatekeeper.errors import EnrolmentPhotoError, FaceError
from gatekeeper.faces.merging import Candidate, merged, overlap_matrix
from gatekeeper.faces.pool import cores, run_all
from gatekeeper.faces.quality import RELIABLE_QUALITY, face_quality, second_look_quality
from gatekeeper.faces.resnet import CHIP_PADDING, CHIP_PX
from gatekeeper.faces.search import DETECTOR_FACE_PX, Box, Orientation, orientations, scan, windows
from gatekeeper.faces.second_look import DISMISS_PX, Confirmed, SecondLook, side_of
from gatekeeper.faces.weights import DLIB_MODEL, load_models

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "CONFIDENT_SCORE",
    "DLIB_MODEL",
    "WEAK_SCORE",
    "DetectedFace",
    "DlibFaceEngine",
    "FaceAnalysis",
    "FaceEngine",
]

# dlib's own decision threshold: at or above it a detection is a face we may identify.
CONFIDENT_SCORE = 0.0
# Boxes from here up to what the first search counts are shown to the second look. Every face
# behind dark glasses or a mask in the occlusion tests scored at least -0.45 at one of the
# angles searched (docs/faces.md, "The second look").
WEAK_SCORE = -0.6
# At most this many weak boxes per photo are shown to the CNN, the highest-scoring first.
SECOND_LOOK_MAX = 16
# Encodings are computed in batches of at most this size, so the time limit is checked between them
# and the batches can be shared among processes (per-face cost is about the same at 1 or 16 per call).
_ENCODE_BATCH = 8
# Enrolment photos: the face's shorter side at least this (px of the photo as given). A template
# is the reference every later match is measured against; at 80 px a face is encoded within 0.1
# of its full-size encoding (docs/faces.md, "Minimum face size").
ENROL_MIN_FACE_PX = 80
# Why an enrolment photo was refused (EnrolmentPhotoError.reason).
ENROL_NO_FACE = "no_face"
ENROL_SEVERAL_FACES = "several_faces"
ENROL_TOO_SMALL = "face_too_small"
ENROL_UNCLEAR = "face_unclear"
# What a second look answers when the time limit passed before it could run, and for a possible
# box it could neither confirm nor rule out.
_LATE = "late"
_KEEP = "keep"


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
    # From 0 to 1: how far the encoding can be trusted (detector, contrast, sharpness: quality.py).
    # Below RELIABLE_QUALITY the face is degraded. None when not encoded.
    quality: float | None = None
    # Found or confirmed by the second look (the CNN detector), not by HOG alone.
    second_look: bool = False

    @property
    def degraded(self) -> bool:
        """An encoded face whose encoding is unreliable: a match to it is never trusted on its own."""
        return self.encoding is not None and (self.quality or 0.0) < RELIABLE_QUALITY


@dataclass(frozen=True)
class FaceAnalysis:
    """Every face found in one image, sorted by left edge; `limit` says why analysis stopped early."""

    faces: tuple[DetectedFace, ...]
    limit: str | None = None  # policy.TOO_MANY_FACES or policy.TIME_LIMIT: the result is partial
    min_detect_px: int = policy.MIN_DETECT_PX  # the smallest face width searched for, at any angle
    # Boxes the second look was asked about, and how many of those it found no face in.
    looked: int = 0
    dismissed: int = 0


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
        second_look: bool = True,
        weak_score: float = WEAK_SCORE,
        second_look_max: int = SECOND_LOOK_MAX,
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
        second_look: ask dlib's CNN detector about weak and possible boxes (second_look.py); off,
            faces behind dark glasses or masks can be missed: for measurement only.
        weak_score, second_look_max: the lowest HOG score shown to the second look, and how many
            weak boxes at most per photo.
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
        if not weak_score <= possible_score or second_look_max < 0:
            raise ValueError(
                "need weak_score <= possible_score and second_look_max >= 0 "
                f"(got {weak_score}, {second_look_max})"
            )
        self.min_face_px = min_face_px
        self.min_detect_px = min_detect_px
        self.possible_score = possible_score
        self.probe_step = probe_step
        self.tile_px = tile_px
        self.max_faces = max_faces
        self.time_limit_s = time_limit_s
        self.workers = workers
        self.second_look = second_look
        self.weak_score = weak_score
        self.second_look_max = second_look_max
        models = load_models()
        self._detector: Any = models.detector
        # The 5-point predictor is the alignment the ResNet encoder was trained with.
        self._predictor: Any = models.predictor
        self._encoder = models.encoder
        self._chips: Any = models.dlib.get_face_chips
        self._rectangle: Any = models.dlib.rectangle
        self._shapes: Any = models.dlib.full_object_detections
        self._chip: Any = models.dlib.get_face_chip
        self._looker = SecondLook(models.cnn)
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
        counted = [c for c in found if not c.weak]
        if len(counted) > self.max_faces:
            counted = sorted(counted, key=lambda c: -c.score)[: self.max_faces]
        weak = sorted((c for c in found if c.weak), key=lambda c: -c.score)[: self.second_look_max]
        boxes = counted + weak
        looks = self._second_looks(image, boxes, deadline)
        faces, encode_limit = self._faces(image, boxes, looks, deadline)
        faces.sort(key=lambda face: (face.box[0], face.box[1]))
        looked = sum(1 for answer in looks.values() if answer != _LATE)
        dismissed = sum(1 for i, answer in looks.items() if answer is None and not boxes[i].weak)
        return FaceAnalysis(
            faces=tuple(faces),
            limit=limit or encode_limit,
            min_detect_px=self.min_detect_px,
            looked=looked,
            dismissed=dismissed,
        )

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face.

        Searched upright only: a turned face could never be the one enrolled, and nothing is
        published from an enrolment photo. The face must be clear (enrolment_problem): a template
        from a small, blurred or half-hidden face moves every later match away from the person.
        """
        analysis = self._analyse(pixels, 0)
        problem = enrolment_problem(analysis, min_face_px=max(self.min_face_px, ENROL_MIN_FACE_PX))
        if problem is not None:
            reason, message = problem
            raise EnrolmentPhotoError(message, faces_found=len(analysis.faces), reason=reason)
        encoding = analysis.faces[0].encoding
        assert encoding is not None
        return encoding

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
            if sum(not c.weak for c in found) > self.max_faces:
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
        lowest = min(threshold, self.weak_score) if self.second_look else threshold
        return [
            turned.to_given(replace(c, weak=True) if c.score < threshold else c)
            for c in scan(self._detector, turned.grey, window, scale, lowest)
        ]

    def _needs_look(self, c: Candidate) -> bool:
        """A box only the second look can settle: weak, or possible and large enough to identify."""
        if not self.second_look:
            return False
        if c.weak:
            return True
        possible = c.turned or c.score < CONFIDENT_SCORE
        return possible and min(c.right - c.left, c.bottom - c.top) >= self.min_face_px

    def _second_looks(
        self, image: NDArray[np.uint8], boxes: list[Candidate], deadline: _Deadline
    ) -> dict[int, Confirmed | str | None]:
        """The CNN's answer for each box that needs one, by position; _LATE when out of time."""
        chosen = [i for i, c in enumerate(boxes) if self._needs_look(c)]
        # In this process only: dlib's CNN runs on a BLAS whose threads do not survive a fork (a
        # forked copy hung in its first convolution), and the crops are few and small.
        return {i: self._look_job(image, boxes[i], deadline) for i in chosen}

    def _look_job(
        self, image: NDArray[np.uint8], c: Candidate, deadline: _Deadline
    ) -> Confirmed | str | None:
        """The second look at one box: the face it confirms; None when the box is not a face (a weak
        box not confirmed; a possible box of DISMISS_PX or more in which a sweep finds no face of any
        size); _KEEP for a possible box that could not be ruled out; _LATE when out of time."""
        if deadline.passed():
            return _LATE
        # A weak box was never counted, so its own angle (and the quarter turns beside a diagonal)
        # will do; a possible box is tried at every quarter turn.
        confirmed = self._looker.look(image, c, every_turn=not c.weak)
        if confirmed is not None or c.weak:
            return confirmed
        if side_of(c) < DISMISS_PX or deadline.passed():
            return _KEEP
        return None if self._looker.sweep_is_empty(image, c, min_px=self.min_detect_px) else _KEEP

    def _faces(
        self,
        image: NDArray[np.uint8],
        found: list[Candidate],
        looks: dict[int, Confirmed | str | None],
        deadline: _Deadline,
    ) -> tuple[list[DetectedFace], str | None]:
        """Faces from candidates: encodings for confident, large-enough upright ones and for those
        the second look confirmed, batched."""
        height, width = image.shape[:2]
        faces: list[DetectedFace] = []
        to_encode: list[_Pending] = []
        # Where each face kept so far is (the CNN's box for a confirmed one): a weak box is looked
        # at apart from the counted ones, and two looks (a turned box and a weak one beside it)
        # can confirm one face. `found` holds the counted boxes first.
        kept: list[Candidate] = []
        for i, c in enumerate(found):
            box = (
                max(round(c.left), 0),
                max(round(c.top), 0),
                min(round(c.right), width),
                min(round(c.bottom), height),
            )
            too_small = min(box[2] - box[0], box[3] - box[1]) < self.min_face_px
            possible = c.turned or c.score < CONFIDENT_SCORE
            answer = looks.get(i, _LATE)
            if i in looks and answer is None:
                # Not a face: a weak box the CNN did not confirm, or a possible box it swept empty.
                continue
            if c.weak and not isinstance(answer, Confirmed):
                continue  # never counted by the first search, and not confirmed (in time)
            where = Candidate(*answer.in_photo, c.score) if isinstance(answer, Confirmed) else c
            if c.weak and kept and overlap_matrix([where, *kept])[0, 1:].any():
                continue  # a face already counted, seen again
            kept.append(where)
            if isinstance(answer, Confirmed):
                if too_small:
                    faces.append(DetectedFace(box, None, True, c.score, False, c.angle, second_look=True))
                else:
                    to_encode.append(_Pending(box, c, answer))
            elif too_small or possible:
                faces.append(DetectedFace(box, None, too_small, c.score, possible and not too_small, c.angle))
            else:
                to_encode.append(_Pending(box, c, None))
        limit = None
        size = max(1, min(_ENCODE_BATCH, math.ceil(len(to_encode) / self.workers)))
        batches = [to_encode[start : start + size] for start in range(0, len(to_encode), size)]
        jobs = [functools.partial(self._encode_job, image, batch, deadline) for batch in batches]
        for batch, encoded in zip(batches, run_all(jobs, self.workers), strict=True):
            if encoded is None:
                # Out of time: the rest are still reported, as faces nobody may identify.
                limit = policy.TIME_LIMIT
                faces.extend(
                    DetectedFace(p.box, None, False, p.candidate.score, True, p.candidate.angle)
                    for p in batch
                )
                continue
            for p, (encoding, quality) in zip(batch, encoded, strict=True):
                faces.append(
                    DetectedFace(
                        p.box,
                        encoding,
                        False,
                        p.candidate.score,
                        angle=p.look.angle if p.look is not None else p.candidate.angle,
                        quality=quality,
                        second_look=p.look is not None,
                    )
                )
        return faces, limit

    def _encode_job(
        self, image: NDArray[np.uint8], batch: list[_Pending], deadline: _Deadline
    ) -> list[tuple[NDArray[np.float64], float]] | None:
        """The encodings of one batch of faces, in order, each with its quality; None when out of time."""
        if deadline.passed():
            return None
        shapes = self._shapes()
        upright = [p for p in batch if p.look is None]
        for p in upright:
            c = p.candidate
            # Alignment gets the detector's unclipped rectangle: for a face cut by the border it
            # lands the landmarks better than the clipped box (measured on obama_partial_face).
            rect = self._rectangle(round(c.left), round(c.top), round(c.right), round(c.bottom))
            shapes.append(self._predictor(image, rect))
        # dlib cuts the aligned 150x150 chips, exactly as its compute_face_descriptor does.
        upright_chips = iter(
            self._chips(image, shapes, size=CHIP_PX, padding=CHIP_PADDING) if upright else []
        )
        chips: list[NDArray[np.uint8]] = []
        scores: list[float] = []
        for p in batch:
            if p.look is None:
                chips.append(np.asarray(next(upright_chips)))
                # A confident upright HOG detection: judged on its contrast, its sharpness and
                # whether anything covers its eyes or mouth.
                scores.append(face_quality(image, p.box, chips[-1]))
            else:
                # A face the CNN confirmed: aligned in the crop that holds it upright.
                shape = self._predictor(p.look.crop, self._rectangle(*p.look.rect))
                chips.append(np.asarray(self._chip(p.look.crop, shape, size=CHIP_PX, padding=CHIP_PADDING)))
                scores.append(second_look_quality(p.look.confidence))
        with self._blas.limit(limits=1, user_api="blas"):
            encodings = list(self._encoder.encode(np.stack(chips)))
        return list(zip(encodings, scores, strict=True))


@dataclass(frozen=True)
class _Pending:
    """A face to encode: its box, the HOG candidate, and the CNN's view when the second look found it."""

    box: Box
    candidate: Candidate
    look: Confirmed | None


def enrolment_problem(analysis: FaceAnalysis, *, min_face_px: int) -> tuple[str, str] | None:
    """Why an analysed photo cannot be enrolled, as (reason code, message); None when it can.

    One face, at least `min_face_px` on its shorter side, found by HOG upright with confidence (not
    only by the second look), and a clear chip: contrast, sharpness and visible eyes (quality.py).
    """
    faces = analysis.faces
    if not faces:
        return ENROL_NO_FACE, "no face was found in the enrolment photo"
    if len(faces) > 1 or analysis.limit is not None:
        return ENROL_SEVERAL_FACES, f"an enrolment photo must show exactly one face; found {len(faces)}"
    face = faces[0]
    side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
    if face.too_small or side < min_face_px:
        message = f"the face in the enrolment photo is {side} px; at least {min_face_px} px is needed"
        return ENROL_TOO_SMALL, message
    if face.encoding is None or face.second_look:
        return (
            ENROL_UNCLEAR,
            "the face in the enrolment photo is not clear enough to identify "
            f"(detector score {face.score:.2f}, partly hidden, or turned sideways)",
        )
    if face.degraded:
        return (
            ENROL_UNCLEAR,
            f"the face in the enrolment photo is blurred, too dark or its eyes are hidden "
            f"(quality {face.quality:.2f}, at least {RELIABLE_QUALITY} is needed)",
        )
    return None


def _checked_pixels(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels as a C-contiguous HxWx3 uint8 array; raises FaceError on any other shape or type."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise FaceError(f"pixels must be a uint8 numpy array (got {getattr(pixels, 'dtype', type(pixels))})")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise FaceError(f"pixels must be HxWx3 RGB (got shape {pixels.shape})")
    # dlib finds no face at all, silently, in a strided view such as a crop: a fail-open trap.
    return np.ascontiguousarray(pixels)
