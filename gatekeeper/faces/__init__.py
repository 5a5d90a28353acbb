"""Faces: detection, encoding and matching behind one small interface.

Importing this package does not import dlib; DlibFaceEngine loads it when constructed, so commands
that never look at a face do not pay for the models.
"""

from gatekeeper.faces.codec import encoding_from_bytes, encoding_to_bytes
from gatekeeper.faces.engine import DetectedFace, DlibFaceEngine, FaceAnalysis, FaceEngine
from gatekeeper.faces.index import Match, TemplateIndex

__all__ = [
    "DetectedFace",
    "DlibFaceEngine",
    "FaceAnalysis",
    "FaceEngine",
    "Match",
    "TemplateIndex",
    "encoding_from_bytes",
    "encoding_to_bytes",
]
