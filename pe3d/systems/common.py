"""Pieces every training system shares: optimiser settings and image-grid logging."""

from __future__ import annotations

from dataclasses import dataclass
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
    min_lr_ratio: float = 0.1


def build_optimizer(cfg: OptimConfig, params: Iterable[torch.nn.Parameter]):
    """Lightning ``configure_optimizers`` return value for ``cfg``."""
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: check which modules the system freezes")
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))

    def schedule(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.max_steps <= 0:
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        cosine = 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi))).item()
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


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
