"""Face detection and encoding: the FaceEngine interface and its dlib implementation.

Encodings live only in memory here. Nothing in this module stores them; the caller decides, and
only an enrolment template of a person with biometric consent is ever kept (DESIGN §2).

Detection (measured in docs/faces.md, "Finding every face"): dlib's HOG detector on a greyscale
copy scaled so that a face of `min_detect_px` becomes DETECTOR_FACE_PX wide, in overlapping tiles
when that copy is large, plus one coarse pass for faces bigger than the overlap; boxes merged by
overlap. Detections between `possible_score` and CONFIDENT_SCORE, and any face found only with the
image turned 90°, 180° or 270°, are reported `possible`: never identified, always reviewed.

Encoding: dlib's 5-point alignment and 150x150 chips, then dlib's ResNet with its own weights, run
by numpy (gatekeeper/faces/resnet.py: the same encodings, about 7x faster than dlib-bin's).

One photo's windows and encoding batches are shared among `workers` processes (this one and
forked copies of it: dlib's detector holds the GIL); the result is the same as with one.
"""

from __future__ import annotations

import functools
import math
import multiprocessing
import os
import pickle
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from gatekeeper.errors import EnrolmentPhotoError, FaceError
from gatekeeper.faces.resnet import CHIP_PADDING, CHIP_PX, ResNetEncoder

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from numpy.typing import NDArray

_R = TypeVar("_R")

DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"

# Measured on 19 corpus faces (bench/calibrate.py sweep): a face at least this wide in the image the
# HOG detector scans is found with score >= 0 every time; 56 px is found only above about -0.5.
DETECTOR_FACE_PX = 64
# dlib's own decision threshold: at or above it a detection is a face we may identify.
CONFIDENT_SCORE = 0.0
# The coarse pass finds faces of at least DETECTOR_FACE_PX / coarse scale; tiles overlap by this
# much more, so a face too small for the coarse pass lies wholly inside at least one tile.
_OVERLAP_MARGIN = 1.3
# The coarse pass's scale is chosen among this many steps between the coarsest and finest allowed.
_COARSE_STEPS = 20
# Two boxes are one face when they overlap this much (IoU), or when one lies mostly inside the
# other (a face cut by a tile edge next to the same face whole in the neighbouring tile).
_MERGE_IOU = 0.3
_MERGE_INSIDE = 0.6
# Encodings are computed in batches of at most this size, so the time limit is checked between them
# and the batches can be shared among processes (per-face cost is about the same at 1 or 16 per call).
_ENCODE_BATCH = 8

TOO_MANY_FACES = "too_many_faces"
TIME_LIMIT = "time_limit"

Box = tuple[int, int, int, int]


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


@dataclass(frozen=True)
class FaceAnalysis:
    """Every face found in one image, sorted by left edge; `limit` says why analysis stopped early."""

    faces: tuple[DetectedFace, ...]
    limit: str | None = None  # TOO_MANY_FACES or TIME_LIMIT: the result is partial


class FaceEngine(Protocol):
    """Finds faces in an image and encodes them for matching."""

    model: str

    def analyse(self, pixels: NDArray[np.uint8]) -> FaceAnalysis:
        """Detect and encode every face in HxWx3 uint8 RGB pixels, sorted by left edge; raises FaceError."""
        ...

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face."""
        ...


@dataclass(frozen=True)
class _Candidate:
    """A detector box in the given image's coordinates (float, unclipped) and its score."""

    left: float
    top: float
    right: float
    bottom: float
    score: float
    turned: bool = False

    @property
    def area(self) -> float:
        return max(self.right - self.left, 0.0) * max(self.bottom - self.top, 0.0)


class _Deadline:
    """The time limit of one analysis."""

    def __init__(self, seconds: float) -> None:
        self._end = time.monotonic() + seconds

    def passed(self) -> bool:
        return time.monotonic() >= self._end


class DlibFaceEngine:
    """HOG detection, 5-point alignment and the dlib ResNet encoder, with face_recognition_models' files."""

    model = DLIB_MODEL

    def __init__(
        self,
        *,
        min_face_px: int = 40,
        min_detect_px: int = 32,
        possible_score: float = -0.3,
        turned_min_detect_px: int = 64,
        tile_px: int = 3072,
        max_faces: int = 200,
        time_limit_s: float = 30.0,
        probe_rotations: bool = True,
        workers: int | None = None,
    ) -> None:
        """Load the dlib models; raises ValueError on bad settings, FaceError when the models cannot load.

        min_face_px: faces whose shorter side is smaller are reported too_small (never identified).
        min_detect_px: the smallest face (width, px of the given image) detection is scaled to find.
        possible_score: detections from here up to 0 are reported possible (review), lower ones dropped.
        tile_px: side of the square tiles, in detector pixels, that large photos are searched in.
        max_faces, time_limit_s: work caps per photo; past either the result is partial, with `limit`.
        probe_rotations: when nothing is found upright, also search the image turned 90/180/270°,
            for faces of at least turned_min_detect_px, scoring at least dlib's own threshold (0).
        workers: processes one photo's tiles, probes and encodings are shared among (this one plus
            forked copies of it; dlib's detector holds the GIL, so threads would not help); None: one
            per core.
        """
        smallest = min(min_detect_px, turned_min_detect_px)
        if workers is None:
            workers = _cores()
        if min_face_px < 1 or smallest < 8 or tile_px < 4 * DETECTOR_FACE_PX or max_faces < 1 or workers < 1:
            raise ValueError(
                f"need min_face_px >= 1, min_detect_px >= 8, tile_px >= {4 * DETECTOR_FACE_PX}, "
                "max_faces >= 1, workers >= 1 "
                f"(got {min_face_px}, {smallest}, {tile_px}, {max_faces}, {workers})"
            )
        if not possible_score <= CONFIDENT_SCORE or not time_limit_s > 0:
            raise ValueError(
                f"need possible_score <= {CONFIDENT_SCORE} and time_limit_s > 0 "
                f"(got {possible_score}, {time_limit_s})"
            )
        self.min_face_px = min_face_px
        self.min_detect_px = min_detect_px
        self.possible_score = possible_score
        self.tile_px = tile_px
        self.max_faces = max_faces
        self.time_limit_s = time_limit_s
        self.probe_rotations = probe_rotations
        self.turned_min_detect_px = turned_min_detect_px
        self.workers = workers
        models = _load_models()
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
        image = _checked_pixels(pixels)
        deadline = _Deadline(self.time_limit_s)
        # HOG on greyscale: measured 1.5x faster than on RGB, same faces found.
        grey = np.asarray(Image.fromarray(image).convert("L"))
        height, width = grey.shape
        found, limit = self._search(grey, deadline, _unchanged, self.min_detect_px, self.possible_score)
        if limit is None and self.probe_rotations and not any(c.score >= CONFIDENT_SCORE for c in found):
            # Pixels stored sideways without an orientation tag: HOG only finds upright faces.
            # Only confident hits, on a coarser scale: each probe then costs a quarter of the
            # upright search, and the lower scores fired on 9 of 12 large faceless photos.
            turned = [
                (
                    np.ascontiguousarray(np.rot90(grey, quarter)),
                    functools.partial(_turned_back, quarter=quarter, width=width, height=height),
                )
                for quarter in (1, 2, 3)
            ]
            found, limit = self._search_images(
                turned, deadline, self.turned_min_detect_px, CONFIDENT_SCORE, found
            )
        if len(found) > self.max_faces:
            found = sorted(found, key=lambda c: -c.score)[: self.max_faces]
        faces, encode_limit = self._faces(image, found, deadline)
        faces.sort(key=lambda face: (face.box[0], face.box[1]))
        return FaceAnalysis(faces=tuple(faces), limit=limit or encode_limit)

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face."""
        analysis = self.analyse(pixels)
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

    def _search(
        self,
        grey: NDArray[np.uint8],
        deadline: _Deadline,
        to_given: Callable[[_Candidate], _Candidate],
        min_detect_px: int,
        threshold: float,
        found: list[_Candidate] | None = None,
    ) -> tuple[list[_Candidate], str | None]:
        """`found` plus every detection in `grey`, mapped and merged; the limit if a cap stopped it."""
        return self._search_images([(grey, to_given)], deadline, min_detect_px, threshold, found)

    def _search_images(
        self,
        images: Sequence[tuple[NDArray[np.uint8], Callable[[_Candidate], _Candidate]]],
        deadline: _Deadline,
        min_detect_px: int,
        threshold: float,
        found: list[_Candidate] | None = None,
    ) -> tuple[list[_Candidate], str | None]:
        """`found` plus every detection in each (image, mapping back), merged; the limit if a cap stopped it.

        Every window of every image is one job, shared among `workers` processes; results are merged
        in window order, so the outcome is the same with one process or several.
        """
        found = list(found or [])
        jobs = [
            functools.partial(self._scan_job, grey, to_given, window, scale, threshold, deadline)
            for grey, to_given in images
            for window, scale in self._windows(grey.shape, min_detect_px)
        ]
        limit = None
        # One process: window by window, so too many faces stops the search early. Several: every
        # window is searched (the time limit still bounds it) and merged in the same order.
        results = (job() for job in jobs) if self.workers == 1 else _run_all(jobs, self.workers)
        for result in results:
            if result is None:
                # A window not searched before the time limit: report what the others found.
                limit = TIME_LIMIT
                continue
            found = _merged(found + result)
            if len(found) > self.max_faces:
                return found, TOO_MANY_FACES
        return found, limit

    def _windows(self, shape: tuple[int, ...], min_detect_px: int) -> list[tuple[Box, float]]:
        """The (window, scale) pairs that search an image of `shape` for faces of min_detect_px."""
        height, width = shape[:2]
        scale = DETECTOR_FACE_PX / min_detect_px
        if width * height * scale * scale <= self.tile_px * self.tile_px:
            return [((0, 0, width, height), scale)]
        # A large photo: a coarse pass over the whole image finds the big faces, then tiles at
        # full detection scale find the small ones. Tiles bound memory and let the time limit
        # act between them; they overlap by more than any face the coarse pass might miss. The
        # coarser that pass, the wider the overlap: of the scales that keep every tile within
        # tile_px (overlap at most half a tile) and the coarse pass within one tile, the one that
        # scans the fewest pixels.
        side = math.floor(self.tile_px / scale)
        coarsest = 2 * _OVERLAP_MARGIN * DETECTOR_FACE_PX / side
        finest = min(self.tile_px / max(width, height), scale)
        if coarsest >= finest:
            # No scale keeps both bounds (a very long panorama, or tiny tiles): the coarse pass
            # stays within one tile and the tiles grow to twice the overlap.
            return self._tiled(width, height, scale, finest)
        plans = [
            self._tiled(width, height, scale, coarsest + (finest - coarsest) * step / _COARSE_STEPS)
            for step in range(_COARSE_STEPS + 1)
        ]
        return min(plans, key=lambda plan: (_scanned(plan), -plan[0][1]))

    def _tiled(self, width: int, height: int, scale: float, coarse: float) -> list[tuple[Box, float]]:
        """A coarse pass over the whole image at `coarse`, then tiles at `scale` overlapping by more
        than the smallest face the coarse pass is sure to find."""
        overlap = math.ceil(_OVERLAP_MARGIN * DETECTOR_FACE_PX / coarse)
        side = max(math.floor(self.tile_px / scale), 2 * overlap)
        windows: list[tuple[Box, float]] = [((0, 0, width, height), coarse)]
        for top, tile_height in _spans(height, side, overlap):
            for left, tile_width in _spans(width, side, overlap):
                windows.append(((left, top, left + tile_width, top + tile_height), scale))
        return windows

    def _scan_job(
        self,
        grey: NDArray[np.uint8],
        to_given: Callable[[_Candidate], _Candidate],
        window: Box,
        scale: float,
        threshold: float,
        deadline: _Deadline,
    ) -> list[_Candidate] | None:
        """One window's detections in the given image's coordinates; None when out of time."""
        if deadline.passed():
            return None
        return [to_given(c) for c in self._scan(grey, window, scale, threshold)]

    def _scan(self, grey: NDArray[np.uint8], window: Box, scale: float, threshold: float) -> list[_Candidate]:
        """One HOG run over a window of the image resized by `scale`; boxes in the image's coordinates."""
        left, top, right, bottom = window
        crop = Image.fromarray(grey[top:bottom, left:right])
        size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
        if size != crop.size:
            crop = crop.resize(size, Image.Resampling.BILINEAR)
        # A contiguous array: dlib silently finds nothing in a strided view.
        array = np.ascontiguousarray(np.asarray(crop))
        rects, scores, _ = self._detector.run(array, 0, threshold)
        sx, sy = (right - left) / size[0], (bottom - top) / size[1]
        return [
            _Candidate(
                left + r.left() * sx,
                top + r.top() * sy,
                left + r.right() * sx,
                top + r.bottom() * sy,
                float(s),
            )
            for r, s in zip(rects, scores, strict=True)
            if s >= threshold
        ]

    def _faces(
        self, image: NDArray[np.uint8], found: list[_Candidate], deadline: _Deadline
    ) -> tuple[list[DetectedFace], str | None]:
        """Faces from candidates: encodings for confident, large-enough upright ones, batched."""
        height, width = image.shape[:2]
        faces: list[DetectedFace] = []
        to_encode: list[tuple[Box, _Candidate]] = []
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
                faces.append(DetectedFace(box, None, too_small, c.score, possible and not too_small))
            else:
                to_encode.append((box, c))
        limit = None
        size = max(1, min(_ENCODE_BATCH, math.ceil(len(to_encode) / self.workers)))
        batches = [to_encode[start : start + size] for start in range(0, len(to_encode), size)]
        jobs = [functools.partial(self._encode_job, image, batch, deadline) for batch in batches]
        for batch, encodings in zip(batches, _run_all(jobs, self.workers), strict=True):
            if encodings is None:
                # Out of time: the rest are still reported, as faces nobody may identify.
                limit = TIME_LIMIT
                faces.extend(DetectedFace(box, None, False, c.score, True) for box, c in batch)
                continue
            for (box, c), encoding in zip(batch, encodings, strict=True):
                faces.append(DetectedFace(box, encoding, False, c.score))
        return faces, limit

    def _encode_job(
        self, image: NDArray[np.uint8], batch: list[tuple[Box, _Candidate]], deadline: _Deadline
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


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_all(jobs: Sequence[Callable[[], _R]], processes: int) -> list[_R]:
    """Every job's result, in order, the jobs shared among this process and forked copies of it.

    dlib's detector holds the GIL (measured: two threads take as long as one after the other), so
    one photo uses several cores only through processes; encoding batches are shared the same way,
    each process with one BLAS thread. A fork inherits the models, the image and the jobs
    (measured ~10 ms for fork, pipe and wait with a 24 MP image loaded); each process takes the
    next job from a shared counter until none is left, and a child sends its results back pickled.
    A job a child took but did not report (the child failed) is run again here, so a lost child
    costs time, never a result.
    """
    count = min(processes, len(jobs))
    if count <= 1 or not hasattr(os, "fork"):
        return [job() for job in jobs]
    try:
        counter = multiprocessing.RawValue("i", 0)
        lock = multiprocessing.Lock()
    except OSError:  # no shared memory or semaphores here (/dev/shm): one process it is
        return [job() for job in jobs]

    def take() -> int:
        with lock:
            index: int = counter.value
            counter.value = index + 1
        return index

    def work() -> dict[int, _R]:
        done: dict[int, _R] = {}
        while (index := take()) < len(jobs):
            done[index] = jobs[index]()
        return done

    children: list[tuple[int, int]] = []
    results: dict[int, _R] = {}
    try:
        for _ in range(count - 1):
            read, write = os.pipe()
            try:
                with warnings.catch_warnings():
                    # Python 3.12+ warns that forking a process with threads (numpy's BLAS pool, a
                    # web server's) may deadlock the child; ours only runs dlib and pickle on
                    # inherited data.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    pid = os.fork()
            except OSError:  # no more processes to be had: fewer helpers, same result
                os.close(read)
                os.close(write)
                break
            if pid == 0:  # the child: work, report, and leave without running any cleanup
                status = 1
                try:
                    os.close(read)
                    with os.fdopen(write, "wb") as report:
                        pickle.dump(work(), report, protocol=pickle.HIGHEST_PROTOCOL)
                    status = 0
                finally:
                    os._exit(status)
            os.close(write)
            children.append((pid, read))
        results = work()
    except BaseException:
        for pid, _read in children:
            os.kill(pid, signal.SIGKILL)
        raise
    finally:
        for pid, read in children:
            with os.fdopen(read, "rb") as answer:
                data = answer.read()
            os.waitpid(pid, 0)
            try:
                results.update(pickle.loads(data))
            except Exception:  # a child that failed reports nothing: its jobs are run below
                continue
    return [results[index] if index in results else jobs[index]() for index in range(len(jobs))]


def _scanned(windows: list[tuple[Box, float]]) -> float:
    """The pixels the detector scans for these (window, scale) pairs: what its time follows."""
    return sum(
        (right - left) * (bottom - top) * scale * scale for (left, top, right, bottom), scale in windows
    )


def _spans(length: int, side: int, overlap: int) -> list[tuple[int, int]]:
    """(start, size) of the fewest windows of at most `side` covering 0..length, overlapping by `overlap`."""
    if length <= side:
        return [(0, length)]
    count = math.ceil((length - overlap) / (side - overlap))
    # As many windows as needed, each only as large as needed: less scanned twice.
    size = min(side, math.ceil((length + (count - 1) * overlap) / count))
    stride = (length - size) / (count - 1)
    return [(round(i * stride), size) for i in range(count)]


def _overlap_matrix(candidates: Sequence[_Candidate]) -> NDArray[np.bool_]:
    """Which pairs of boxes are the same face: enough IoU, or one mostly inside the other."""
    boxes = np.array([(c.left, c.top, c.right, c.bottom) for c in candidates], dtype=np.float64)
    areas = np.array([c.area for c in candidates], dtype=np.float64)
    left, top, right, bottom = boxes.T
    width = np.minimum.outer(right, right) - np.maximum.outer(left, left)
    height = np.minimum.outer(bottom, bottom) - np.maximum.outer(top, top)
    touching = (width > 0) & (height > 0)
    inter = np.where(touching, width * height, 0.0)
    union = areas[:, None] + areas[None, :] - inter
    smaller = np.minimum(areas[:, None], areas[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(touching, inter / np.where(touching, union, 1.0), 0.0)
        inside = np.where(touching & (smaller > 0), inter / np.where(smaller > 0, smaller, 1.0), 0.0)
    same: NDArray[np.bool_] = touching & ((iou >= _MERGE_IOU) | (inside >= _MERGE_INSIDE))
    return same


def _merged(candidates: list[_Candidate]) -> list[_Candidate]:
    """Non-maximum suppression: the best-scoring box of each group of overlapping boxes.

    An upright box beats a turned one that overlaps it, so a face seen upright keeps its encoding.
    """
    ordered = sorted(candidates, key=lambda c: (c.turned, -c.score))
    if len(ordered) < 2:
        return ordered
    same = _overlap_matrix(ordered)
    kept = np.zeros(len(ordered), dtype=bool)
    for i in range(len(ordered)):
        kept[i] = not (same[i] & kept).any()
    return [c for c, keep in zip(ordered, kept, strict=True) if keep]


def _unchanged(c: _Candidate) -> _Candidate:
    """A box already in the given image's coordinates."""
    return c


def _turned_back(c: _Candidate, *, quarter: int, width: int, height: int) -> _Candidate:
    """A box found in np.rot90(image, quarter) mapped back into the image (width x height)."""
    corners = [(c.left, c.top), (c.right, c.bottom)]
    for step in range(quarter):
        # np.rot90 turns counter-clockwise: undoing one quarter maps (x, y) -> (w' - y, x), where
        # w' is the width of the image one turn back.
        turned_width = width if (quarter - 1 - step) % 2 == 0 else height
        corners = [(turned_width - y, x) for x, y in corners]
    xs = [x for x, _y in corners]
    ys = [y for _x, y in corners]
    return _Candidate(min(xs), min(ys), max(xs), max(ys), c.score, turned=True)


def _checked_pixels(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels as a C-contiguous HxWx3 uint8 array; raises FaceError on any other shape or type."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise FaceError(f"pixels must be a uint8 numpy array (got {getattr(pixels, 'dtype', type(pixels))})")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise FaceError(f"pixels must be HxWx3 RGB (got shape {pixels.shape})")
    # dlib finds no face at all, silently, in a strided view such as a crop: a fail-open trap.
    return np.ascontiguousarray(pixels)


@dataclass(frozen=True)
class _Models:
    """What the engine runs: dlib's HOG detector and 5-point predictor, the ResNet encoder."""

    dlib: Any
    detector: Any
    predictor: Any
    encoder: ResNetEncoder
    threads: Any  # a threadpoolctl controller for numpy's BLAS


def _load_models() -> _Models:
    """Load the three models from face_recognition_models; raises FaceError when they cannot load.

    face_recognition's own API is not imported: it loads five models (two of them unused here, one
    100 MB) and turns on Pillow's LOAD_TRUNCATED_IMAGES for the whole process.
    """
    try:
        with warnings.catch_warnings():
            # face_recognition_models imports pkg_resources, which warns on every import path.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import face_recognition_models as files
        import dlib
        import threadpoolctl

        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(files.pose_predictor_five_point_model_location())
    except (ImportError, RuntimeError) as exc:
        raise FaceError(f"the dlib face models could not be loaded: {exc}") from exc
    encoder = ResNetEncoder.load(Path(files.face_recognition_model_location()))
    return _Models(dlib, detector, predictor, encoder, threadpoolctl.ThreadpoolController())
