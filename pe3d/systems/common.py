"""Pieces every training system shares: optimiser settings and image-grid logging."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class OptimConfig:
    """AdamW with optional linear warm-up then cosine decay over ``max_steps``."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 50
    max_steps: int = 0
    """Length of the cosine decay; 0 = the trainer's ``max_steps``."""
    min_lr_ratio: float = 0.1


def build_optimizer(cfg: OptimConfig, params: Iterable[torch.nn.Parameter] | list[dict], total_steps: int = 0):
    """Lightning ``configure_optimizers`` return value for ``cfg`` (``params``: parameters, or AdamW parameter
    groups, each a dict that may set its own ``lr``; the schedule scales every group alike).

    The cosine decay runs over ``cfg.max_steps``, or ``total_steps`` (the trainer's
    ``max_steps``) when ``cfg.max_steps`` is 0.
    """
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: check which modules the system freezes")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))

    horizon = cfg.max_steps if cfg.max_steps > 0 else max(0, total_steps)

    def schedule(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if horizon <= 0:
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, horizon - cfg.warmup_steps))
        cosine = 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi))).item()
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def trainer_max_steps(module) -> int:
    """The attached trainer's ``max_steps`` (0 when there is no trainer or no step limit)."""
    trainer = getattr(module, "_trainer", None)
    steps = getattr(trainer, "max_steps", 0) if trainer is not None else 0
    return steps if steps and steps > 0 else 0


def image_grid(inputs: Tensor, targets: Tensor, preds: Tensor, max_rows: int = 4) -> Tensor:
    """Rows of ``input | target views | predicted views``: ``[3, H_total, W_total]`` in [0,1].

    Args:
        inputs: ``[B,3,H,W]``; targets, preds: ``[B,K,3,h,w]``.
    """
    rows = []
    size = targets.shape[-1]
    for i in range(min(max_rows, inputs.shape[0])):
        cells = [F.interpolate(inputs[i : i + 1], size=(size, size), mode="area")[0]]
        cells += list(targets[i]) + list(preds[i])
        rows.append(torch.cat([c.detach().float().clamp(0, 1).cpu() for c in cells], dim=-1))
    return torch.cat(rows, dim=-2)


def log_image_grid(module, tag: str, inputs: Tensor, targets: Tensor, preds: Tensor) -> None:
    """Send :func:`image_grid` to the module's logger when it can take images (TensorBoard)."""
    logger = getattr(module, "logger", None)
    experiment = getattr(logger, "experiment", None) if logger is not None else None
    if experiment is not None and hasattr(experiment, "add_image"):
        experiment.add_image(tag, image_grid(inputs, targets, preds), module.global_step)


@dataclass
class DilatedRays:
    """Every ``stride``-th ray in each direction of an ``R x R`` view, from offset ``(oy, ox)``:
    a dilated patch covering the whole view, ``stride**2`` times cheaper to render than the
    full image. ``stride == 1`` is the full image."""

    resolution: int
    stride: int = 1
    offset: tuple[int, int] = (0, 0)
    offsets: Tensor | None = None
    """Per rendered view, its own offset ``[N, 2]`` (replaces ``offset``; every view then renders
    ``resolution // stride`` rays in each direction): :class:`~pe3d.systems.view_bank.ViewBank`'s views."""

    @classmethod
    def sample(cls, resolution: int, stride: int) -> "DilatedRays":
        """A random offset for this training step."""
        if stride <= 1:
            return cls(resolution)
        oy, ox = (int(v) for v in torch.randint(stride, (2,)))
        return cls(resolution, stride, (oy, ox))

    def indices(self, batch: int, device=None) -> Tensor:
        """Flat ray indices ``[batch, h*w]`` into the row-major ``R x R`` grid."""
        if self.offsets is not None:
            if self.offsets.shape[0] != batch:
                raise ValueError(f"{self.offsets.shape[0]} ray offsets for {batch} views")
            steps = torch.arange(self.resolution // self.stride, device=device) * self.stride
            offsets = self.offsets.to(device)
            rows, cols = offsets[:, :1] + steps, offsets[:, 1:] + steps  # [N, h], [N, w]
            return (rows[:, :, None] * self.resolution + cols[:, None, :]).reshape(batch, -1)
        rows = torch.arange(self.offset[0], self.resolution, self.stride, device=device)
        cols = torch.arange(self.offset[1], self.resolution, self.stride, device=device)
        return (rows[:, None] * self.resolution + cols[None, :]).reshape(1, -1).expand(batch, -1)

    def patch_shape(self) -> tuple[int, int]:
        """``(h, w)`` of each rendered view."""
        if self.stride <= 1:
            return self.resolution, self.resolution
        if self.offsets is not None:
            return self.resolution // self.stride, self.resolution // self.stride
        return (len(range(self.offset[0], self.resolution, self.stride)),
                len(range(self.offset[1], self.resolution, self.stride)))

    def crop(self, x: Tensor) -> Tensor:
        """The same pixels of any ``[..., R, R]`` tensor (one shared ``offset`` only)."""
        if self.offsets is not None:
            raise ValueError("crop needs one shared offset; these rays have one offset per view")
        return x if self.stride <= 1 else x[..., self.offset[0] :: self.stride, self.offset[1] :: self.stride]

    @staticmethod
    def stride_for(renderer, stride: int) -> int:
        """``stride``, or 1 (full views) for a renderer that renders whole images only
        (``supports_ray_indices = False``, e.g. EG3D's, whose depth bounds and super-resolution need them)."""
        return stride if getattr(renderer, "supports_ray_indices", True) else 1

    @classmethod
    def sample_for(cls, renderer, resolution: int, stride: int) -> "DilatedRays":
        """:meth:`sample` at the stride ``renderer`` allows (:meth:`stride_for`)."""
        return cls.sample(resolution, cls.stride_for(renderer, stride))

    def render(self, renderer, planes: Tensor, labels: Tensor):
        """``renderer`` output for these rays, with ``[N, C, h, w]`` fields (a renderer with optional
        super-resolution, ``training_render_kwargs``, skips it: the losses read the raw render)."""
        extra = dict(getattr(renderer, "training_render_kwargs", {}))
        if self.stride <= 1:
            return renderer(planes, labels, resolution=self.resolution, **extra)
        out = renderer(planes, labels, resolution=self.resolution, ray_indices=self.indices(planes.shape[0], planes.device),
                       **extra)
        h, w = self.patch_shape()
        shape = lambda v: v.reshape(v.shape[0], v.shape[1], h, w)  # noqa: E731
        return replace(out, image=shape(out.image), features=shape(out.features), depth=shape(out.depth), weights=shape(out.weights))
