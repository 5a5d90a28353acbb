"""DlibFaceEngine on real corpus photos: boxes, enrolment rules, small faces, input handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from gatekeeper.errors import EnrolmentPhotoError, FaceError
from gatekeeper.faces import DlibFaceEngine, FaceAnalysis

OBAMA_SMALL_BOX = (103, 68, 211, 175)  # manifest box of obama/obama_small.jpg (320x240)


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(width, 0) * max(height, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def scaled(pixels: np.ndarray, factor: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    size = (round(width * factor), round(height * factor))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def test_engine_names_the_recognition_model(engine):
    assert engine.model == "dlib_face_recognition_resnet_model_v1"


def test_enrolment_photo_of_one_person_gives_one_128_value_encoding(engine, corpus, load_rgb):
    encoding = engine.encode_single(load_rgb(corpus.faces_dir / "obama" / "obama_small.jpg"))

    assert encoding.shape == (128,)
    assert encoding.dtype == np.float64


@pytest.mark.parametrize(("file", "faces"), [("group/two_people.jpg", 2), ("group/obama_and_biden.jpg", 3)])
def test_enrolment_refuses_a_group_photo_and_says_how_many_faces(engine, corpus, load_rgb, file, faces):
    with pytest.raises(EnrolmentPhotoError) as caught:
        engine.encode_single(load_rgb(corpus.faces_dir / file))

    assert caught.value.faces_found == faces


def test_enrolment_refuses_a_photo_with_no_face(engine, corpus, load_rgb):
    with pytest.raises(EnrolmentPhotoError) as caught:
        engine.encode_single(load_rgb(corpus.metadata_dir / "canon_eos_40d.jpg"))

    assert caught.value.faces_found == 0


def test_a_photo_with_no_face_gives_no_detections(engine, corpus, load_rgb):
    assert engine.analyse(load_rgb(corpus.metadata_dir / "canon_eos_40d.jpg")) == FaceAnalysis(faces=())


def test_face_below_the_minimum_size_is_reported_too_small_without_an_encoding(engine, corpus, load_rgb):
    # obama_small's face is 108 px wide; at 0.3 it is about 32 px, still found by HOG (upsample 1).
    small = scaled(load_rgb(corpus.faces_dir / "obama" / "obama_small.jpg"), 0.3)

    faces = engine.analyse(small).faces

    assert len(faces) == 1
    assert faces[0].too_small is True
    assert faces[0].encoding is None
    assert min(faces[0].box[2] - faces[0].box[0], faces[0].box[3] - faces[0].box[1]) < 40


def test_enrolment_refuses_a_face_below_the_minimum_size(engine, corpus, load_rgb):
    small = scaled(load_rgb(corpus.faces_dir / "obama" / "obama_small.jpg"), 0.3)

    with pytest.raises(EnrolmentPhotoError) as caught:
        engine.encode_single(small)

    assert caught.value.faces_found == 1


def test_faces_come_back_sorted_by_left_edge(engine, corpus, load_rgb):
    # dlib reports the right-hand face of this photo first.
    faces = engine.analyse(load_rgb(corpus.faces_dir / "group" / "two_people.jpg")).faces

    lefts = [face.box[0] for face in faces]
    assert lefts == sorted(lefts)
    assert len(lefts) == 2


def test_box_of_a_face_cut_by_the_image_border_is_clipped_to_the_image(engine, corpus, load_rgb):
    pixels = load_rgb(corpus.faces_dir / "obama" / "obama_partial_face.jpg")

    (face,) = engine.analyse(pixels).faces

    left, top, right, bottom = face.box
    assert left == 0
    assert 0 <= top < bottom <= pixels.shape[0]
    assert right <= pixels.shape[1]
    assert face.encoding is not None


def test_a_cropped_view_of_an_image_still_finds_the_face(engine, corpus, load_rgb):
    # A numpy slice is a strided view; dlib silently sees nothing in one unless it is copied.
    pixels = load_rgb(corpus.faces_dir / "obama" / "obama_small.jpg")

    faces = engine.analyse(pixels[:, 50:]).faces

    assert len(faces) == 1
    assert iou(faces[0].box, (53, 68, 161, 175)) > 0.8


def test_large_image_searched_in_tiles_gives_the_same_face_once_in_full_size_pixels(engine, corpus, load_rgb):
    pixels = load_rgb(corpus.faces_dir / "obama" / "obama.jpg")  # 910x1137, manifest box below
    (full_size,) = engine.analyse(pixels).faces

    # Tiles of 256 detector pixels: a coarse pass plus many overlapping tiles, merged to one face.
    (face,) = DlibFaceEngine(tile_px=256, probe_step=0).analyse(pixels).faces

    assert iou(face.box, (349, 142, 617, 409)) > 0.7
    assert face.encoding is not None and full_size.encoding is not None
    assert np.linalg.norm(face.encoding - full_size.encoding) < 0.05


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float64),
        np.zeros((0, 10, 3), dtype=np.uint8),
    ],
    ids=["grey", "rgba", "float", "empty"],
)
def test_pixels_that_are_not_hxwx3_uint8_are_refused(engine, pixels):
    with pytest.raises(FaceError):
        engine.analyse(pixels)


@pytest.mark.parametrize(
    "settings",
    [
        {"min_face_px": 0},
        {"min_detect_px": 4},
        {"probe_step": 7},
        {"probe_step": -45},
        {"tile_px": 100},
        {"max_faces": 0},
        {"time_limit_s": 0},
        {"possible_score": 0.5},
    ],
)
def test_engine_settings_out_of_range_are_refused(settings):
    with pytest.raises(ValueError):
        DlibFaceEngine(**settings)


def test_dlib_loads_only_when_an_engine_is_built_and_leaves_pillow_settings_alone():
    # A fresh interpreter: in this one dlib is already imported. -W error also proves
    # the pkg_resources warning is silenced by the engine itself, not by pytest's filters.
    script = textwrap.dedent(
        """
        import sys
        from PIL import ImageFile
        import gatekeeper.faces
        assert "dlib" not in sys.modules and "face_recognition" not in sys.modules
        for before in (False, True):
            ImageFile.LOAD_TRUNCATED_IMAGES = before
            gatekeeper.faces.DlibFaceEngine()
            assert ImageFile.LOAD_TRUNCATED_IMAGES is before, before
        # face_recognition's API (five models, and a process-wide Pillow flag) is never imported.
        assert "dlib" in sys.modules and "face_recognition" not in sys.modules
        print("checked")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120
    )

    # face_recognition quit()s with status 0 when its models fail to import: require the marker.
    assert (result.returncode, result.stdout.strip()) == (0, "checked"), result.stderr
