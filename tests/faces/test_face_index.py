"""TemplateIndex: best distance per distinct person, vectorised over every template."""

from __future__ import annotations

import numpy as np
import pytest

from gatekeeper.errors import FaceError
from gatekeeper.faces import Match, TemplateIndex


def point(*values: float) -> np.ndarray:
    """A 128-d encoding whose first values are given and the rest zero."""
    encoding = np.zeros(128)
    encoding[: len(values)] = values
    return encoding


def test_empty_index_matches_nobody():
    index = TemplateIndex.empty()

    assert len(index) == 0
    assert index.best_matches(point(0.1)) == ()


def test_best_matches_are_ascending_by_distance():
    index = TemplateIndex(["far", "near", "middle"], np.stack([point(0.9), point(0.1), point(0.5)]))

    assert index.best_matches(point(0.0), limit=3) == (
        Match("near", pytest.approx(0.1)),
        Match("middle", pytest.approx(0.5)),
        Match("far", pytest.approx(0.9)),
    )


def test_two_templates_of_one_person_do_not_fill_both_slots():
    index = TemplateIndex(["ann", "ann", "ben"], np.stack([point(0.2), point(0.1), point(0.7)]))

    matches = index.best_matches(point(0.0))

    assert [m.key for m in matches] == ["ann", "ben"]
    assert matches[0].distance == pytest.approx(0.1)
    assert len(index) == 3


def test_best_distance_per_person_is_the_closest_of_their_templates_in_any_row_order():
    keys = ["ben", "ann", "cat", "ann", "ben"]
    rows = np.stack([point(0.8), point(0.6), point(0.3), point(0.2), point(0.4)])

    matches = TemplateIndex(keys, rows).best_matches(point(0.0), limit=5)

    assert [(m.key, round(m.distance, 6)) for m in matches] == [("ann", 0.2), ("cat", 0.3), ("ben", 0.4)]


def test_limit_caps_the_number_of_people_returned():
    index = TemplateIndex(["a", "b", "c"], np.stack([point(0.1), point(0.2), point(0.3)]))

    assert [m.key for m in index.best_matches(point(0.0), limit=1)] == ["a"]


def test_equal_distances_are_ordered_by_key():
    index = TemplateIndex(["b", "a"], np.stack([point(0.5), point(-0.5)]))

    assert [m.key for m in index.best_matches(point(0.0))] == ["a", "b"]


def test_changing_the_source_matrix_later_does_not_change_the_index():
    rows = np.stack([point(0.1), point(0.9)])
    index = TemplateIndex(["a", "b"], rows)

    rows[0] = point(5.0)

    assert index.best_matches(point(0.0))[0] == Match("a", pytest.approx(0.1))


@pytest.mark.parametrize(
    ("keys", "rows"),
    [
        (["a"], np.zeros((2, 128))),
        (["a", "b"], np.zeros((2, 64))),
        (["a"], np.full((1, 128), np.nan)),
        ("ab", np.zeros((2, 128))),
    ],
    ids=["fewer-keys-than-rows", "wrong-width", "not-finite", "keys-as-one-string"],
)
def test_inconsistent_templates_are_refused(keys, rows):
    with pytest.raises(FaceError):
        TemplateIndex(keys, rows)


@pytest.mark.parametrize("probe", [np.zeros(127), np.zeros((1, 128)), np.full(128, np.inf)])
def test_a_malformed_probe_encoding_is_refused(probe):
    index = TemplateIndex(["a"], np.zeros((1, 128)))

    with pytest.raises(FaceError):
        index.best_matches(probe)


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        TemplateIndex.empty().best_matches(point(0.0), limit=0)
