"""Camera estimation from 2D landmarks: a PnP solve against the generic 3D face, mapped to EG3D.

The landmarks must be in an *aligned* crop (:mod:`pe3d.faces.align`), whose framing matches the
world's FFHQ camera, so the crop is modelled with the FFHQ intrinsics (normalized focal
4.2647, principal point at the centre). :func:`solve_pnp` finds the rotation and translation
that project :data:`~pe3d.faces.face_model.GENERIC_FACE` onto the landmarks (scipy least
squares on the reprojection error, robust ``soft_l1`` loss, started from the frontal camera),
together with four vertical shape modes of the face under Gaussian priors
(:func:`~pe3d.faces.face_model.shape_modes`), so faces whose proportions differ from the
world's mean do not turn into a wrong pitch.
:func:`orbit_angles` then turns the rotation into the EG3D convention: the yaw and pitch of
the camera on the FFHQ orbit (radius 2.7, looking at ``(0, 0, 0.2)``) whose viewing direction
in the head's frame is the solved one. The translation is dropped (alignment already fixed
position and scale), and so is the residual roll (alignment levelled the eyes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation
from torch import Tensor

from pe3d.faces.face_model import GENERIC_FACE, INNER_LANDMARKS, SHAPE_MODE_SIGMAS, shape_modes
from pe3d.geometry import FFHQ_FOV_DEG, FFHQ_LOOKAT, FFHQ_RADIUS, cam2world_from_yaw_pitch, intrinsics_from_fov, label_from_yaw_pitch

YAW_LIMIT_DEG: float = 45.0
"""Largest |yaw| used for a camera label (the training poses stop near 46°)."""
PITCH_LIMIT_DEG: float = 22.0
"""Largest |pitch| used for a camera label (the training poses stop near 23°)."""
ROBUST_SCALE: float = 0.01
"""Reprojection error (fraction of the crop side) beyond which the ``soft_l1`` loss turns linear:
one badly placed landmark (dlib on an unusual face) cannot drag the pose."""
PRIOR_WEIGHT: float = 0.01
"""A shape coefficient of one prior sigma costs as much as a 1 % reprojection error."""


@dataclass(frozen=True)
class PnPSolution:
    """World-to-camera pose of the generic face: ``x_cam = rotation @ x_world + translation``.

    Attributes:
        rotation: ``[3, 3]`` (rows: camera right, down, forward in world coordinates).
        translation: ``[3]``.
        rms_error: root-mean-square reprojection error, in fractions of the image side.
        shape: ``[K]`` fitted coefficients of the shape modes (empty without modes).
    """

    rotation: np.ndarray
    translation: np.ndarray
    rms_error: float
    shape: np.ndarray


@dataclass(frozen=True)
class CameraEstimate:
    """A photo's camera in the EG3D convention.

    Attributes:
        label: ``[25]`` EG3D camera label (yaw and pitch clamped to the training range).
        yaw_deg, pitch_deg: the solved angles (before clamping); positive yaw = camera towards the
            head's ``+x`` (the subject's left), positive pitch = camera above the face.
        roll_deg: the residual in-plane rotation the label ignores.
        rms_error: PnP reprojection error (fraction of the crop side).
    """

    label: Tensor
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    rms_error: float


def project(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray, focal: float) -> np.ndarray:
    """Pinhole projection of ``[N, 3]`` world points to normalized image coordinates ``[N, 2]`` in [0, 1]."""
    cam = points @ rotation.T + translation
    return focal * cam[:, :2] / cam[:, 2:3] + 0.5


def world_to_camera(label: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(rotation [3, 3], translation [3])`` of the world-to-camera map of an EG3D ``label [25]``."""
    cam2world = label.reshape(25)[:16].reshape(4, 4).double().numpy()
    rotation = cam2world[:3, :3].T
    return rotation, -rotation @ cam2world[:3, 3]


def solve_pnp(
    image_points: np.ndarray,
    model_points: np.ndarray,
    focal: float,
    initial: Tensor | None = None,
    modes: np.ndarray | None = None,
    mode_sigmas: Sequence[float] = (),
) -> PnPSolution:
    """Pose of ``model_points [N, 3]`` that projects them onto ``image_points [N, 2]`` (normalized coords).

    Args:
        image_points: ``[N, 2]`` observed points in [0, 1] image coordinates.
        model_points: ``[N, 3]`` the same points on the 3D model.
        focal: normalized focal length (EG3D intrinsics).
        initial: ``[25]`` camera label to start from (default: the frontal FFHQ camera).
        modes: optional ``[K, N, 3]`` linear deformations of the model fitted along with the pose,
            each coefficient with a Gaussian prior of standard deviation ``mode_sigmas[k]``.
    """
    image_points = np.asarray(image_points, dtype=np.float64)
    model_points = np.asarray(model_points, dtype=np.float64)
    if image_points.shape != (model_points.shape[0], 2) or model_points.shape[0] < 4:
        raise ValueError(f"need N >= 4 matching points [N, 2] / [N, 3], got {image_points.shape} and {model_points.shape}")
    modes = np.zeros((0, *model_points.shape)) if modes is None else np.asarray(modes, dtype=np.float64)
    sigmas = np.asarray(mode_sigmas, dtype=np.float64)
    if modes.shape[1:] != model_points.shape or sigmas.shape != (modes.shape[0],):
        raise ValueError(f"modes must be [K, {model_points.shape[0]}, 3] with K sigmas, got {modes.shape} and {sigmas.shape}")
    if initial is None:
        initial = label_from_yaw_pitch(0.0, 0.0)[0]
    base_rotation, base_translation = world_to_camera(initial)

    def pose(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return Rotation.from_rotvec(params[:3]).as_matrix() @ base_rotation, base_translation + params[3:6]

    def reprojection(params: np.ndarray) -> np.ndarray:
        points = model_points + np.tensordot(params[6:], modes, axes=1)
        return (project(points, *pose(params), focal) - image_points).ravel()

    def residuals(params: np.ndarray) -> np.ndarray:
        return np.concatenate([reprojection(params), PRIOR_WEIGHT * params[6:] / sigmas])

    fit = least_squares(residuals, np.zeros(6 + len(sigmas)), loss="soft_l1", f_scale=ROBUST_SCALE)
    rotation, translation = pose(fit.x)
    rms = float(np.sqrt(np.mean(reprojection(fit.x) ** 2) * 2))
    return PnPSolution(rotation, translation, rms, fit.x[6:].copy())


def orbit_forward(yaw: float, pitch: float) -> np.ndarray:
    """Viewing direction ``[3]`` (world, float64) of the FFHQ orbit camera at ``yaw``, ``pitch`` (radians).

    The same camera as :func:`pe3d.geometry.cam2world_from_yaw_pitch`, in double precision so
    the least-squares inversion in :func:`orbit_angles` gets exact finite differences.
    """
    origin = FFHQ_RADIUS * np.array([math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)])
    forward = np.asarray(FFHQ_LOOKAT, dtype=np.float64) - origin
    return forward / np.linalg.norm(forward)


def orbit_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` radians of the orbit camera looking the way a world-to-camera ``rotation`` does."""
    forward = rotation[2]
    start = np.array([math.atan2(-forward[0], -forward[2]), math.asin(float(np.clip(-forward[1], -1, 1)))])
    fit = least_squares(lambda angles: orbit_forward(*angles) - forward, start)
    yaw, pitch = (float(a) for a in fit.x)
    orbit_right = cam2world_from_yaw_pitch(yaw, pitch)[0, :3, 0].double().numpy()
    roll = math.atan2(float(np.dot(np.cross(orbit_right, rotation[0]), forward)), float(np.dot(orbit_right, rotation[0])))
    return yaw, pitch, roll


def estimate_camera(landmarks: np.ndarray, fov_deg: float = FFHQ_FOV_DEG) -> CameraEstimate:
    """EG3D camera of a face from its 68 landmarks ``[68, 2]`` in normalized aligned-crop coordinates ([0, 1])."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {landmarks.shape}")
    focal = float(intrinsics_from_fov(fov_deg)[0, 0])
    solution = solve_pnp(landmarks[list(INNER_LANDMARKS)], GENERIC_FACE, focal, modes=shape_modes(), mode_sigmas=SHAPE_MODE_SIGMAS)
    yaw, pitch, roll = orbit_angles(solution.rotation)
    yaw_deg, pitch_deg = math.degrees(yaw), math.degrees(pitch)
    used_yaw = max(-YAW_LIMIT_DEG, min(YAW_LIMIT_DEG, yaw_deg))
    used_pitch = max(-PITCH_LIMIT_DEG, min(PITCH_LIMIT_DEG, pitch_deg))
    label = label_from_yaw_pitch(math.radians(used_yaw), math.radians(used_pitch), fov_deg=fov_deg)[0]
    return CameraEstimate(label, yaw_deg, pitch_deg, math.degrees(roll), solution.rms_error)


def project_generic_face(label: Tensor) -> np.ndarray:
    """``[68, 2]`` normalized image coordinates of the generic face seen from ``label [25]``.

    The 17 jaw-line points the model does not hold are ``nan``; used to test the solver.
    """
    rotation, translation = world_to_camera(label)
    focal = float(label.reshape(25)[16])
    points = np.full((68, 2), np.nan)
    points[list(INNER_LANDMARKS)] = project(GENERIC_FACE, rotation, translation, focal)
    return points


__all__ = [
    "CameraEstimate",
    "PITCH_LIMIT_DEG",
    "PnPSolution",
    "YAW_LIMIT_DEG",
    "estimate_camera",
    "orbit_angles",
    "orbit_forward",
    "project",
    "project_generic_face",
    "solve_pnp",
    "world_to_camera",
]
