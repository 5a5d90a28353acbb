"""One photo shared among processes: the same faces, boxes, scores and encodings as with one.

dlib holds the GIL, so the engine forks copies of itself for a photo's tiles, rotation probes and
encoding batches (`workers`). These tests pin that the result does not depend on how many.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from gatekeeper.faces import DlibFaceEngine, FaceAnalysis
from gatekeeper.faces.pool import run_all


def same(a: FaceAnalysis, b: FaceAnalysis) -> bool:
    """Whether two analyses are identical, encodings bit for bit."""
    if a.limit != b.limit or len(a.faces) != len(b.faces):
        return False
    for f, g in zip(a.faces, b.faces, strict=True):
        if (f.box, f.score, f.too_small, f.possible) != (g.box, g.score, g.too_small, g.possible):
            return False
        if (f.encoding is None) != (g.encoding is None):
            return False
        if f.encoding is not None and not np.array_equal(f.encoding, g.encoding):
            return False
    return True


def test_a_tiled_group_photo_gives_the_same_analysis_with_one_process_or_two(corpus, load_rgb):
    pixels = load_rgb(corpus.faces_dir / "group" / "kit_with_rose.jpg")  # 501x700, two faces
    # Tiles of 256 detector pixels: a coarse pass and a dozen tiles to share out, two encodings.
    one = DlibFaceEngine(tile_px=256, workers=1, probe_step=90).analyse(pixels)
    two = DlibFaceEngine(tile_px=256, workers=2, probe_step=90).analyse(pixels)
    three = DlibFaceEngine(tile_px=256, workers=3, probe_step=90).analyse(pixels)

    assert len(one.faces) == 2 and all(f.encoding is not None for f in one.faces)
    assert same(one, two) and same(one, three)


@pytest.mark.parametrize("quarter", [1, 3])
def test_rotation_probes_shared_among_processes_find_the_same_sideways_face(corpus, load_rgb, quarter):
    pixels = np.rot90(load_rgb(corpus.faces_dir / "kit_harington" / "kit_harington_john2.jpeg"), quarter)

    one = DlibFaceEngine(workers=1).analyse(pixels)
    two = DlibFaceEngine(workers=2).analyse(pixels)

    assert any(f.second_look for f in one.faces)
    assert same(one, two)


@pytest.mark.slow
def test_crowd_gives_the_same_analysis_with_one_process_or_two(corpus, montage):
    pixels, _ = montage(corpus, [40 + (i * 16) % 81 for i in range(12)])

    one = DlibFaceEngine(workers=1).analyse(pixels)
    two = DlibFaceEngine(workers=2).analyse(pixels)

    assert len(one.faces) >= 12
    assert same(one, two)


def test_time_limit_with_several_processes_still_reports_faces_as_possible(corpus, montage):
    pixels, _ = montage(corpus, [80] * 4)

    analysis = DlibFaceEngine(time_limit_s=1e-9, workers=2).analyse(pixels)

    assert analysis.limit == "time_limit"
    assert all(f.encoding is None for f in analysis.faces)


def test_workers_below_one_are_refused():
    with pytest.raises(ValueError):
        DlibFaceEngine(workers=0)


def test_default_workers_is_one_per_core():
    assert DlibFaceEngine().workers == len(os.sched_getaffinity(0))


def _square(value: int) -> int:
    return value * value


def _dies_in_a_child(value: int, parent: int) -> int:
    if os.getpid() != parent:
        os._exit(3)  # a child lost mid-job: its jobs must be run again by the parent
    return value * value


def _fails(value: int) -> int:
    raise RuntimeError(f"job {value}")


def test_jobs_shared_among_processes_come_back_in_order():
    jobs = [functools.partial(_square, i) for i in range(20)]

    assert run_all(jobs, 2) == [i * i for i in range(20)]
    assert run_all(jobs, 1) == [i * i for i in range(20)]
    assert run_all(jobs[:1], 4) == [0]
    assert run_all([], 2) == []


def test_jobs_of_a_child_that_dies_are_run_again_here():
    jobs = [functools.partial(_dies_in_a_child, i, os.getpid()) for i in range(8)]

    assert run_all(jobs, 3) == [i * i for i in range(8)]


def test_an_error_in_a_job_reaches_the_caller():
    jobs = [functools.partial(_fails, i) for i in range(4)]

    with pytest.raises(RuntimeError):
        run_all(jobs, 2)


def test_when_no_process_can_be_forked_the_jobs_run_here(monkeypatch):
    def refuse() -> int:
        raise OSError("no more processes")

    monkeypatch.setattr(os, "fork", refuse)
    jobs = [functools.partial(_square, i) for i in range(5)]

    assert run_all(jobs, 2) == [i * i for i in range(5)]
