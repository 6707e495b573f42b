"""Test-time detail refinement: fit a triplane residual to the input photo, add it to the edit.

The feed-forward editor returns an edited triplane in one pass, but everything it renders is as soft as
the prior's reconstruction of the input (issue 13: a real face comes back as a blur). Refinement takes
the prior's reconstruction ``T_r`` of the same input (no prompt), fits a residual ``D`` so that
``R(T_r + D, c)`` matches the input image at its own camera ``c`` (a few Adam steps, renderer frozen, an L2
penalty keeping ``D`` small), and returns ``T_edit + D``: the detail the reconstruction missed (eyes,
glasses, a goatee) carried onto the edit. The prior and the editor share the renderer, so ``D`` means the
same to both. It is optional (``EditPipeline(..., refine=RefineConfig(steps=N))``, ``pe3d edit
--refine-steps N``): it costs ``N`` renders with gradients, so the edit is no longer one pass.

It is the single-view, residual form of per-image optimisation (the quality benchmark's ceiling fits
whole triplanes to many ground-truth views). ``tools/refine_study.py`` measures it on held-out world
identities (docs/results/quality/refinement.md): it lifts the input view and leaves the novel views
where they were. The residual must come from the *prior's* reconstruction: the editor's own prompt-free
path (:meth:`~pe3d.models.editor.EditorCore.reconstruct`, 5 dB worse than the prior after distillation)
would make ``D`` carry colour the edit removed. By default ``D`` is kept to the reconstruction's visual hull and
the fit is charged for opacity it grows in the reconstruction's empty space (:mod:`pe3d.residual_region`), so the
photo's background is not painted across the box where other views see it as streaks.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Iterator, Optional

import torch
from torch import Tensor, nn
from tqdm import tqdm

from pe3d.errors import InvalidInput
from pe3d.images import resize_images
from pe3d.residual_region import EmptySpace, field_occupancy, visual_hull_masks

__all__ = ["RefineConfig", "ResidualRegion", "cosine_lr_schedule", "fit_detail_residual", "fitting_resolution",
           "residual_region", "visual_hull_masks"]


MAX_STRENGTH = 2.0
"""Largest :attr:`RefineConfig.strength` accepted (beyond 1 the residual overshoots the photo: 1.25 already loses
at the novel views on every distilled style)."""
RESIDUAL_PLANES = {"all": (0, 1, 2), "front": (0,)}
"""``RefineConfig.planes`` -> the plane indices the residual may change."""


@dataclass
class RefineConfig:
    """Settings of :func:`fit_detail_residual`.

    steps: Adam steps (0 = no refinement).
    lr: Adam learning rate of the residual (cosine-decayed to 5 % of it over ``steps``); 0.04 since
        2026-12-06 (0.02 before, still the teacher's: :data:`pe3d.systems.editing.TEACHER_REFINE_LR`).
    l1: weight of the L1 image term next to the MSE.
    residual_weight: weight of the mean squared residual (keeps ``D`` to what the input view needs).
    prior: prior weights whose reconstruction is refined (``""`` = the shipped mini prior); its renderer
        must be the editor's.
    planes: which of the three planes the residual may change: ``all``, or ``front`` (plane 0, EG3D's
        ``(x, y)`` plane, which faces the frontal camera: the residual is then projected along the depth
        axis onto the head, like a texture, and the novel views see it where the surface is).
    fit_resolution: side of the renders the residual is fitted at (the input is resized to it); 0 = the
        side asked for, capped at the triplane's side (:func:`fitting_resolution`): a plane of 64 cells
        across the frame cannot hold the pixels of a 128² render, which cost 4× as much a step
        (docs/results/quality/refinement.md, "Fitted at the planes' resolution").
    ray_fraction: the share of the fitted render's rays each step renders, drawn afresh every step (seeded, so
        a fit is repeatable); 1 = every ray. A quarter of the rays for twice the steps fits a photo better in less
        time than every ray (docs/results/quality/refinement.md, "A quarter of the rays a step").
    hull_threshold: keep the residual to the reconstruction's visual hull (:func:`visual_hull_masks`): a plane
        cell may change only where the reconstruction's field is occupied (a cell's opacity above this) somewhere
        along the plane's normal, ``hull_dilation`` cells around included; 0 = off (the residual may change every
        cell). Off, the residual paints the photo's background onto the box's walls and into empty space, and
        the novel views see it as streaks; 0.3 since 2026-12-06 (0 before, still the teacher's:
        :func:`pe3d.systems.editing.teacher_refinement`; docs/results/quality/refinement.md, "Kept to the visual
        hull").
    hull_dilation: cells the hull grows by on each plane (room for the hair's outline to move).
    hull_softness: cells (odd) over which the hull's mask falls from 1 to 0 (a box filter after the dilation;
        :func:`visual_hull_masks`); 0 = a hard edge on the cells' staircase (the default until 2026-12-07), which
        shows as steps where the residual paints what the reconstruction does not hold (the astronaut's collar);
        5 since, the same world scores within 0.03 dB (docs/results/quality/refinement.md, "A soft hull edge").
    empty_weight: weight of the mean opacity, at ``empty_points`` random points a step, of the space the
        reconstruction leaves empty within the residual's reach (:class:`pe3d.residual_region.EmptySpace`): keeps the
        residual from growing density there (a dark post beside the shoulder at the side views); 0 = off.
    empty_points: points per image each step draws for ``empty_weight``.
    strength: the multiple of the fitted residual added to an edit (:meth:`pe3d.pipeline.EditPipeline.__call__`);
        not part of the fit. 1 = all of the photo's missing detail; less for a style whose edit does not keep the
        photo's colours (a style's ``refine.strength``, :class:`pe3d.styles.spec.RefineSpec`: marble_statue 0.5,
        docs/results/quality/refinement.md, "A strength per style"); 0 = the one-pass edit.
    progress: show a progress bar over the steps (``pe3d edit``).
    """

    steps: int = 0
    lr: float = 0.04
    l1: float = 0.5
    residual_weight: float = 0.1
    prior: str = ""
    planes: str = "all"
    fit_resolution: int = 0
    ray_fraction: float = 0.25
    hull_threshold: float = 0.3
    hull_dilation: int = 2
    hull_softness: int = 5
    empty_weight: float = 10.0
    empty_points: int = 4096
    strength: float = 1.0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.planes not in RESIDUAL_PLANES:
            raise InvalidInput(f"refine planes must be one of {sorted(RESIDUAL_PLANES)}, got {self.planes!r}")
        if self.steps < 0:
            raise InvalidInput(f"refine steps must be >= 0, got {self.steps}")
        if self.lr <= 0:
            raise InvalidInput(f"refine lr must be positive, got {self.lr}")
        if self.l1 < 0 or self.residual_weight < 0:
            raise InvalidInput(f"refine weights must be >= 0, got l1={self.l1}, residual_weight={self.residual_weight}")
        if not 0.0 < self.ray_fraction <= 1.0:
            raise InvalidInput(f"refine ray_fraction must be in (0, 1], got {self.ray_fraction}")
        if not 0.0 <= self.hull_threshold < 1.0:
            raise InvalidInput(f"refine hull_threshold must be in [0, 1) (an opacity; 0 = off), got {self.hull_threshold}")
        if self.empty_weight < 0 or self.empty_points < 1:
            raise InvalidInput(f"refine empty_weight must be >= 0 and empty_points >= 1, got {self.empty_weight}, {self.empty_points}")
        if self.hull_dilation < 0:
            raise InvalidInput(f"refine hull_dilation must be >= 0, got {self.hull_dilation}")
        if self.hull_softness < 0 or (self.hull_softness > 1 and self.hull_softness % 2 == 0):
            raise InvalidInput(f"refine hull_softness must be 0 (a hard edge) or an odd number of cells, "
                               f"got {self.hull_softness}")
        if not 0.0 <= self.strength <= MAX_STRENGTH:
            raise InvalidInput(f"refine strength must be in [0, {MAX_STRENGTH:g}] (the multiple of the residual added "
                               f"to the edit), got {self.strength}")
        if self.fit_resolution < 0:
            raise InvalidInput(f"refine fit_resolution must be >= 0 (0 = the render side, capped at the planes'), "
                               f"got {self.fit_resolution}")

    def fingerprint(self) -> str:
        """The settings as a string that names what changes the fitted residual, for keys of stored
        residuals (:class:`pe3d.systems.teacher_store.RefinedTeacherStore`): the dataclass's ``repr`` without
        ``progress`` and ``strength`` (neither changes the fit), without ``fit_resolution`` while it is 0, without
        ``ray_fraction`` while it is 1 (every ray), without ``hull_softness`` while it is 0 or 1 (a hard edge) and
        without the hull's and the empty space's fields while they are off, so that the keys of stores written before
        those fields existed hold."""
        left_out = {"progress", "strength"} | ({"fit_resolution"} if self.fit_resolution == 0 else set()) \
            | ({"ray_fraction"} if self.ray_fraction == 1.0 else set()) \
            | ({"hull_threshold", "hull_dilation", "hull_softness"} if self.hull_threshold == 0 else set()) \
            | ({"hull_softness"} if self.hull_softness <= 1 else set()) \
            | ({"empty_weight", "empty_points"} if self.empty_weight == 0 else set())
        shown = [f for f in fields(self) if f.name not in left_out]
        return f"RefineConfig({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"


class RaySubsets:
    """The random rays each step of :func:`fit_detail_residual` renders: ``fraction`` of the ``R²`` pixels,
    the same count for every image of a batch of ``batch``, from a generator seeded at 0 (a fit is repeatable)."""

    def __init__(self, fraction: float, batch: int) -> None:
        self.fraction = fraction
        self.batch = batch
        self.generator = torch.Generator().manual_seed(0)

    @property
    def every_ray(self) -> bool:
        """Whether every ray is rendered (``fraction`` 1)."""
        return self.fraction >= 1.0

    def draw(self, resolution: int, device: torch.device) -> Tensor:
        """``[batch, K]`` ray indices into the ``resolution²`` row-major pixels, ``K = ⌈fraction · R²⌉``."""
        pixels = resolution * resolution
        count = max(1, math.ceil(self.fraction * pixels))
        picks = [torch.randperm(pixels, generator=self.generator)[:count] for _ in range(self.batch)]
        return torch.stack(picks).to(device)


def fitting_resolution(cfg: RefineConfig, resolution: Optional[int], planes_side: int) -> Optional[int]:
    """The side :func:`fit_detail_residual` renders at: ``cfg.fit_resolution`` when set, else ``resolution``
    (``None``: the renderer's default) capped at ``planes_side``, the triplane's cells across its box."""
    if cfg.fit_resolution:
        return cfg.fit_resolution
    return None if resolution is None else min(resolution, planes_side)


ResidualRegion = tuple[Optional[Tensor], Optional[EmptySpace]]
"""``(masks, empty)``: the cells a residual may change and the space it must keep empty (:func:`residual_region`)."""


def residual_region(renderer, reconstruction: Tensor, cfg: RefineConfig) -> ResidualRegion:
    """What :func:`fit_detail_residual` takes as ``region`` and ``empty`` for ``cfg``: the visual hull's masks of
    ``reconstruction`` (``None`` with ``cfg.hull_threshold`` 0) and its empty space within them (``None`` with
    ``cfg.empty_weight`` 0), from one decode of the field on a grid (:mod:`pe3d.residual_region`); neither without
    steps. ``renderer``: the :class:`~pe3d.rendering.renderer.TriplaneRenderer` the fit renders with."""
    if not cfg.steps or (cfg.hull_threshold == 0 and cfg.empty_weight == 0):
        return None, None
    occupancy = field_occupancy(renderer, reconstruction)
    masks = (visual_hull_masks(renderer, reconstruction, cfg.hull_threshold, cfg.hull_dilation, occupancy,
                               cfg.hull_softness)
             if cfg.hull_threshold > 0 else None)
    empty = EmptySpace.of(renderer, reconstruction, masks, occupancy) if cfg.empty_weight > 0 else None
    return masks, empty


def _asked_region(renderer, reconstruction: Tensor, cfg: RefineConfig, region: Optional[Tensor],
                  empty: Optional[EmptySpace]) -> tuple[Optional[Tensor], Optional[EmptySpace]]:
    """``region`` and ``empty`` for :func:`fit_detail_residual`: as given, and where ``cfg`` asks for one that is not
    given, made with ``renderer`` (:func:`residual_region`); a clear error when that is needed and ``renderer`` is
    ``None``."""
    need_hull = bool(cfg.steps) and cfg.hull_threshold > 0 and region is None
    need_empty = bool(cfg.steps) and cfg.empty_weight > 0 and empty is None
    if not (need_hull or need_empty):
        return region, empty
    if renderer is None:
        asked = [f"hull_threshold={cfg.hull_threshold}"] * need_hull + [f"empty_weight={cfg.empty_weight}"] * need_empty
        verb = "need" if len(asked) > 1 else "needs"
        raise InvalidInput(f"refine: {' and '.join(asked)} {verb} the reconstruction's visual hull and empty space, which "
                           "are made with the renderer: pass renderer= (or region= and empty= from "
                           "pe3d.refinement.residual_region), or set them to 0 to fit every cell")
    masks, space = residual_region(renderer, reconstruction, cfg)
    return (masks if region is None else region), (space if empty is None else empty)


def cosine_lr_schedule(optimiser: torch.optim.Optimizer, steps: int, floor: float = 0.05) -> torch.optim.lr_scheduler.LambdaLR:
    """Cosine decay of every parameter group's learning rate to ``floor`` times its start over ``steps``
    steps (held there after), for short fits outside Lightning: this refinement and the quality
    benchmark's ceiling (:func:`pe3d.bench.quality.fit_ceiling`)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda t: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))


@contextmanager
def _frozen(module: Optional[nn.Module]) -> Iterator[None]:
    """``module``'s parameters without gradients for the block (restored after), so that fitting the
    residual neither computes nor leaves gradients on the model."""
    if module is None:
        yield
        return
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def fit_detail_residual(render, reconstruction: Tensor, image: Tensor, camera: Tensor, cfg: RefineConfig,
                        frozen: Optional[nn.Module] = None, resolution: Optional[int] = None,
                        initial: Optional[Tensor] = None, region: Optional[Tensor] = None,
                        empty: Optional[EmptySpace] = None, renderer=None) -> Tensor:
    """The residual ``D`` (same shape as ``reconstruction [B,3,C,R,R]``) that makes
    ``render(reconstruction + D, camera)`` match ``image [B,3,H,W]`` (in [0, 1]).

    ``render(planes, labels, resolution=...)`` returns a render output with ``.image`` in [0, 1]
    (e.g. :meth:`pe3d.models.editor.EditorCore.render`); its parameters are not changed. ``camera``
    is ``[B, 25]``; renders are made at :func:`fitting_resolution` of ``resolution`` (``None``: the
    renderer's default) and ``image`` is resized to their side. ``frozen``: the module behind ``render``,
    whose parameters get no gradients meanwhile. ``initial``: the residual the fit starts from (e.g. the
    previous video frame's, so that a few steps follow the new frame); zeros by default. ``region``: a
    ``[B or 1, 3, 1, R, R]`` multiplier of the residual (the cells it may change: the visual hull's masks).
    ``empty``: points the reconstruction leaves empty, whose mean opacity at ``cfg.empty_points`` of them a step is
    added to the loss times ``cfg.empty_weight``. ``renderer``: the
    :class:`~pe3d.rendering.renderer.TriplaneRenderer` behind ``render``; when ``cfg`` asks for the hull
    (``hull_threshold`` > 0) or the empty space (``empty_weight`` > 0) and ``region`` / ``empty`` are not given,
    they are made from it (:func:`residual_region`), and without it the fit refuses rather than silently fitting
    every cell. ``initial`` itself (times ``region``) when ``cfg.steps == 0``.
    """
    if image.ndim != 4 or image.shape[0] != reconstruction.shape[0]:
        raise InvalidInput(f"refine: image must be [B,3,H,W] with B={reconstruction.shape[0]}, got {tuple(image.shape)}")
    if initial is not None and initial.shape != reconstruction.shape:
        raise InvalidInput(f"refine: initial residual must have the reconstruction's shape {tuple(reconstruction.shape)}, "
                           f"got {tuple(initial.shape)}")
    if region is not None and (region.ndim != 5 or region.shape[0] not in (1, reconstruction.shape[0])
                               or region.shape[1] != 3 or region.shape[3:] != reconstruction.shape[3:]):
        raise InvalidInput(f"refine: region must be [B or 1, 3, 1, R, R] for planes {tuple(reconstruction.shape)}, "
                           f"got {tuple(region.shape)}")
    region, empty = _asked_region(renderer, reconstruction, cfg, region, empty)
    mask = torch.zeros(1, reconstruction.shape[1], 1, 1, 1, dtype=reconstruction.dtype, device=reconstruction.device)
    planes = list(RESIDUAL_PLANES[cfg.planes])
    mask[:, planes] = 1
    if region is not None:
        mask = mask * region.to(reconstruction)
    start = torch.zeros_like(reconstruction) if initial is None else initial.detach().to(reconstruction)
    residual = start.clone().requires_grad_(True)
    if cfg.steps == 0:
        return (residual * mask).detach() if region is not None else residual.detach()
    base = reconstruction.detach()
    target = image.detach()
    resolution = fitting_resolution(cfg, resolution, reconstruction.shape[-1])
    optimiser = torch.optim.Adam([residual], lr=cfg.lr)
    schedule = cosine_lr_schedule(optimiser, cfg.steps)
    rays = RaySubsets(cfg.ray_fraction, target.shape[0])
    empty_draws = torch.Generator().manual_seed(1)
    keep_empty = empty is not None and cfg.empty_weight > 0
    if not rays.every_ray:  # ray indices need the side: the renderer's default is read once from a full render
        if resolution is None:
            with torch.no_grad():
                resolution = render(base, camera).image.shape[-1]
        if target.shape[-1] != resolution:
            target = resize_images(target, resolution)
    with torch.enable_grad(), _frozen(frozen):
        for _ in tqdm(range(cfg.steps), desc="refining the detail", unit="step", disable=not cfg.progress, leave=False):
            planes_now = base + residual * mask
            if rays.every_ray:
                out = render(planes_now, camera, resolution=resolution).image
                if target.shape[-1] != out.shape[-1]:
                    target = resize_images(target, out.shape[-1])
                shown = target
            else:
                indices = rays.draw(resolution, target.device)
                out = render(planes_now, camera, resolution=resolution, ray_indices=indices).image
                shown = target.flatten(2).gather(2, indices[:, None].expand(-1, target.shape[1], -1))
            error = out - shown
            loss = error.square().mean() + cfg.l1 * error.abs().mean() + cfg.residual_weight * residual[:, planes].square().mean()
            if keep_empty:
                points, weights = empty.draw(cfg.empty_points, empty_draws)
                opacity = empty.opacity(planes_now, points.to(base)).mean(dim=(1, 2))
                loss = loss + cfg.empty_weight * (opacity * weights).sum() / weights.sum().clamp(min=1)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
    return (residual * mask).detach()
