"""Cameras in the EG3D convention, ray and pose sampling."""

from pe3d.geometry.rays import pixel_grid, sample_rays
from pe3d.geometry.cameras import (
    FFHQ_FOV_DEG,
    FFHQ_LOOKAT,
    FFHQ_RADIUS,
    cam2world_from_yaw_pitch,
    camera_label,
    default_intrinsics,
    intrinsics_from_fov,
    label_from_yaw_pitch,
    look_at_cam2world,
    mirror_camera_labels,
    sample_camera_labels,
    split_label,
    yaw_pitch_from_cam2world,
)

__all__ = [
    "FFHQ_FOV_DEG",
    "FFHQ_LOOKAT",
    "FFHQ_RADIUS",
    "cam2world_from_yaw_pitch",
    "camera_label",
    "default_intrinsics",
    "intrinsics_from_fov",
    "label_from_yaw_pitch",
    "look_at_cam2world",
    "mirror_camera_labels",
    "sample_camera_labels",
    "split_label",
    "yaw_pitch_from_cam2world",
    "pixel_grid",
    "sample_rays",
]
