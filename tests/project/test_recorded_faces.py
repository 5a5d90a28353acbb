"""The recorded face engine most tests use (tests/engines.py): the real engine's answers, kept on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engines import RecordedFaceEngine, recorded

from gatekeeper import policy
from gatekeeper.errors import EnrolmentPhotoError
from gatekeeper.faces import DlibFaceEngine, FaceAnalysis
from gatekeeper.media import decode
from gatekeeper.runtime import Runtime

pytestmark = pytest.mark.slow

# Upright only: these tests are about keeping answers, and one angle answers quickest.
OPTIONS = {"probe_step": 0, "time_limit_s": 600.0}


def _pixels(corpus: Any, name: str) -> np.ndarray:
    return decode((corpus.faces_dir / name).read_bytes(), max_pixels=50_000_000).pixels


def _same(a: FaceAnalysis, b: FaceAnalysis) -> bool:
    """Equal analyses: every field, encodings included, bit for bit."""
    if (a.limit, a.min_detect_px, a.looked, a.dismissed, len(a.faces)) != (
        b.limit,
        b.min_detect_px,
        b.looked,
        b.dismissed,
        len(b.faces),
    ):
        return False
    for f, g in zip(a.faces, b.faces, strict=True):
        if (f.box, f.too_small, f.score, f.possible, f.angle, f.quality, f.second_look) != (
            g.box,
            g.too_small,
            g.score,
            g.possible,
            g.angle,
            g.quality,
            g.second_look,
        ):
            return False
        if (f.encoding is None) != (g.encoding is None):
            return False
        if f.encoding is not None and not np.array_equal(f.encoding, g.encoding):
            return False
    return True


def test_answers_are_the_real_engines_and_are_read_back_from_disk(corpus: Any, tmp_path: Path) -> None:
    pixels = _pixels(corpus, "kit_harington/kit_harington_john2.jpeg")
    first = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    analysis = first.analyse(pixels)
    encoding = first.encode_single(pixels)
    assert (first.hits, first.misses) == (0, 2)
    assert _same(analysis, first.real.analyse(pixels))
    assert np.array_equal(encoding, first.real.encode_single(pixels))
    assert len(analysis.faces) == 1 and analysis.faces[0].encoding is not None

    again = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    assert _same(again.analyse(pixels), analysis)
    # A view of the same pixels (not contiguous in memory) is the same question.
    assert np.array_equal(again.encode_single(np.asfortranarray(pixels)), encoding)
    assert (again.hits, again.misses) == (2, 0)
    assert (again.model, again.min_detect_px) == (DlibFaceEngine.model, first.real.min_detect_px)


def test_an_enrolment_refusal_is_raised_again_as_the_engine_raised_it(corpus: Any, tmp_path: Path) -> None:
    pixels = _pixels(corpus, "group/kit_with_rose.jpg")
    with pytest.raises(EnrolmentPhotoError) as raised:
        RecordedFaceEngine(OPTIONS, folder=tmp_path).encode_single(pixels)
    again = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    with pytest.raises(EnrolmentPhotoError) as replayed:
        again.encode_single(pixels)
    assert (again.hits, again.misses) == (1, 0)
    assert type(replayed.value) is type(raised.value)
    assert str(replayed.value) == str(raised.value)
    assert replayed.value.args == raised.value.args
    assert (replayed.value.reason, replayed.value.faces_found) == ("several_faces", 2)
    assert vars(replayed.value) == vars(raised.value)


def test_a_damaged_entry_is_asked_again_and_replaced(corpus: Any, tmp_path: Path) -> None:
    pixels = _pixels(corpus, "kit_harington/kit_harington_john2.jpeg")
    engine = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    analysis = engine.analyse(pixels)
    entry = engine.entry("analyse", pixels)
    entry.write_bytes(entry.read_bytes()[:40])  # cut short, as a crash mid-write would leave it

    again = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    assert _same(again.analyse(pixels), analysis)
    assert (again.hits, again.misses) == (0, 1)
    third = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    assert _same(third.analyse(pixels), analysis)
    assert (third.hits, third.misses) == (1, 0)
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_the_question_names_the_pixels_the_method_and_the_options(tmp_path: Path) -> None:
    pixels = np.zeros((40, 30, 3), dtype=np.uint8)
    engine = RecordedFaceEngine(OPTIONS, folder=tmp_path)
    changed = pixels.copy()
    changed[39, 29, 2] = 1
    entries = {
        engine.entry("analyse", pixels),
        engine.entry("encode_single", pixels),
        engine.entry("analyse", changed),
        engine.entry("analyse", pixels.reshape(30, 40, 3)),
        RecordedFaceEngine({**OPTIONS, "max_faces": 3}, folder=tmp_path).entry("analyse", pixels),
        RecordedFaceEngine({**OPTIONS, "probe_step": 90}, folder=tmp_path).entry("analyse", pixels),
    }
    assert len(entries) == 6
    assert engine.entry("analyse", pixels.copy()) == engine.entry("analyse", pixels)
    with pytest.raises(TypeError, match="workers"):
        RecordedFaceEngine({"workers": 2})


def test_an_answer_cut_short_by_the_time_limit_is_not_kept(corpus: Any, tmp_path: Path) -> None:
    pixels = _pixels(corpus, "kit_harington/kit_harington_john2.jpeg")
    engine = RecordedFaceEngine({**OPTIONS, "time_limit_s": 1e-9}, folder=tmp_path)
    assert engine.analyse(pixels).limit == policy.TIME_LIMIT
    assert not engine.entry("analyse", pixels).exists()
    assert engine.analyse(pixels).limit == policy.TIME_LIMIT
    assert (engine.hits, engine.misses) == (0, 2)


def test_a_runtime_given_an_engine_uses_it(settings: Any) -> None:
    engine = recorded(settings)
    assert Runtime(settings, faces=engine).faces is engine
    assert engine.options["probe_step"] == settings.faces.probe_step
    assert engine.options["max_faces"] == settings.faces.max_faces


def test_the_runtime_fixture_answers_from_recorded_answers(runtime: Any) -> None:
    assert isinstance(runtime.faces, RecordedFaceEngine)


@pytest.mark.real_face_engine
def test_a_test_marked_real_face_engine_gets_the_real_engine(runtime: Any) -> None:
    assert isinstance(runtime.faces, DlibFaceEngine)
    assert runtime.faces.probe_step == runtime.settings.faces.probe_step
