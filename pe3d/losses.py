"""Loss terms shared by prior training, distillation and adaptation.

The paper's objective (Sec. 3.2-3.3)::

    L2d = l1(I_gt, R(T_p, c))
    L3d = l_I(I_p, I_gt) + l_T(T_p, T_gt) + l_D(D_p, D_gt)      over cameras C
    L   = lambda1 * L2d + lambda2 * L3d                          (both 1.0)

with ``l_I = L2 + 2 * LPIPS`` and ``l_T``, ``l_D`` L1. Every term and weight is a
config field, so an ablation is a config. Images are ``[B, 3, H, W]`` in ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PERCEPTUAL_TERMS = ("none", "lpips", "ssim")


@dataclass
class ImageLossConfig:
    """``l_I``: ``l2 * MSE + l1 * L1 + perceptual_weight * perceptual``.

    ``perceptual``: ``lpips`` (the paper's; needs local backbone weights, refused
    otherwise), ``ssim`` (``1 - SSIM``, needs no weights) or ``none``.
    """

    l2: float = 1.0
    l1: float = 0.0
    perceptual: str = "lpips"
    perceptual_weight: float = 2.0
    lpips_net: str = "alex"
    lpips_weights: Optional[str] = None


DEPTH_SOURCES: tuple[str, ...] = ("edited", "input")
"""Values of :attr:`EditLossConfig.depth_source`."""


@dataclass
class EditLossConfig:
    """Weights of the distillation objective ``L = lambda_2d * L2d + lambda_3d * L3d``.

    Setting a weight to 0 removes that term (and skips its computation).
    """

    lambda_2d: float = 1.0
    lambda_3d: float = 1.0
    image_3d: ImageLossConfig = field(default_factory=ImageLossConfig)
    triplane_3d: float = 1.0
    depth_3d: float = 1.0
    image_3d_weight: float = 1.0
    depth_source: str = "edited"
    """Whose geometry the depth term of ``L3d`` follows: ``edited`` (the paper: the prior on the edited
    image, like every other ``L3d`` term) or ``input`` (the prior on the unedited input: for appearance
    edits that keep the head's shape, so the colour change cannot disturb the prior's depth)."""


@dataclass
class ReconstructionLossConfig:
    """Prior training: image term + depth L1 + opacity + optional teacher triplane L1."""

    image: ImageLossConfig = field(default_factory=ImageLossConfig)
    depth: float = 1.0
    opacity: float = 0.1
    triplane: float = 1.0
    empty_space: float = 0.0
    """Weight of :func:`empty_space_loss` (the predicted field's opacity at random points of its box where that
    opacity is already near zero); 0 = off. Measured worse for the mini prior at weights 1 and 10 (the field gives up
    the head's unseen side: docs/results/quality/prior_capacity.md, last section)."""
    empty_space_points: int = 4096
    """Random box points per item each step for ``empty_space``."""
    occupancy: float = 0.0
    """Weight of :func:`occupancy_loss`: the field's opacity at the world's signed-distance samples against the
    occupancy they imply (needs the samples: ``pe3d fit prior occupancy.points=N``); 0 = off."""


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - SSIM`` (Gaussian window 7, data range 1). ``[B,3,H,W]`` x2 -> scalar."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    window = 7 if min(pred.shape[-2:]) >= 7 else 3
    ssim = structural_similarity_index_measure(pred, target, data_range=1.0, kernel_size=window)
    return 1.0 - ssim  # type: ignore[operator]


class ImageLoss(nn.Module):
    """``l_I`` built from :class:`ImageLossConfig`; LPIPS weights are loaded at construction."""

    def __init__(self, cfg: ImageLossConfig) -> None:
        super().__init__()
        if cfg.perceptual not in PERCEPTUAL_TERMS:
            raise ValueError(f"loss perceptual term must be one of {PERCEPTUAL_TERMS}, got {cfg.perceptual!r}")
        self.cfg = cfg
        self.lpips: nn.Module | None = None
        if cfg.perceptual == "lpips" and cfg.perceptual_weight > 0:
            from pe3d.perceptual import build_lpips

            self.lpips = build_lpips(cfg.lpips_net, cfg.lpips_weights)

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Terms for ``pred``, ``target`` ``[B, 3, H, W]`` in [0, 1]; key ``total`` is the weighted sum."""
        terms: dict[str, Tensor] = {}
        total = pred.new_zeros(())
        if self.cfg.l2 > 0:
            terms["l2"] = F.mse_loss(pred, target)
            total = total + self.cfg.l2 * terms["l2"]
        if self.cfg.l1 > 0:
            terms["l1"] = F.l1_loss(pred, target)
            total = total + self.cfg.l1 * terms["l1"]
        if self.cfg.perceptual_weight > 0 and self.cfg.perceptual != "none":
            if self.lpips is not None:
                terms["lpips"] = self.lpips(pred, target, normalize=True).mean()
                total = total + self.cfg.perceptual_weight * terms["lpips"]
            else:
                terms["ssim"] = ssim_loss(pred, target)
                total = total + self.cfg.perceptual_weight * terms["ssim"]
        terms["total"] = total
        return terms


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean absolute error over ``mask`` (all elements when ``None``); shapes broadcast."""
    diff = (pred - target).abs()
    if mask is None:
        return diff.mean()
    mask = mask.to(diff.dtype).expand_as(diff)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


def depth_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """``l_D``: L1 between depth maps ``[B, 1, H, W]``, over foreground ``mask`` when given."""
    return masked_l1(pred, target, mask)


def triplane_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``l_T``: L1 between triplanes ``[B, 3, C, R, R]``."""
    return F.l1_loss(pred, target)


def opacity_loss(weights: Tensor, mask: Tensor) -> Tensor:
    """Binary cross-entropy of accumulated weight ``[B, 1, H, W]`` against a 0/1 foreground mask."""
    return F.binary_cross_entropy(weights.clamp(1e-4, 1 - 1e-4), mask.to(weights.dtype))


def occupancy_loss(renderer, planes: Tensor, points: Tensor, sdf: Tensor) -> Tensor:
    """Binary cross-entropy of the opacity over one plane cell (:func:`pe3d.residual_region.cell_opacity`) of
    ``renderer``'s field of ``planes [B, 3, C, R, R]`` at ``points [B, P, 3]`` against the occupancy their true signed
    distances ``sdf [B, P]`` imply: 1 a half cell or more inside the surface, 0 a half cell or more outside, linear
    between."""
    from pe3d.residual_region import cell_opacity

    cell = renderer.config.ray_march.box_warp / planes.shape[-1]
    opacity = cell_opacity(renderer, planes, points, cell).squeeze(-1)
    target = (0.5 - sdf / cell).clamp(0.0, 1.0).to(opacity.dtype)
    return F.binary_cross_entropy(opacity.clamp(1e-4, 1 - 1e-4), target)


def empty_space_loss(renderer, planes: Tensor, count: int, generator: torch.Generator | None = None) -> Tensor:
    """Mean opacity over one cell (a 64th of the box's side, :func:`pe3d.residual_region.cell_opacity`) of
    ``renderer``'s field of ``planes [B, 3, C, R, R]`` at ``count`` uniform random points of the triplane's box per
    item, counted only where that opacity is below :data:`pe3d.residual_region.EMPTY_OPACITY` (the field's own empty
    space, judged without gradient): the same term the test-time refinement adds (``RefineConfig.empty_weight``),
    here for training a prior."""
    from pe3d.residual_region import EMPTY_OPACITY, HULL_GRID_SIDE, cell_opacity

    box = renderer.config.ray_march.box_warp
    points = (torch.rand(planes.shape[0], count, 3, generator=generator, dtype=planes.dtype) - 0.5).to(planes.device) * box
    opacity = cell_opacity(renderer, planes, points, box / HULL_GRID_SIDE)
    empty = (opacity.detach() < EMPTY_OPACITY).to(opacity)
    return (opacity * empty).sum() / empty.sum().clamp(min=1)


class EditObjective(nn.Module):
    """``L = lambda_2d * L2d + lambda_3d * L3d`` (paper Eqs. 4, 6, 7), shared by distillation and adaptation.

    Inputs of :meth:`forward`:
        input_render: ``I_p = R(T_p, c)`` ``[B,3,r,r]``; edited: ``I_gt`` at the same size.
        planes: ``T_p``; teacher_planes: ``T_gt`` (``[B,3,C,R,R]``).
        views / teacher_views: renders of ``T_p`` / ``T_gt`` at the camera set ``C``
        (objects with ``image [N,3,r,r]``, ``depth [N,1,r,r]``, ``weights [N,1,r,r]``).
    The depth term is averaged over pixels the teacher sees as foreground (opacity > 0.5),
    where a volume-rendered depth is defined.
    """

    def __init__(self, cfg: EditLossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.depth_source not in DEPTH_SOURCES:
            raise ValueError(f"loss.depth_source must be one of {list(DEPTH_SOURCES)}, got {cfg.depth_source!r}")
        self.image_loss = ImageLoss(cfg.image_3d) if cfg.lambda_3d > 0 and cfg.image_3d_weight > 0 else None

    @property
    def needs_teacher(self) -> bool:
        """Whether ``L3d`` is on (so ``T_gt`` and its views must be computed)."""
        return self.cfg.lambda_3d > 0

    def forward(self, input_render: Tensor, edited: Tensor, planes: Tensor, teacher_planes: Tensor | None = None,
                views=None, teacher_views=None, geometry_views=None) -> dict[str, Tensor]:
        """The loss terms (``loss`` = total); ``geometry_views``: the depth term's target renders when it is not
        ``teacher_views`` (:attr:`EditLossConfig.depth_source` ``input``)."""
        cfg = self.cfg
        terms: dict[str, Tensor] = {}
        total = planes.new_zeros(())
        if cfg.lambda_2d > 0:
            terms["l2d"] = F.l1_loss(input_render, edited)
            total = total + cfg.lambda_2d * terms["l2d"]
        if cfg.lambda_3d > 0:
            l3d = planes.new_zeros(())
            if self.image_loss is not None:
                terms["l3d_image"] = self.image_loss(views.image, teacher_views.image)["total"]
                l3d = l3d + cfg.image_3d_weight * terms["l3d_image"]
            if cfg.triplane_3d > 0:
                terms["l3d_triplane"] = triplane_loss(planes, teacher_planes)
                l3d = l3d + cfg.triplane_3d * terms["l3d_triplane"]
            if cfg.depth_3d > 0:
                geometry = teacher_views if geometry_views is None else geometry_views
                mask = geometry.weights.detach() > 0.5
                terms["l3d_depth"] = depth_loss(views.depth, geometry.depth, mask)
                l3d = l3d + cfg.depth_3d * terms["l3d_depth"]
            terms["l3d"] = l3d
            total = total + cfg.lambda_3d * l3d
        terms["loss"] = total
        return terms
