"""Merging boxes from overlapping windows and rotation probes: one box per face, the best one."""

from __future__ import annotations

import pytest

from gatekeeper.faces.merging import Candidate, merged


def box(left, top, right, bottom, score=0.5, turned=False) -> Candidate:
    return Candidate(left, top, right, bottom, score, 90 if turned else 0)


@pytest.mark.parametrize(
    ("candidates", "kept"),
    [
        ([], []),
        ([box(0, 0, 10, 10)], [0]),
        # IoU 0.47 (one face found twice): the higher score stays.
        ([box(0, 0, 100, 100, 0.2), box(20, 20, 120, 120, 0.9)], [1]),
        # IoU 0.14 and neither mostly inside the other: two faces side by side.
        ([box(0, 0, 100, 100), box(75, 0, 175, 100)], [0, 1]),
        # A face cut by a tile edge (60 % inside the whole one): the whole one stays.
        ([box(0, 0, 100, 100, 0.9), box(40, 0, 140, 100, 0.1)], [0]),
        # Touching edges only: no overlap.
        ([box(0, 0, 10, 10), box(10, 0, 20, 10)], [0, 1]),
        # An upright box beats a turned one over the same face, whatever the scores.
        ([box(0, 0, 100, 100, 2.0, turned=True), box(5, 5, 100, 100, 0.0)], [1]),
        # A chain: A overlaps B, B overlaps C, A and C apart. B (best) absorbs both.
        ([box(0, 0, 100, 100, 0.1), box(30, 0, 130, 100, 0.9), box(60, 0, 160, 100, 0.2)], [1]),
        # A box with no area overlaps nothing: it is kept.
        ([box(0, 0, 100, 100, 0.9), box(50, 50, 50, 60, 0.1)], [0, 1]),
    ],
)
def test_overlapping_boxes_merge_to_the_best_one(candidates, kept):
    result = merged(candidates)

    assert sorted(result, key=lambda c: (c.left, c.top)) == sorted(
        (candidates[i] for i in kept), key=lambda c: (c.left, c.top)
    )
