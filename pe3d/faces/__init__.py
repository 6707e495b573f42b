"""Faces in real photos: dlib detection, landmarks and identity embeddings.

The models are the pretrained dlib networks that pip installs with their weights
(``dlib-bin`` + ``face-recognition-models``); nothing is downloaded at run time.
"""

from pe3d.faces.detect import Face, FaceSelectionError, choose_face, detect_faces
from pe3d.faces.models import FaceModelsMissing, dlib_models, find_model_file

__all__ = [
    "Face",
    "FaceSelectionError",
    "FaceModelsMissing",
    "choose_face",
    "detect_faces",
    "dlib_models",
    "find_model_file",
]
