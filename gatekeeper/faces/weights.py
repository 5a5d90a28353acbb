"""dlib's trained weights, loaded from face_recognition_models (and nothing else of face_recognition)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gatekeeper.errors import FaceError
from gatekeeper.faces.resnet import ResNetEncoder

DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"


@dataclass(frozen=True)
class Models:
    """What the engine runs: dlib's HOG and CNN detectors, 5-point predictor, the ResNet encoder."""

    dlib: Any
    detector: Any
    predictor: Any
    encoder: ResNetEncoder
    threads: Any  # a threadpoolctl controller for numpy's BLAS
    cnn: Any  # dlib's MMOD CNN face detector: the second look


def load_models() -> Models:
    """Load the four models from face_recognition_models; raises FaceError when they cannot load.

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
        cnn = dlib.cnn_face_detection_model_v1(files.cnn_face_detector_model_location())
    except (ImportError, RuntimeError) as exc:
        raise FaceError(f"the dlib face models could not be loaded: {exc}") from exc
    encoder = ResNetEncoder.load(Path(files.face_recognition_model_location()))
    return Models(dlib, detector, predictor, encoder, threadpoolctl.ThreadpoolController(), cnn)
