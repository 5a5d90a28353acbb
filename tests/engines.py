"""The face engine most tests compose their runtime with: the real engine's answers, recorded on disk.

Tests about consent, publishing, pages and jobs gate the same corpus photos again and again; the
dlib engine takes seconds per photo. `RecordedFaceEngine` asks a real `DlibFaceEngine` (built with
the same options) once per distinct question and keeps its answer in a folder shared by every test
and every pytest process: `<repository>/.cache/face-answers/`, or $GATEKEEPER_FACE_CACHE.

An answer is what the real engine returned, pickled (its dataclasses and numpy encodings), or the
FaceError it raised (EnrolmentPhotoError included), raised again with the same message and fields.
It is found again only for the same question: the method, the pixels (sha256 of their bytes, their
shape and type) and a fingerprint of the engine (its options, the source of gatekeeper/faces/*.py
and the versions of dlib, its models, numpy and Pillow); any change to the engine asks it again.
The worker count is not part of the question: the engine answers the same whatever it is
(tests/faces/test_face_parallel.py). An answer that took the engine's whole time limit may have
been cut short by the machine's load: it is returned, never recorded.

Entries are written whole (a temporary file, then os.replace), so processes never read half an
answer; an entry that cannot be read is asked again and replaced. Delete the folder to start afresh.

Tests of the engine itself (tests/faces/) and of its work limits (time limit, face cap, workers)
use the real engine: the `runtime` and `app` fixtures compose theirs with `engine_for`, which gives
None (the runtime builds the real engine) there and in tests marked `real_face_engine`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pytest

import gatekeeper.faces
from gatekeeper import policy
from gatekeeper.config import Settings
from gatekeeper.errors import FaceError
from gatekeeper.faces import DlibFaceEngine, FaceAnalysis, FaceEngine
from gatekeeper.runtime import Runtime, face_engine_options

if TYPE_CHECKING:
    from flask import Flask

T = TypeVar("T")

REAL_ENGINE_MARK = "real_face_engine"
_ENGINE_TESTS = Path(__file__).resolve().parent / "faces"
CACHE_VARIABLE = "GATEKEEPER_FACE_CACHE"
DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / ".cache" / "face-answers"
# Distributions whose code or data the engine's answers depend on.
_DISTRIBUTIONS = ("dlib", "dlib-bin", "face-recognition-models", "numpy", "pillow")
# What DlibFaceEngine takes, with its defaults (the worker count excepted: see above).
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(DlibFaceEngine).parameters.items()
    if name != "workers"
}

# Real engines, one per set of options, shared by every recorded engine in this process: the models
# load once, and only when an answer is missing.
_real_engines: dict[str, DlibFaceEngine] = {}
_real_lock = threading.Lock()


def cache_folder() -> Path:
    """Where answers are kept: $GATEKEEPER_FACE_CACHE, else .cache/face-answers in the repository."""
    configured = os.environ.get(CACHE_VARIABLE)
    return Path(configured) if configured else DEFAULT_FOLDER


@cache
def engine_source_fingerprint() -> str:
    """sha256 of gatekeeper/faces/*.py, the limits the engine reports, and the versions it runs on."""
    digest = hashlib.sha256()
    folder = Path(gatekeeper.faces.__file__).parent
    for path in sorted(folder.glob("*.py")):
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    digest.update(f"{policy.TIME_LIMIT}\0{policy.TOO_MANY_FACES}\0".encode())
    for name in _DISTRIBUTIONS:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{name}={version}\0".encode())
    return digest.hexdigest()


class RecordedFaceEngine:
    """A FaceEngine whose every answer is the one a real DlibFaceEngine with `options` gave, read from
    disk when the same question was asked before (see the module's description).

    `options` are DlibFaceEngine's keyword arguments (the worker count excepted); `recorded(settings)`
    gives the ones a runtime would use. `hits` and `misses` count the answers found and asked for.
    """

    model = DlibFaceEngine.model

    def __init__(self, options: Mapping[str, Any] | None = None, *, folder: Path | None = None) -> None:
        unknown = set(options or {}) - set(_DEFAULTS)
        if unknown:
            raise TypeError(f"not DlibFaceEngine options: {', '.join(sorted(unknown))}")
        self.options: dict[str, Any] = {**_DEFAULTS, **(options or {})}
        self.min_detect_px: int = self.options["min_detect_px"]
        self.folder = folder if folder is not None else cache_folder()
        described = repr(sorted(self.options.items()))
        self._fingerprint = hashlib.sha256(f"{engine_source_fingerprint()}\0{described}".encode()).hexdigest()
        self.hits = 0
        self.misses = 0

    @property
    def real(self) -> DlibFaceEngine:
        """The real engine with these options (built on first use, once per process)."""
        with _real_lock:
            engine = _real_engines.get(self._fingerprint)
            if engine is None:
                engine = DlibFaceEngine(**self.options)
                _real_engines[self._fingerprint] = engine
            return engine

    def analyse(self, pixels: np.ndarray) -> FaceAnalysis:
        """The real engine's analysis of these pixels; raises what it raised."""
        return self._answer("analyse", pixels, FaceAnalysis)

    def encode_single(self, pixels: np.ndarray) -> np.ndarray:
        """The real engine's enrolment encoding of these pixels; raises what it raised
        (EnrolmentPhotoError with the same message, reason and count of faces)."""
        return self._answer("encode_single", pixels, np.ndarray)

    def entry(self, method: str, pixels: np.ndarray) -> Path:
        """The file that keeps the answer of `method` for these pixels."""
        digest = hashlib.sha256(f"{self._fingerprint}\0{method}\0".encode())
        contiguous = np.ascontiguousarray(pixels)
        digest.update(f"{contiguous.dtype.str}\0{contiguous.shape}\0".encode())
        digest.update(contiguous.data)
        key = digest.hexdigest()
        return self.folder / self._fingerprint[:16] / key[:2] / f"{key}.pickle"

    def _answer(self, method: str, pixels: np.ndarray, kind: type[T]) -> T:
        if not isinstance(pixels, np.ndarray):
            # The real engine refuses it (FaceError), and there is nothing to key it by.
            return getattr(self.real, method)(pixels)
        path = self.entry(method, pixels)
        kept = _read(path, kind)
        if kept is not None:
            self.hits += 1
            return _replay(kept)  # type: ignore[no-any-return]
        self.misses += 1
        # Built first: models that cannot load are this process's problem, not an answer to record.
        ask: Callable[[np.ndarray], T] = getattr(self.real, method)
        started = time.monotonic()
        try:
            answer = ask(pixels)
        except FaceError as exc:
            if self._in_time(started):
                _write(path, ("raised", type(exc), exc.args, dict(vars(exc))))
            raise
        if self._in_time(started):
            _write(path, ("returned", answer))
        return answer

    def _in_time(self, started: float) -> bool:
        """Whether an answer came before the engine's time limit could have cut it short."""
        limit: float = self.options["time_limit_s"]
        return time.monotonic() - started < limit


def recorded(settings: Settings) -> RecordedFaceEngine:
    """The recorded engine for the dlib engine a runtime on `settings` would build."""
    return RecordedFaceEngine(face_engine_options(settings.faces))


def recorded_runtime(settings: Settings, **options: Any) -> Runtime:
    """A runtime on `settings` (Runtime's other options as given) answered by the recorded engine."""
    return Runtime(settings, faces=recorded(settings), **options)


def compose_app(settings: Settings, faces: FaceEngine | None) -> Flask:
    """The web app as create_app composes it (with its job queue), its runtime given `faces` (None:
    the real engine)."""
    from gatekeeper.web import build_app
    from workers import JobQueue

    return build_app(Runtime(settings, sender=JobQueue, faces=faces))


def engine_for(request: pytest.FixtureRequest, settings: Settings) -> RecordedFaceEngine | None:
    """The face engine a test's runtime is given: the recorded engine; None (the runtime builds the
    real one) for the engine's own tests (tests/faces/) and tests marked real_face_engine."""
    item = request.node
    if item.get_closest_marker(REAL_ENGINE_MARK) is not None or item.path.is_relative_to(_ENGINE_TESTS):
        return None
    return recorded(settings)


def _read(path: Path, kind: type) -> tuple[Any, ...] | None:
    """The entry at `path` when it holds a well-formed answer of `kind` or a FaceError; else None."""
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh)
    except FileNotFoundError:
        return None
    except Exception:
        return None  # torn or from an incompatible version: asked again, and replaced
    if not isinstance(entry, tuple) or not entry:
        return None
    if entry[0] == "returned" and len(entry) == 2 and isinstance(entry[1], kind):
        return entry
    if (
        entry[0] == "raised"
        and len(entry) == 4
        and isinstance(entry[1], type)
        and issubclass(entry[1], FaceError)
        and isinstance(entry[2], tuple)
        and isinstance(entry[3], dict)
    ):
        return entry
    return None


def _replay(entry: tuple[Any, ...]) -> Any:
    """The recorded answer, or the recorded error raised again."""
    if entry[0] == "returned":
        return entry[1]
    _, cls, args, fields = entry
    # Rebuilt as it was, not through its constructor (EnrolmentPhotoError's takes keywords).
    error = cls.__new__(cls)
    error.args = args
    vars(error).update(fields)
    raise error


def _write(path: Path, entry: tuple[Any, ...]) -> None:
    """Write an entry whole: a temporary file beside it, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(entry, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
