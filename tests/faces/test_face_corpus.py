"""The engine and the configured thresholds against every face of the real corpus."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gatekeeper.config import Settings
from gatekeeper.faces import DetectedFace, TemplateIndex

pytestmark = pytest.mark.slow

UNKNOWN = "unknown"
SETTINGS = Settings()


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def analysed(corpus, engine, load_rgb) -> dict[str, tuple[DetectedFace, ...]]:
    """Every corpus/faces photo analysed once for this module (about 12 s on two cores)."""
    return {entry.file: engine.analyse(load_rgb(entry.path)).faces for entry in corpus.faces()}


@pytest.fixture(scope="module")
def labelled(corpus, analysed) -> list[tuple[str, str, np.ndarray]]:
    """(file, identity, encoding) for every face, identities taken left to right from the manifest."""
    faces = []
    for entry in corpus.faces():
        found = analysed[entry.file]
        assert len(found) == len(entry.identities), entry.file
        for identity, face in zip(entry.identities, found, strict=True):
            assert face.encoding is not None, entry.file
            faces.append((entry.file, identity, face.encoding))
    return faces


def test_each_single_person_photo_gives_one_face_on_the_manifest_box(corpus, analysed):
    wrong = []
    for entry in corpus.faces():
        if len(entry.identities) != 1:
            continue
        found = analysed[entry.file]
        if len(found) != 1 or iou(found[0].box, entry.boxes[0]) <= 0.5 or found[0].encoding is None:
            wrong.append((entry.file, [face.box for face in found], entry.boxes[0]))

    assert wrong == []
    assert sum(len(entry.identities) == 1 for entry in corpus.faces()) == 23


def test_each_group_photo_gives_the_manifest_faces_left_to_right(corpus, analysed):
    groups = [entry for entry in corpus.faces() if len(entry.identities) > 1]

    for entry in groups:
        found = analysed[entry.file]
        assert len(found) == len(entry.identities), entry.file
        for face, box in zip(found, entry.boxes, strict=True):
            assert iou(face.box, box) > 0.5, (entry.file, face.box, box)
    assert len(groups) == 3


def test_same_person_pairs_are_within_the_accept_distance(labelled):
    same = [
        (float(np.linalg.norm(a[2] - b[2])), a[0], b[0])
        for a, b in itertools.combinations(labelled, 2)
        if a[1] == b[1] != UNKNOWN
    ]

    assert len(same) == 109
    assert [pair for pair in same if pair[0] > SETTINGS.policy.accept_distance] == []


def test_every_different_person_pair_is_beyond_the_review_distance(labelled):
    different = [
        (float(np.linalg.norm(a[2] - b[2])), a[0], a[1], b[0], b[1])
        for a, b in itertools.combinations(labelled, 2)
        if a[1] != b[1] or a[1] == UNKNOWN
    ]

    assert len(different) == 326
    assert [pair for pair in different if pair[0] <= SETTINGS.policy.review_distance] == []


def test_group_faces_match_their_people_enrolled_from_single_photos(labelled):
    # One template per person from a single-person photo, as enrolment would make them.
    enrolment = {
        "obama": "obama/obama.jpg",
        "biden": "biden/biden.jpg",
        "kit_harington": "kit_harington/kit_harington_john1.jpeg",
        "rose_leslie": "rose_leslie/rose_leslie_img2.jpg",
    }
    templates = [(identity, enc) for file, identity, enc in labelled if enrolment.get(identity) == file]
    index = TemplateIndex([key for key, _ in templates], np.stack([enc for _, enc in templates]))

    for file, identity, encoding in labelled:
        if not file.startswith("group/"):
            continue
        matches = index.best_matches(encoding)
        if identity == UNKNOWN:
            assert matches[0].distance > SETTINGS.policy.review_distance, file
        else:
            assert matches[0].key == identity, file
            assert matches[0].distance <= SETTINGS.policy.accept_distance, file
            assert matches[1].distance - matches[0].distance >= SETTINGS.policy.margin, file
