"""Ground-truth scores on the embedded world: what the paper could not measure on FFHQ.

On the procedural world the correct 3D edit is known at every camera: the style's 2D filter
applied to the world's ground-truth view there (the filters are per-pixel or local).
:func:`build_world_targets` renders, for held-out identities, the input view and the views at
yaw +-30 deg and pitch +-15 deg, with their filtered images, depths and foreground masks.
:class:`GroundTruthViews` scores renders against such targets: PSNR and SSIM of the image, mean
absolute depth error on the ground-truth foreground, and LPIPS when an LPIPS network is given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from pe3d.geometry import label_from_yaw_pitch
from pe3d.losses import ssim_loss

if TYPE_CHECKING:
    from pe3d.world import Identity

MAX_PSNR_DB = 100.0
"""PSNR of identical images (the mean squared error is floored at ``1e-10``)."""
GT_VIEWS: dict[str, tuple[float, float]] = {
    "input": (0.0, 0.0),
    "yaw-30": (-30.0, 0.0),
    "yaw+30": (30.0, 0.0),
    "pitch-15": (0.0, -15.0),
    "pitch+15": (0.0, 15.0),
}
"""View name -> ``(yaw, pitch)`` in degrees: the input camera and the four novel views scored."""


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR (dB) of ``[B, 3, H, W]`` images in ``[0, 1]`` -> ``[B]``; ``pred`` is clamped to
    ``[0, 1]`` and identical images give :data:`MAX_PSNR_DB`."""
    mse = ((pred.clamp(0, 1) - target) ** 2).flatten(1).mean(1).clamp_min(10 ** (-MAX_PSNR_DB / 10))
    return -10.0 * torch.log10(mse)


def masked_abs_error(pred: Tensor, target: Tensor, mask: Optional[Tensor] = None) -> Tensor:
    """Per-image mean ``|pred - target|`` over ``mask`` (all pixels when ``None``) -> ``[B]``."""
    weight = torch.ones_like(target) if mask is None else mask.to(target.dtype).expand_as(target)
    return ((pred - target).abs() * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp_min(1.0)


def _as_map(value: Tensor, count: int, size: tuple[int, int], name: str) -> Tensor:
    """``[B, H, W]`` or ``[B, 1, H, W]`` -> ``[B, 1, H, W]``; a clear error for anything else."""
    if value.dim() == 3:
        value = value[:, None]
    if value.dim() != 4 or value.shape[1] != 1 or value.shape[0] != count or tuple(value.shape[-2:]) != size:
        raise ValueError(f"{name} must be [{count}, 1, {size[0]}, {size[1]}] (or without the 1), got {tuple(value.shape)}")
    return value


class GroundTruthViews(Metric):
    """PSNR, SSIM, depth error (and LPIPS) of renders against ground-truth views, averaged per image.

    Args:
        lpips: an LPIPS network (e.g. :func:`pe3d.perceptual.build_lpips`, which refuses without real
            backbone weights); ``None`` leaves LPIPS out.

    ``compute()`` returns ``{"psnr", "ssim", "l1"}`` (``l1``: mean absolute error per image) plus
    ``"depth_error"`` once depths were given and
    ``"lpips"`` when a network is set. SSIM is ``1 - pe3d.losses.ssim_loss`` (Gaussian window 7, data
    range 1); PSNR is capped at :data:`MAX_PSNR_DB` for identical images.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    psnr_sum: Tensor
    ssim_sum: Tensor
    l1_sum: Tensor
    lpips_sum: Tensor
    depth_sum: Tensor
    images: Tensor
    depth_images: Tensor

    def __init__(self, lpips: Optional[nn.Module] = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lpips = lpips
        if lpips is not None:
            lpips.eval()
            lpips.requires_grad_(False)
        for name in ("psnr_sum", "ssim_sum", "l1_sum", "lpips_sum", "depth_sum"):
            self.add_state(name, default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("images", "depth_images"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    @torch.no_grad()
    def update(
        self,
        pred: Tensor,
        target: Tensor,
        pred_depth: Optional[Tensor] = None,
        target_depth: Optional[Tensor] = None,
        mask: Optional[Tensor] = None,
    ) -> None:
        """Add ``B`` views.

        Args:
            pred, target: ``[B, 3, H, W]`` in ``[0, 1]`` (``pred`` is clamped).
            pred_depth, target_depth: ``[B, 1, H, W]`` (or ``[B, H, W]``) ray depths; both or neither.
            mask: ``[B, 1, H, W]`` (or ``[B, H, W]``) bool pixels where the depth error counts (the
                ground-truth foreground); ``None`` counts every pixel.
        """
        if pred.dim() != 4 or pred.shape[1] != 3 or pred.shape != target.shape:
            raise ValueError(f"pred and target must both be [B, 3, H, W], got {tuple(pred.shape)} and {tuple(target.shape)}")
        if not (torch.isfinite(pred).all() and torch.isfinite(target).all()):
            raise ValueError("pred or target contains NaN or infinite values")
        count, size = pred.shape[0], tuple(pred.shape[-2:])
        pred = pred.float().clamp(0, 1)
        target = target.float()
        device = self.psnr_sum.device
        self.psnr_sum += psnr(pred, target).double().sum().to(device)
        self.ssim_sum += float(1.0 - ssim_loss(pred, target)) * count
        self.l1_sum += (pred - target).abs().flatten(1).mean(1).double().sum().to(device)
        if self.lpips is not None:
            self.lpips_sum += self.lpips(pred, target, normalize=True).double().sum().to(device)
        self.images += count
        if (pred_depth is None) != (target_depth is None):
            raise ValueError("give both pred_depth and target_depth, or neither")
        if pred_depth is not None and target_depth is not None:
            pred_depth = _as_map(pred_depth, count, size, "pred_depth").float()
            target_depth = _as_map(target_depth, count, size, "target_depth").float()
            mask = None if mask is None else _as_map(mask, count, size, "mask").bool()
            self.depth_sum += masked_abs_error(pred_depth, target_depth, mask).double().sum().to(device)
            self.depth_images += count
        elif mask is not None:
            raise ValueError("mask selects the pixels of the depth error; it needs pred_depth and target_depth")

    def compute(self) -> dict[str, Tensor]:
        """Means per image: ``psnr`` (dB), ``ssim``, ``l1``, and ``depth_error`` / ``lpips`` when measured (NaN before any update)."""
        images = int(self.images)
        mean = (lambda total, n: total / n if n else torch.tensor(math.nan, dtype=torch.float64))  # noqa: E731
        out = {"psnr": mean(self.psnr_sum, images), "ssim": mean(self.ssim_sum, images), "l1": mean(self.l1_sum, images)}
        if int(self.depth_images):
            out["depth_error"] = mean(self.depth_sum, int(self.depth_images))
        if self.lpips is not None:
            out["lpips"] = mean(self.lpips_sum, images)
        return out


@dataclass
class ViewTarget:
    """Ground truth of one camera for ``B`` identities.

    Attributes:
        yaw_deg, pitch_deg: the camera on the FFHQ orbit.
        labels: ``[B, 25]`` EG3D camera labels.
        source: ``[B, 3, H, W]`` the unedited ground-truth view.
        image: ``[B, 3, H, W]`` the target: the style filter applied to ``source`` (``source`` itself
            when no filter is given).
        depth: ``[B, 1, H, W]`` ray depth (0 on background).
        mask: ``[B, 1, H, W]`` bool foreground.
        parts: ``[B, H, W]`` part labels of ``source`` (the filter-based 2D editor uses them), when rendered.
    """

    yaw_deg: float
    pitch_deg: float
    labels: Tensor
    source: Tensor
    image: Tensor
    depth: Tensor
    mask: Tensor
    parts: Optional[Tensor] = None


@dataclass
class WorldTargets:
    """Ground-truth views of held-out world identities for one style filter (or none).

    Attributes:
        identities: the ``B`` held-out identities, in batch order.
        filter_name: the style filter applied to every view, or ``None``.
        views: view name -> :class:`ViewTarget`, in the order of the ``views`` argument.
    """

    identities: list["Identity"]
    filter_name: Optional[str]
    views: dict[str, ViewTarget]


def build_world_targets(
    filter_name: Optional[str],
    count: int = 8,
    resolution: int = 64,
    seed: int = 0,
    views: Mapping[str, tuple[float, float]] = GT_VIEWS,
    supersample: int = 1,
    offset: int = 0,
) -> WorldTargets:
    """Render the ground truth for ``count`` held-out identities at each of ``views``.

    Args:
        filter_name: a :data:`pe3d.world.STYLE_FILTERS` name applied to every view (``None``: plain views).
        count: held-out identities (indices ``WorldSplit().heldout_indices(count, offset)``).
        resolution: side of the rendered views.
        seed: world seed of the identities.
        views: name -> ``(yaw, pitch)`` in degrees; default :data:`GT_VIEWS` (input, yaw +-30, pitch +-15).
        supersample: anti-aliasing factor of the world renderer.

    Returns:
        :class:`WorldTargets`; ``views["input"].source`` (when present) is the portrait an editor receives.
    """
    from pe3d.world import WorldSplit, sample_identity

    identities = [sample_identity(seed, i) for i in WorldSplit().heldout_indices(count, offset)]
    return WorldTargets(identities, filter_name, render_view_targets(identities, views, filter_name, resolution, supersample))


def render_view_targets(
    identities: list["Identity"],
    views: Mapping[str, tuple[float, float]],
    filter_name: Optional[str] = None,
    resolution: int = 64,
    supersample: int = 1,
) -> dict[str, ViewTarget]:
    """Render any world ``identities`` (e.g. variants of a held-out head) at each of ``views`` (name ->
    ``(yaw, pitch)`` in degrees): name -> :class:`ViewTarget`, one row per identity, the target filtered by
    ``filter_name`` when given. :func:`build_world_targets` does this for the held-out identities."""
    from pe3d.world import apply_style_filter, render_identities

    count = len(identities)
    out: dict[str, ViewTarget] = {}
    for name, (yaw, pitch) in views.items():
        labels = label_from_yaw_pitch([math.radians(yaw)] * count, [math.radians(pitch)] * count)
        truth = render_identities(identities, labels, resolution, supersample=supersample)
        image = truth.rgb if filter_name is None else apply_style_filter(filter_name, truth.rgb, truth.parts)
        out[name] = ViewTarget(float(yaw), float(pitch), labels, truth.rgb, image, truth.depth, truth.mask[:, None], truth.parts)
    return out
