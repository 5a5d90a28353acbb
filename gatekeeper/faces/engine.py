"""Face detection and encoding: the FaceEngine interface and its dlib implementation.

Encodings live only in memory here. Nothing in this module stores them; the caller decides, and
only an enrolment template of a person with biometric consent is ever kept (DESIGN §2).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from PIL import Image, ImageFile

from gatekeeper.errors import EnrolmentPhotoError, FaceError

if TYPE_CHECKING:
    from numpy.typing import NDArray

ENCODING_SIZE = 128
DLIB_MODEL = "dlib_face_recognition_resnet_model_v1"


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an upright image; `box` is (left, top, right, bottom), clipped to the image."""

    box: tuple[int, int, int, int]
    encoding: NDArray[np.float64] | None
    too_small: bool


class FaceEngine(Protocol):
    """Finds faces in an image and encodes them for matching."""

    model: str

    def analyse(self, pixels: NDArray[np.uint8]) -> list[DetectedFace]:
        """Detect and encode every face in HxWx3 uint8 RGB pixels, sorted by left edge; raises FaceError."""
        ...

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face."""
        ...


class DlibFaceEngine:
    """HOG detection, 5-point alignment and the dlib ResNet encoder, through face_recognition's models."""

    model = DLIB_MODEL

    def __init__(self, *, min_face_px: int = 40, upsample: int = 1, max_side: int = 2400) -> None:
        """Load the dlib models; raises ValueError on bad settings, FaceError when the models cannot load."""
        if min_face_px < 1 or max_side < 1 or upsample < 0:
            raise ValueError(
                f"need min_face_px >= 1, max_side >= 1, upsample >= 0 "
                f"(got {min_face_px}, {max_side}, {upsample})"
            )
        self.min_face_px = min_face_px
        self.upsample = upsample
        self.max_side = max_side
        api = _load_face_recognition_api()
        import dlib  # already imported by face_recognition: no further cost

        self._detector: Any = api.face_detector
        # The 5-point predictor is the alignment the ResNet encoder was trained with.
        self._predictor: Any = api.pose_predictor_5_point
        self._encoder: Any = api.face_encoder
        self._rectangle: Any = dlib.rectangle

    def analyse(self, pixels: NDArray[np.uint8]) -> list[DetectedFace]:
        """Detect and encode every face in HxWx3 uint8 RGB pixels, sorted by left edge; raises FaceError."""
        image = _checked_pixels(pixels)
        height, width = image.shape[:2]
        faces = []
        for left, top, right, bottom in self._detect(image):
            box = (max(left, 0), max(top, 0), min(right, width), min(bottom, height))
            too_small = min(box[2] - box[0], box[3] - box[1]) < self.min_face_px
            encoding = None
            if not too_small:
                # Alignment gets the detector's unclipped rectangle: for a face cut by the border it
                # lands the landmarks better than the clipped box (measured on obama_partial_face).
                rect = self._rectangle(left, top, right, bottom)
                shape = self._predictor(image, rect)
                encoding = np.array(self._encoder.compute_face_descriptor(image, shape, 1), dtype=np.float64)
            faces.append(DetectedFace(box=box, encoding=encoding, too_small=too_small))
        faces.sort(key=lambda face: (face.box[0], face.box[1]))
        return faces

    def encode_single(self, pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Encode an enrolment photo's one face; raises EnrolmentPhotoError unless exactly one usable face."""
        faces = self.analyse(pixels)
        if len(faces) != 1:
            raise EnrolmentPhotoError(
                f"an enrolment photo must show exactly one face; found {len(faces)}",
                faces_found=len(faces),
            )
        face = faces[0]
        if face.encoding is None:
            side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
            raise EnrolmentPhotoError(
                f"the face in the enrolment photo is {side} px; at least {self.min_face_px} px is needed",
                faces_found=1,
            )
        return face.encoding

    def _detect(self, image: NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
        """Unclipped detector boxes in full-size coordinates."""
        height, width = image.shape[:2]
        scale = max(height, width) / self.max_side
        if scale <= 1:
            return [(r.left(), r.top(), r.right(), r.bottom()) for r in self._detector(image, self.upsample)]
        # HOG time grows with area (and 4x per upsample); huge photos are searched at max_side only.
        size = (max(1, round(width / scale)), max(1, round(height / scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        return [
            (
                round(r.left() * scale),
                round(r.top() * scale),
                round(r.right() * scale),
                round(r.bottom() * scale),
            )
            for r in self._detector(small, self.upsample)
        ]


def _checked_pixels(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """The pixels as a C-contiguous HxWx3 uint8 array; raises FaceError on any other shape or type."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise FaceError(f"pixels must be a uint8 numpy array (got {getattr(pixels, 'dtype', type(pixels))})")
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise FaceError(f"pixels must be HxWx3 RGB (got shape {pixels.shape})")
    # dlib finds no face at all, silently, in a strided view such as a crop: a fail-open trap.
    return np.ascontiguousarray(pixels)


def _load_face_recognition_api() -> Any:
    """Import face_recognition's loaded models without its process-wide side effects; raises FaceError."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings():
            # face_recognition_models imports pkg_resources, which warns on every import path.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import face_recognition.api as api
    except SystemExit as exc:
        # face_recognition calls quit() when face_recognition_models fails to import: that would
        # end a worker with status 0 and no word. Make it an error the caller sees.
        raise FaceError("face_recognition could not load face_recognition_models") from exc
    finally:
        # face_recognition turns on decoding of truncated images for the whole process; our media
        # readers must refuse truncated files, so the flag goes back to what it was.
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    return api
