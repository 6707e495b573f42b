"""``pe3d fit distill`` and ``pe3d fit adapt``: the two editing recipes.

Both make (or resume) the styles' pairs, build the editor and the frozen teacher, and
run the matching system through the shared trainer. Distillation writes a base editor
(``<out>/editor.safetensors``); adaptation exports ``styles/<name>/adapter.safetensors``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
from omegaconf import OmegaConf

from pe3d.config import project_root, save_resolved
from pe3d.data.pairs import PairDataConfig, pair_set_complete, write_pairs
from pe3d.losses import EditLossConfig, ImageLossConfig
from pe3d.models.checkpoints import model_hash
from pe3d.models.editor import EditorCore, editor_config_from_yaml, load_editor, save_editor
from pe3d.models.prior import PriorModel, load_prior
from pe3d.recipes.prior import model_yaml_path
from pe3d.styles.adapters import ADAPTER_FILE, adapter_parameter_names, save_adapter
from pe3d.styles.discovery import load_named_style
from pe3d.systems.common import OptimConfig
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.runner import TrainerConfig, build_trainer, resume_path
from pe3d.weights import resolve_weights


def _cpu_edit_system() -> EditSystemConfig:
    # LPIPS needs backbone weights that cannot be downloaded here; SSIM is the default
    # perceptual term of the CPU recipes (set system.loss.image_3d.perceptual=lpips to use it).
    return EditSystemConfig(loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="ssim", perceptual_weight=0.5)))


@dataclass
class DistillFitConfig:
    """``pe3d fit distill``: a multi-style base editor from a trained prior.

    ``style_dirs``: extra folders searched for ``styles`` (relative to the project root, e.g.
    ``configs/experiment/paper_styles``); ``style_overrides``: ``key=value`` applied to every
    style (e.g. ``params.dir=/data/ffhq512``); ``model_overrides``: ``key=value`` for the model
    YAML (e.g. ``prompt_encoder.text.pretrained=openai``); ``global_batch_size``: when set,
    ``data.batch_size`` per process becomes this divided by the number of processes (the
    paper's 32 on 8 GPUs is 4 each).
    """

    prior: str = ""
    model: str = "mini"
    styles: list[str] = field(default_factory=lambda: ["bronze_statue", "pencil_sketch", "zombie", "blue_hair"])
    pairs_per_style: int = 256
    pairs_dir: str = "runs/pairs"
    out: str = "runs/distill"
    export_dtype: str = "float32"
    data: PairDataConfig = field(default_factory=lambda: PairDataConfig(batch_size=8, val_fraction=0.05))
    system: EditSystemConfig = field(default_factory=_cpu_edit_system)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=600))
    style_dirs: list[str] = field(default_factory=list)
    style_overrides: list[str] = field(default_factory=list)
    model_overrides: list[str] = field(default_factory=list)
    global_batch_size: Optional[int] = None


@dataclass
class AdaptFitConfig:
    """``pe3d fit adapt``: norm-only adaptation of a base editor to one style.

    ``base``: base editor file (default: the shipped mini editor); ``prior``: the frozen 3D
    prior that supervises ``L3d`` (default: the shipped mini prior).

    ``num_pairs``, ``lr``, ``max_steps`` and ``max_minutes`` default to the style's ``adapt`` section.
    ``style_dirs`` / ``style_overrides``: as in :class:`DistillFitConfig`.
    """

    base: str = ""
    prior: str = ""
    style: str = ""
    num_pairs: Optional[int] = None
    lr: Optional[float] = None
    pairs_dir: str = "runs/pairs"
    out: str = ""
    export: str = ""
    data: PairDataConfig = field(default_factory=lambda: PairDataConfig(batch_size=4, val_fraction=0.0))
    system: EditSystemConfig = field(default_factory=_cpu_edit_system)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_steps=0, checkpoint_every_n_steps=50))
    style_dirs: list[str] = field(default_factory=list)
    style_overrides: list[str] = field(default_factory=list)


def style_search_dirs(dirs: Sequence[str]) -> list[Path]:
    """A recipe's ``style_dirs`` as folders: relative paths are relative to the project root."""
    paths = [Path(d).expanduser() for d in dirs]
    return [p if p.is_absolute() else project_root() / p for p in paths]


def ensure_pairs(style: str, pairs_dir: str, count: int, style_dirs: Sequence[str] = (), overrides: Sequence[str] = ()) -> Path:
    """Write (or resume) ``count`` pairs of ``style`` into ``<pairs_dir>/<style>``; returns the folder.

    ``style_dirs`` / ``overrides``: extra style folders (see :func:`style_search_dirs`) and
    ``key=value`` style overrides. A complete set is only read, without the writer lock:
    every rank of a distributed launch runs this at once (make large sets beforehand with
    the sharded ``pe3d pairs --devices N``).
    """
    spec = load_named_style(style, style_search_dirs(style_dirs), overrides=overrides)
    folder = Path(pairs_dir) / style
    if not pair_set_complete(spec, folder, count):
        write_pairs(spec, folder, count=count)
    return folder


def per_device_batch_size(global_batch_size: int, world_size: int) -> int:
    """``global_batch_size`` split evenly over ``world_size`` processes (ValueError if it does not divide)."""
    if global_batch_size < 1 or global_batch_size % world_size:
        raise ValueError(f"global_batch_size={global_batch_size} must be a positive multiple of the {world_size} processes")
    return global_batch_size // world_size


def _run(system: L.LightningModule, data_cfg: PairDataConfig, trainer_cfg: TrainerConfig, run_dir: Path, resume: bool,
         callbacks: Sequence[L.Callback] = (), global_batch_size: Optional[int] = None) -> float:
    from pe3d.data.datamodule import PairDataModule

    L.seed_everything(trainer_cfg.seed, workers=True, verbose=False)
    trainer = build_trainer(trainer_cfg, run_dir, extra_callbacks=list(callbacks))
    if global_batch_size:
        data_cfg = replace(data_cfg, batch_size=per_device_batch_size(global_batch_size, trainer.num_devices * trainer.num_nodes))
    datamodule = PairDataModule(data_cfg)
    started = time.perf_counter()
    trainer.fit(system, datamodule=datamodule, ckpt_path=resume_path(run_dir, resume))
    return (time.perf_counter() - started) / 60


def build_distill_system(cfg: DistillFitConfig, prior: PriorModel) -> DistillSystem:
    """The editor (``cfg.model`` + ``cfg.model_overrides``, started from ``prior``) in a :class:`DistillSystem`."""
    model_cfg = editor_config_from_yaml(model_yaml_path(cfg.model), cfg.model_overrides)
    editor = EditorCore.from_prior(prior, model_cfg.cross_attention, model_cfg.prompt_encoder)
    return DistillSystem(editor, prior, cfg.system)


def fit_distill(cfg: DistillFitConfig, resume: bool = False, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train a base editor on the pairs of ``cfg.styles``; returns ``<out>/editor.safetensors``.

    ``callbacks``: extra Lightning callbacks for the trainer (e.g. the benchmark's training record).
    """
    if not cfg.styles:
        raise ValueError("fit distill: no styles given (styles=[a,b] or --styles a,b)")
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_resolved(cfg, run_dir / "config.yaml")
    folders = [ensure_pairs(style, cfg.pairs_dir, cfg.pairs_per_style, cfg.style_dirs, cfg.style_overrides) for style in cfg.styles]
    prior = load_prior(resolve_weights(cfg.prior, "prior_mini"))
    system = build_distill_system(cfg, prior)
    editor = system.editor
    data = copy.deepcopy(cfg.data)
    data.dirs = [str(f) for f in folders]
    minutes = _run(system, data, cfg.trainer, run_dir, resume, callbacks, global_batch_size=cfg.global_batch_size)
    meta = {"styles": ",".join(cfg.styles), "train_minutes": f"{minutes:.2f}"}
    out = save_editor(editor.cpu(), run_dir / "editor.safetensors", meta, cfg.export_dtype)
    print(f"base editor written to {out} ({minutes:.1f} min)")
    return out


def fit_adapt(cfg: AdaptFitConfig, resume: bool = False, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Norm-only adaptation to ``cfg.style``; exports and returns the adapter path.

    ``callbacks``: extra Lightning callbacks for the trainer (e.g. the benchmark's time checkpoints).
    """
    if not cfg.style:
        raise ValueError("fit adapt: which style? (--style NAME or style=NAME)")
    spec = load_named_style(cfg.style, style_search_dirs(cfg.style_dirs), overrides=cfg.style_overrides)
    num_pairs = cfg.num_pairs or spec.adapt.num_pairs
    folder = ensure_pairs(cfg.style, cfg.pairs_dir, num_pairs, cfg.style_dirs, cfg.style_overrides)
    base_path = resolve_weights(cfg.base, "editor_mini")
    editor = load_editor(base_path)
    base_hash = model_hash(editor)
    teacher = load_prior(resolve_weights(cfg.prior, "prior_mini"))
    run_dir = Path(cfg.out or f"runs/adapt/{cfg.style}")
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer_cfg = copy.deepcopy(cfg.trainer)
    if trainer_cfg.max_steps <= 0:
        trainer_cfg.max_steps = spec.adapt.max_steps
    if trainer_cfg.max_minutes <= 0 and spec.adapt.max_minutes:
        trainer_cfg.max_minutes = spec.adapt.max_minutes
    system_cfg = copy.deepcopy(cfg.system)
    system_cfg.optim = OptimConfig(lr=cfg.lr or spec.adapt.lr, warmup_steps=0)
    data = copy.deepcopy(cfg.data)
    data.dirs, data.limit = [str(folder)], num_pairs
    data.batch_size = min(data.batch_size, num_pairs)
    save_resolved(cfg, run_dir / "config.yaml")
    system = AdaptSystem(editor, teacher, system_cfg)
    names = adapter_parameter_names(editor, editor.adaptation_parameters())
    minutes = _run(system, data, trainer_cfg, run_dir, resume, callbacks)
    export = Path(cfg.export) if cfg.export else spec.path / ADAPTER_FILE
    config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))
    save_adapter(export, editor.cpu(), names, cfg.style, base_hash, config_yaml=config_yaml)
    print(f"adapter for {cfg.style!r} written to {export} ({len(names)} tensors, {minutes:.1f} min)")
    return export
