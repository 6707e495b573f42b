"""Locating and loading dlib's pretrained face models that ship inside pip packages.

``face_recognition_models``'s own ``import`` needs ``pkg_resources`` (gone from new
setuptools), so the model files are found from the package's import spec instead.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pe3d.errors import InputFileNotFound

MODEL_FILES = {
    "landmarks68": "shape_predictor_68_face_landmarks.dat",
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}
"""Short name -> file name of each dlib model we use."""

INSTALL_HINT = "pip install dlib-bin face-recognition-models"


class FaceModelsMissing(InputFileNotFound):
    """dlib or its model files are not installed; the message says how to install them."""


def model_directory() -> Path:
    """The folder holding dlib's ``.dat`` models (``$PE3D_FACE_MODELS`` overrides the package)."""
    override = os.environ.get("PE3D_FACE_MODELS")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing(f"face models not installed (package face_recognition_models); run: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def find_model_file(name: str) -> Path:
    """Path of dlib model ``name`` (a key of :data:`MODEL_FILES`); a clear error when absent."""
    if name not in MODEL_FILES:
        raise KeyError(f"unknown face model {name!r}; known: {', '.join(sorted(MODEL_FILES))}")
    path = model_directory() / MODEL_FILES[name]
    if not path.is_file():
        raise FaceModelsMissing(f"{path}: face model file not found; run: {INSTALL_HINT}")
    return path


@dataclass(frozen=True)
class DlibModels:
    """The loaded dlib objects: HOG detector, 68-point shape predictor, 128-d recognition ResNet."""

    detector: object
    landmarks68: object
    recognition: object


@lru_cache(maxsize=1)
def dlib_models() -> DlibModels:
    """Load (once per process) the dlib detector, landmark predictor and recognition network."""
    try:
        import dlib
    except ImportError as error:
        raise FaceModelsMissing(f"dlib is not installed ({error}); run: {INSTALL_HINT}") from None
    return DlibModels(
        detector=dlib.get_frontal_face_detector(),
        landmarks68=dlib.shape_predictor(str(find_model_file("landmarks68"))),
        recognition=dlib.face_recognition_model_v1(str(find_model_file("recognition"))),
    )
