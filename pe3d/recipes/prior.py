"""``pe3d fit prior``: train the prior encoder on the procedural world and export it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from pe3d.config import configs_dir, load_fit_config, save_resolved
from pe3d.data.world_views import WorldViewDataset, WorldViewsConfig, load_or_render_bank
from pe3d.losses import ImageLossConfig, ReconstructionLossConfig
from pe3d.models.prior import PriorModel, load_prior, model_config_from_yaml, save_prior
from pe3d.systems.prior import PriorSystem, PriorSystemConfig
from pe3d.systems.runner import TrainerConfig, build_trainer, resume_path


@dataclass
class PriorFitConfig:
    """Everything ``pe3d fit prior`` needs; loaded from ``configs/prior/*.yaml`` + overrides."""

    model: str = "mini"
    init: str = ""
    out: str = "runs/prior"
    export_dtype: str = "float32"
    data: WorldViewsConfig = field(default_factory=WorldViewsConfig)
    val_data: WorldViewsConfig = field(default_factory=lambda: WorldViewsConfig(split="heldout", count=8))
    num_targets: int = 3
    target_resolution: int = 32
    batch_size: int = 8
    system: PriorSystemConfig = field(
        default_factory=lambda: PriorSystemConfig(
            loss=ReconstructionLossConfig(image=ImageLossConfig(perceptual="ssim", perceptual_weight=0.2))
        )
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def model_yaml_path(name_or_path: str) -> Path:
    """``configs/model/<name>.yaml`` for a short name, or the path itself."""
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model config not found")
        return path
    candidate = configs_dir() / "model" / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in (configs_dir() / "model").glob("*.yaml"))
        raise FileNotFoundError(f"unknown model config {name_or_path!r}; known: {known}")
    return candidate


def load_prior_fit_config(config: str | Path | None, overrides: list[str]) -> PriorFitConfig:
    """Defaults <- ``configs/prior/mini.yaml`` (or ``config``) <- overrides."""
    return load_fit_config(PriorFitConfig, config, overrides, default=configs_dir() / "prior" / "mini.yaml")


def build_prior_model(cfg: PriorFitConfig) -> PriorModel:
    """A fresh model from ``cfg.model``, or the weights of ``cfg.init`` when given."""
    if cfg.init:
        return load_prior(cfg.init)
    return PriorModel(model_config_from_yaml(model_yaml_path(cfg.model)))


def fit_prior(cfg: PriorFitConfig, resume: bool = False) -> Path:
    """Train, then write ``<out>/prior.safetensors`` and ``<out>/config.yaml``; returns the weights path."""
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    train_set = WorldViewDataset(load_or_render_bank(cfg.data), cfg.num_targets, cfg.target_resolution)
    val_set = WorldViewDataset(load_or_render_bank(cfg.val_data), cfg.num_targets, cfg.target_resolution, random_views=False)
    loader_kwargs = dict(batch_size=cfg.batch_size, num_workers=cfg.trainer.num_workers)
    train_loader = DataLoader(train_set, shuffle=True, drop_last=True, **loader_kwargs)
    val_loader = DataLoader(val_set, shuffle=False, **loader_kwargs)
    model = build_prior_model(cfg)
    system = PriorSystem(model, cfg.system)
    trainer = build_trainer(cfg.trainer, run_dir)
    started = time.perf_counter()
    trainer.fit(system, train_loader, val_loader, ckpt_path=resume_path(run_dir, resume))
    minutes = (time.perf_counter() - started) / 60
    meta = {"train_minutes": f"{minutes:.2f}", "steps": str(trainer.global_step)}
    out = save_prior(model.cpu(), run_dir / "prior.safetensors", meta, cfg.export_dtype)
    print(f"prior written to {out} after {trainer.global_step} steps in {minutes:.1f} min")
    return out
