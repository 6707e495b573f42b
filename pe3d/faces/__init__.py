"""Faces in real photos: dlib detection and landmarks, FFHQ-style alignment, camera estimation.

The models are the pretrained dlib networks that pip installs with their weights
(``dlib-bin`` + ``face-recognition-models``); nothing is downloaded at run time.
:func:`prepare_portrait` is the one entry point from a photo to the editor's input (aligned
crop + EG3D camera); :func:`align_pair` cuts an example pair (photo and edit) with the photo's face.
"""

from pe3d.faces.align import AlignedFace, FaceSquare, align_face, ffhq_square, portrait_square
from pe3d.faces.camera import CameraEstimate, estimate_camera, solve_pnp
from pe3d.faces.detect import Face, FaceSelectionError, choose_face, detect_faces, face_embedding
from pe3d.faces.models import FaceModelsMissing, dlib_models, find_model_file
from pe3d.faces.portrait import PreparedPortrait, align_pair, prepare_portrait

__all__ = [
    "AlignedFace",
    "CameraEstimate",
    "Face",
    "FaceModelsMissing",
    "FaceSelectionError",
    "FaceSquare",
    "PreparedPortrait",
    "align_face",
    "align_pair",
    "choose_face",
    "detect_faces",
    "dlib_models",
    "estimate_camera",
    "face_embedding",
    "ffhq_square",
    "find_model_file",
    "portrait_square",
    "prepare_portrait",
    "solve_pnp",
]
