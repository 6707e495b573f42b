"""Real photos in: dlib detection, face choice, FFHQ-style alignment and camera estimation.

The photo is ``skimage.data.astronaut()`` (one face, 512x512); two faces are made by tiling
it; the camera solver is checked against exact projections of the generic face and against
world renders at known cameras (dlib runs on the procedural heads too).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from skimage import data as skimage_data

from pe3d.faces import FaceSelectionError, align_face, detect_faces, ffhq_square, prepare_portrait
from pe3d.faces.camera import estimate_camera, project_generic_face
from pe3d.geometry import label_from_yaw_pitch


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return torch.from_numpy(skimage_data.astronaut()).permute(2, 0, 1).float() / 255


@pytest.fixture(scope="module")
def two_astronauts(astronaut) -> torch.Tensor:
    right = torch.nn.functional.interpolate(astronaut[None], scale_factor=0.75, mode="area")[0]
    canvas = torch.ones(3, 512, 512 + 384)
    canvas[:, :, :512] = astronaut
    canvas[:, 64 : 64 + 384, 512:] = right
    return canvas


def test_astronaut_is_aligned_and_gets_a_plausible_camera(astronaut):
    portrait = prepare_portrait(astronaut, 128, source="astronaut.png")
    assert portrait.image.shape == (3, 128, 128) and portrait.camera.shape == (25,)
    assert portrait.face.box == (175, 76, 265, 166)
    # a nearly frontal studio portrait
    assert abs(portrait.yaw_deg) < 20 and abs(portrait.pitch_deg) < 15
    assert portrait.estimate.rms_error < 0.03
    # framed like the world's frontal renders: eyes level, just above the centre, ~0.22 of the width apart
    landmarks = portrait.aligned.to_aligned(portrait.face.landmarks) / 128
    left_eye, right_eye = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    assert abs(left_eye[1] - right_eye[1]) < 0.01
    assert 0.42 < (left_eye[1] + right_eye[1]) / 2 < 0.54
    assert 0.18 < right_eye[0] - left_eye[0] < 0.27
    assert 0.45 < (left_eye[0] + right_eye[0]) / 2 < 0.55
    # the transform maps back exactly and the crop shows what the transform says
    np.testing.assert_allclose(portrait.aligned.to_original(portrait.aligned.to_aligned(portrait.face.landmarks)), portrait.face.landmarks, atol=1e-6)
    x, y = np.round(portrait.aligned.to_original(np.array([[64.0, 64.0]]))[0]).astype(int)
    assert torch.allclose(portrait.image[:, 64, 64], astronaut[:, y, x], atol=0.12)


def test_alignment_of_a_world_render_is_nearly_the_identity():
    from pe3d.world import render_identity, sample_identity

    render = render_identity(sample_identity(0, 1_000_003), label_from_yaw_pitch([0.0], [0.0]), resolution=256)
    faces = detect_faces(render.rgb[0])
    assert len(faces) == 1
    aligned = align_face(render.rgb[0], faces[0].landmarks, 256)
    scale = np.sqrt(abs(np.linalg.det(aligned.matrix[:2, :2])))
    assert 0.9 < scale < 1.1
    assert np.abs(aligned.to_aligned(np.array([[128.0, 128.0]])) - 128).max() < 0.05 * 256
    assert (aligned.image - render.rgb[0]).abs().mean() < 0.06


def test_ffhq_square_follows_the_eyes_and_mouth():
    landmarks = np.zeros((68, 2))
    landmarks[36:42] = [100, 100]
    landmarks[42:48] = [140, 100]
    landmarks[[48, 54]] = [[105, 150], [135, 150]]
    square = ffhq_square(landmarks)
    # eye_to_eye 40, eye_to_mouth 50 -> half side max(80, 90) = 90, centre 5 px below the eye midpoint
    np.testing.assert_allclose(square.centre, [120.5, 105.5])
    np.testing.assert_allclose(square.right, [90, 0], atol=1e-9)
    np.testing.assert_allclose(square.down, [0, 90], atol=1e-9)


def test_two_faces_need_a_choice(two_astronauts):
    faces = detect_faces(two_astronauts)
    assert len(faces) == 2 and faces[0].area > faces[1].area
    with pytest.raises(FaceSelectionError, match=r"group\.png: found 2 faces; choose one with --face largest or --face N"):
        prepare_portrait(two_astronauts, 64, source="group.png")
    largest = prepare_portrait(two_astronauts, 64, face="largest")
    assert largest.face.box[0] < 512
    second = prepare_portrait(two_astronauts, 64, face=1)
    assert second.face.box[0] >= 512
    with pytest.raises(FaceSelectionError, match=r"--face 2 is out of range; found 2 face"):
        prepare_portrait(two_astronauts, 64, face=2)


def test_blank_image_has_no_face():
    with pytest.raises(FaceSelectionError, match=r"blank\.png: no face found"):
        prepare_portrait(torch.full((3, 96, 96), 0.5), 64, source="blank.png")


@pytest.mark.parametrize("yaw, pitch", [(0, 0), (25, 0), (-35, 8), (12, -15), (40, 18)])
def test_camera_is_recovered_from_projected_generic_face(yaw, pitch):
    label = label_from_yaw_pitch(math.radians(yaw), math.radians(pitch))[0]
    points = project_generic_face(label)
    points[np.isnan(points)] = 0.5  # jaw-line points are not used by the solver
    exact = estimate_camera(points)
    assert exact.yaw_deg == pytest.approx(yaw, abs=0.1) and exact.pitch_deg == pytest.approx(pitch, abs=0.1)
    assert torch.allclose(exact.label, label, atol=1e-3)
    noisy = estimate_camera(points + np.random.default_rng(yaw + 100).normal(0, 0.002, points.shape))
    assert noisy.yaw_deg == pytest.approx(yaw, abs=3) and noisy.pitch_deg == pytest.approx(pitch, abs=3)


def test_camera_of_world_renders_at_known_angles():
    from pe3d.world import render_identity, sample_identity

    views = [(20, 0), (-20, 0), (0, 12), (0, -12)]
    labels = label_from_yaw_pitch([math.radians(y) for y, _ in views], [math.radians(p) for _, p in views])
    errors = []
    for index in (1_000_001, 1_000_003):
        render = render_identity(sample_identity(0, index), labels, resolution=256)
        for k, (yaw, pitch) in enumerate(views):
            portrait = prepare_portrait(render.rgb[k], 128)
            errors.append((portrait.estimate.yaw_deg - yaw, portrait.estimate.pitch_deg - pitch))
    errors = np.abs(np.array(errors))
    assert np.median(errors, axis=0).max() < 4.0, errors
    assert errors.max() < 8.0, errors
