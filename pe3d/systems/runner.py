"""Build and run a Lightning ``Trainer`` the same way for every system.

* checkpoints are written atomically (temp file + rename) and read with
  ``torch.load(weights_only=True)``: see :class:`SafeCheckpointIO`;
* ``last.ckpt`` is refreshed every ``checkpoint_every_n_steps`` so a killed run
  resumes with ``resume=true``;
* TensorBoard logs (scalars and image grids) go to ``<run>/logs``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.plugins.io import CheckpointIO

from pe3d.config import ConfigError
from pe3d.io import atomic_write_bytes, remove_stale_temp_files


@dataclass
class TrainerConfig:
    """Trainer settings shared by ``fit prior``, ``fit distill`` and ``fit adapt``."""

    max_steps: int = 1000
    max_minutes: float = 0.0
    accelerator: str = "auto"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    matmul_precision: str = ""
    """``torch.set_float32_matmul_precision`` for the run (``highest``, ``high``, ``medium``; ``""`` leaves the
    process's setting alone): ``high`` lets float32 matrix products use TF32 on NVIDIA GPUs (several times
    faster, ~1e-3 relative error); no effect on the CPU."""
    log_every_n_steps: int = 10
    checkpoint_every_n_steps: int = 100
    val_every_n_steps: int = 0
    num_workers: int = 0
    threads: int = 0
    seed: int = 0
    progress: bool = True
    logger: str = "tensorboard"
    gradient_clip_norm: float = 0.0
    """Clip the gradients' global L2 norm to this value before each optimizer step (``0``: no clipping;
    ``pe3d fit adapt`` takes ``-1`` for the style's ``adapt.gradient_clip_norm``)."""


class SafeCheckpointIO(CheckpointIO):
    """Lightning checkpoints written atomically and loaded without executing pickled code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Optional[Any] = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: str | Path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        try:
            return torch.load(path, map_location=map_location or "cpu", weights_only=True)
        except Exception as error:  # torch raises several types for truncated or foreign files
            raise ValueError(f"{path}: unreadable or unsafe checkpoint ({type(error).__name__}: {error})") from error

    def remove_checkpoint(self, path: str | Path) -> None:
        if Path(path).exists():
            os.remove(path)


def resolve_strategy(name: str):
    """``ddp`` becomes DDP with ``find_unused_parameters=True``: a batch whose items all use text
    prompts leaves the image encoder without gradients on that rank (and vice versa), which
    plain DDP would wait on forever. Other names pass through to Lightning."""
    if name == "ddp":
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(find_unused_parameters=True)
    return name


def build_trainer(cfg: TrainerConfig, run_dir: Path, extra_callbacks: list | None = None) -> L.Trainer:
    """A ``Trainer`` writing checkpoints to ``run_dir/checkpoints`` and logs to ``run_dir/logs``."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.matmul_precision not in ("", "highest", "high", "medium"):
        raise ConfigError(f"trainer.matmul_precision must be highest, high, medium or '' (unchanged), got {cfg.matmul_precision!r}")
    if cfg.matmul_precision:
        torch.set_float32_matmul_precision(cfg.matmul_precision)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        save_last=True,
        save_top_k=0,
        enable_version_counter=False,  # always last.ckpt (what --resume reads), also in a copied or moved run folder
        every_n_train_steps=max(1, cfg.checkpoint_every_n_steps),
        save_on_train_epoch_end=False,
    )
    callbacks: list = [checkpoint, *(extra_callbacks or [])]
    if cfg.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=5))
    logger: Any = False
    if cfg.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        logger = TensorBoardLogger(save_dir=str(run_dir), name="logs", version="")
    elif cfg.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        logger = CSVLogger(save_dir=str(run_dir), name="logs", version="")
    elif cfg.logger != "none":
        raise ConfigError(f"trainer.logger must be tensorboard, csv or none, got {cfg.logger!r}")
    if cfg.gradient_clip_norm < 0:
        raise ConfigError(f"trainer.gradient_clip_norm={cfg.gradient_clip_norm}: must be >= 0 (0 = no clipping)")
    return L.Trainer(
        max_steps=cfg.max_steps,
        max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes > 0 else None,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=resolve_strategy(cfg.strategy),
        precision=cfg.precision,
        log_every_n_steps=cfg.log_every_n_steps,
        gradient_clip_val=cfg.gradient_clip_norm if cfg.gradient_clip_norm > 0 else None,
        gradient_clip_algorithm="norm",
        val_check_interval=cfg.val_every_n_steps if cfg.val_every_n_steps > 0 else None,
        check_val_every_n_epoch=None if cfg.val_every_n_steps > 0 else 1,
        limit_val_batches=None if cfg.val_every_n_steps > 0 else 0,
        num_sanity_val_steps=0,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        logger=logger,
        callbacks=callbacks,
        plugins=[SafeCheckpointIO()],
        default_root_dir=str(run_dir),
    )


def resume_path(run_dir: Path, resume: bool) -> Optional[str]:
    """``run_dir/checkpoints/last.ckpt`` when resuming and it exists; ``None`` otherwise.

    Resuming also removes the temp file of a checkpoint write that a kill interrupted.
    """
    if not resume:
        return None
    remove_stale_temp_files(run_dir / "checkpoints")
    last = run_dir / "checkpoints" / "last.ckpt"
    if not last.is_file():
        print(f"resume: no checkpoint at {last}; starting from scratch")
        return None
    return str(last)
