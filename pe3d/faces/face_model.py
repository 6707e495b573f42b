"""The generic 3D face used for camera estimation: mean 3D positions of dlib's inner landmarks.

Where the numbers come from: they are *measured on the embedded world*, the heads the model
was trained on, so a photo's estimated camera is the camera at which an average world head
shows the same landmark layout. :func:`measure_world_face` renders identities ``0..59`` of
seed 0 frontally at 256², runs dlib's 68-point predictor on each render (46 of 60 give exactly
one face), lifts every landmark to 3D through the render's ground-truth ray depth, takes the
per-landmark median over identities and symmetrises left/right (x mirrored). Only the 51
inner landmarks (brows 17-26, nose 27-35, eyes 36-47, mouth 48-67) are kept: the jaw-line
points 0-16 lie on the silhouette, which moves over the surface when the head turns, so
they are not fixed 3D points (their depth spread over identities was 5x the others').

For scale: the world head is about 0.42 units wide; the outer eye corners are 0.18 apart and
the nose tip stands 0.03 / 0.06 in front of the inner / outer eye corners (a real adult face:
about 9-10 cm, and roughly 2 / 3.5 cm: similar proportions, so yaw estimates on photos are
not badly biased). Regenerate with ``python -m pe3d.faces.face_model`` (about 20 s).
"""

from __future__ import annotations

import numpy as np
import torch

INNER_LANDMARKS: tuple[int, ...] = tuple(range(17, 68))
"""dlib 68-point indices of :data:`GENERIC_FACE` rows (brows, nose, eyes, mouth)."""

MIRROR_68: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,  # nose
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,  # eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lips
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lips
)
"""For each dlib landmark, its left/right mirror landmark."""

GENERIC_FACE = np.array(
    [
        # brows 17-26
        [-0.1105, 0.0410, 0.1265], [-0.0926, 0.0541, 0.1393], [-0.0711, 0.0561, 0.1480],
        [-0.0478, 0.0517, 0.1587], [-0.0267, 0.0407, 0.1682], [0.0267, 0.0407, 0.1682],
        [0.0478, 0.0517, 0.1587], [0.0711, 0.0561, 0.1480], [0.0926, 0.0541, 0.1393],
        [0.1105, 0.0410, 0.1265],
        # nose 27-35
        [0.0000, 0.0127, 0.1777], [0.0000, -0.0081, 0.1835], [0.0000, -0.0287, 0.1927],
        [0.0000, -0.0516, 0.1936], [-0.0268, -0.0724, 0.1658], [-0.0150, -0.0771, 0.1684],
        [0.0000, -0.0801, 0.1663], [0.0150, -0.0771, 0.1684], [0.0268, -0.0724, 0.1658],
        # eyes 36-47
        [-0.0904, 0.0088, 0.1335], [-0.0738, 0.0176, 0.1468], [-0.0548, 0.0175, 0.1510],
        [-0.0384, 0.0035, 0.1625], [-0.0572, -0.0012, 0.1497], [-0.0762, -0.0006, 0.1443],
        [0.0384, 0.0035, 0.1625], [0.0548, 0.0175, 0.1510], [0.0738, 0.0176, 0.1468],
        [0.0904, 0.0088, 0.1335], [0.0762, -0.0006, 0.1443], [0.0572, -0.0012, 0.1497],
        # outer lips 48-59
        [-0.0458, -0.1306, 0.1260], [-0.0287, -0.1186, 0.1383], [-0.0111, -0.1124, 0.1431],
        [0.0000, -0.1160, 0.1431], [0.0111, -0.1124, 0.1431], [0.0287, -0.1186, 0.1383],
        [0.0458, -0.1306, 0.1260], [0.0295, -0.1499, 0.1255], [0.0118, -0.1568, 0.1273],
        [0.0000, -0.1580, 0.1278], [-0.0118, -0.1568, 0.1273], [-0.0295, -0.1499, 0.1255],
        # inner lips 60-67
        [-0.0365, -0.1311, 0.1299], [-0.0117, -0.1265, 0.1389], [0.0000, -0.1267, 0.1394],
        [0.0117, -0.1265, 0.1389], [0.0365, -0.1311, 0.1299], [0.0117, -0.1354, 0.1357],
        [0.0000, -0.1375, 0.1362], [-0.0117, -0.1354, 0.1357],
    ],
    dtype=np.float64,
)
"""``[51, 3]`` world-frame positions of :data:`INNER_LANDMARKS` (``+y`` up, face towards ``+z``)."""

SHAPE_MODE_NAMES: tuple[str, ...] = ("brows_up", "nose_base_up", "mouth_up", "face_height")
"""The vertical deformations of :data:`GENERIC_FACE` a camera fit may use (see :func:`shape_modes`)."""
SHAPE_MODE_SIGMAS: tuple[float, ...] = (0.010, 0.012, 0.015, 0.08)
"""Prior standard deviation of each mode's coefficient (world units; the last is a relative scale).

Pitch and vertical face proportions are ambiguous in one image: a mouth closer to the eyes
looks like a camera above the face. World identities vary by about 0.005 units in eye, nose
and mouth heights, and real faces differ from the world's mean by up to about 0.02 (their
mouths sit higher, brows lower), so these priors let the fit absorb that much as shape
instead of as pitch."""


def shape_modes() -> np.ndarray:
    """``[4, 51, 3]`` displacement of every :data:`GENERIC_FACE` point per unit coefficient.

    Modes: brows (17-26) move up, the nose base (30-35) moves up, the mouth (48-67) moves up,
    and the whole face stretches vertically about the eye line (``y = 0.01``).
    """
    index = np.array(INNER_LANDMARKS)
    modes = np.zeros((len(SHAPE_MODE_NAMES), len(INNER_LANDMARKS), 3))
    for mode, (low, high) in enumerate([(17, 26), (30, 35), (48, 67)]):
        modes[mode, (index >= low) & (index <= high), 1] = 1.0
    modes[3, :, 1] = GENERIC_FACE[:, 1] - 0.01
    return modes


def backproject(label: torch.Tensor, points_px: np.ndarray, depth: torch.Tensor) -> np.ndarray:
    """Lift image points to 3D through a ray-depth map rendered from camera ``label``.

    Args:
        label: ``[25]`` EG3D camera of the render.
        points_px: ``[N, 2]`` pixel coordinates (x, y; pixel centres at integers, like dlib).
        depth: ``[H, W]`` distance along the unit ray (0 = background).

    Returns:
        ``[N, 3]`` world points; ``nan`` rows where any neighbouring depth is background.
    """
    height, width = depth.shape
    label = label.reshape(25).double()
    cam2world, focal = label[:16].reshape(4, 4), label[16].item()
    u = (points_px[:, 0] + 0.5) / width
    v = (points_px[:, 1] + 0.5) / height
    rays = np.stack([(u - 0.5) / focal, (v - 0.5) / focal, np.ones_like(u)], axis=1)
    rays /= np.linalg.norm(rays, axis=1, keepdims=True)
    directions = rays @ cam2world[:3, :3].numpy().T
    grid = torch.from_numpy(np.stack([u * 2 - 1, v * 2 - 1], axis=1)).float().view(1, 1, -1, 2)
    sampled = torch.nn.functional.grid_sample(depth[None, None].float(), grid, align_corners=False)
    nearest = torch.nn.functional.grid_sample((depth > 0)[None, None].float(), grid, mode="bilinear", align_corners=False)
    distance = sampled.view(-1).double().numpy()
    distance[nearest.view(-1).numpy() < 0.999] = np.nan
    return cam2world[:3, 3].numpy()[None] + directions * distance[:, None]


def symmetrize(points68: np.ndarray) -> np.ndarray:
    """Average ``[68, 3]`` landmarks with their left/right mirror image (x negated)."""
    mirrored = points68[list(MIRROR_68)] * np.array([-1.0, 1.0, 1.0])
    return 0.5 * (points68 + mirrored)


def measure_world_face(count: int = 60, seed: int = 0, resolution: int = 256) -> np.ndarray:
    """Re-measure :data:`GENERIC_FACE` on ``count`` world identities (see the module docstring).

    Returns:
        ``[51, 3]`` median, symmetrised 3D positions of :data:`INNER_LANDMARKS`.
    """
    from pe3d.faces.detect import detect_faces
    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.world import render_identity, sample_identity

    label = label_from_yaw_pitch([0.0], [0.0])
    lifted = []
    for index in range(count):
        render = render_identity(sample_identity(seed, index), label, resolution=resolution)
        faces = detect_faces(render.rgb[0])
        if len(faces) == 1:
            lifted.append(backproject(label[0], faces[0].landmarks, render.depth[0, 0]))
    if not lifted:
        raise RuntimeError(f"dlib found no single face in {count} world renders")
    median = np.nanmedian(np.stack(lifted), axis=0)
    return symmetrize(median)[list(INNER_LANDMARKS)]


if __name__ == "__main__":  # pragma: no cover - regeneration helper
    measured = measure_world_face()
    rows = ", ".join(f"[{x:.4f}, {y:.4f}, {z:.4f}]" for x, y, z in measured)
    print(f"GENERIC_FACE = np.array([{rows}])")
    print("max |measured - stored| =", float(np.abs(measured - GENERIC_FACE).max()))
