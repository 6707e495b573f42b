"""``pe3d fit prior``: train the prior encoder and export it.

Supervision comes from the procedural world (``teacher.kind=world``, the default) or from
an EG3D generator (``teacher.kind=eg3d teacher.checkpoint=FILE``: Live3D's recipe, see
:mod:`pe3d.data.eg3d_views`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import List

import lightning as L
from torch.utils.data import DataLoader

from pe3d.config import ConfigError, configs_dir, load_fit_config, named_config, save_resolved
from pe3d.data.backgrounds import WallGeometry
from pe3d.data.eg3d_views import EG3DTeacherDataset, TeacherConfig, load_teacher
from pe3d.data.occupancy import OccupancySamplesConfig, load_or_build_occupancy
from pe3d.data.world_views import WorldViewDataset, WorldViewsConfig, load_or_render_bank
from pe3d.devices import resolve_device
from pe3d.losses import ImageLossConfig, ReconstructionLossConfig
from pe3d.models.prior import PriorModel, load_prior, model_config_from_yaml, save_prior
from pe3d.systems.prior import PriorSystem, PriorSystemConfig
from pe3d.recipes.export import checkpoint_to_resume, export_on_rank_zero
from pe3d.systems.runner import TrainerConfig, build_trainer

logger = logging.getLogger(__name__)


@dataclass
class PriorFitConfig:
    """Everything ``pe3d fit prior`` needs; loaded from ``configs/prior/*.yaml`` + overrides."""

    model: str = "mini"
    model_overrides: List[str] = field(default_factory=list)
    """``key=value`` changes to the model YAML, e.g. ``renderer.ray_march.background=null``."""
    export_model_overrides: List[str] = field(default_factory=list)
    """``key=value`` changes written into the exported prior's config, weights unchanged: settings
    that may differ between training and use, e.g. fewer ray samples for inference
    (``renderer.ray_march.depth_resolution=12``). Keys that would change a weight's shape are refused."""
    init: str = ""
    out: str = "runs/prior"
    export_dtype: str = "float32"
    data: WorldViewsConfig = field(default_factory=WorldViewsConfig)
    val_data: WorldViewsConfig = field(default_factory=lambda: WorldViewsConfig(split="heldout", count=8))
    num_targets: int = 3
    target_resolution: int = 32
    background_probability: float = 0.0
    """Share of training items whose white background is replaced by a random flat colour
    (see :class:`~pe3d.data.world_views.WorldViewDataset`); needs ``renderer.background_source=field``
    to be learnable."""
    background_texture: float = 0.0
    """Share of those replaced backgrounds that are a random textured wall (colour waves and
    sharp-edged patches, :mod:`pe3d.data.backgrounds`) seen from each view, instead of a flat
    colour: teaches the prior backgrounds like those of real photos."""
    recolour_probability: float = 0.0
    """Share of training items whose parts get random colours, the same in every view
    (:mod:`pe3d.world.appearance`): teaches the prior to reconstruct colours the world's people
    never have (a green face, blue hair), which the two-stage teacher needs for edited inputs."""
    frontal_input_probability: float = 0.0
    """Share of training items whose input is the bank's near-frontal view 0 (the others' input is any
    of the identity's views); the supervised targets stay random (:class:`~pe3d.data.world_views.WorldViewDataset`)."""
    occupancy: OccupancySamplesConfig = field(default_factory=OccupancySamplesConfig)
    """The world's signed-distance samples per training identity (:mod:`pe3d.data.occupancy`), needed by
    ``system.loss.occupancy``; none by default."""
    batch_size: int = 8
    system: PriorSystemConfig = field(
        default_factory=lambda: PriorSystemConfig(
            loss=ReconstructionLossConfig(image=ImageLossConfig(perceptual="ssim", perceptual_weight=0.2))
        )
    )
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """Where supervision comes from: the world (``data`` / ``val_data``) or an EG3D generator."""


def model_yaml_path(name_or_path: str) -> Path:
    """``configs/model/<name>.yaml`` for a short name, or the path itself."""
    return named_config("model", name_or_path, "model config")


def load_prior_fit_config(config: str | Path | None, overrides: list[str]) -> PriorFitConfig:
    """Defaults <- ``configs/prior/mini.yaml`` (or ``config``) <- overrides."""
    return load_fit_config(PriorFitConfig, config, overrides, default=configs_dir() / "prior" / "mini.yaml")


def build_prior_model(cfg: PriorFitConfig) -> PriorModel:
    """A fresh model from ``cfg.model``, or the weights of ``cfg.init`` when given; with ``init``,
    ``model_overrides`` apply to the loaded model's config and may add tensors (new blocks start
    fresh, every loaded weight keeps its value; see :func:`with_model_overrides`)."""
    if cfg.init:
        return with_model_overrides(load_prior(cfg.init), cfg.model_overrides, allow_new=True)
    return PriorModel(model_config_from_yaml(model_yaml_path(cfg.model), cfg.model_overrides))


def build_world_loaders(cfg: PriorFitConfig, model: PriorModel) -> tuple[DataLoader, DataLoader]:
    """Training and validation loaders over cached world renders (``data`` / ``val_data``);
    textured backgrounds are painted on ``model``'s background wall."""
    ray_march = model.renderer.config.ray_march  # the box the planes span (grown by encoder.plane_border)
    wall = WallGeometry(box_warp=ray_march.box_warp, ray_end=ray_march.ray_end)
    if cfg.system.loss.occupancy > 0 and cfg.occupancy.points < 1:
        raise ConfigError(f"system.loss.occupancy={cfg.system.loss.occupancy} needs signed-distance samples: set occupancy.points "
                          "(e.g. occupancy.points=4096)")
    bank = load_or_render_bank(cfg.data, workers=cfg.trainer.num_workers)
    occupancy = (load_or_build_occupancy(bank, ray_march.box_warp, cfg.occupancy, cfg.data.seed)
                 if cfg.system.loss.occupancy > 0 else None)
    train_set = WorldViewDataset(bank, cfg.num_targets, cfg.target_resolution,
                                 background_probability=cfg.background_probability,
                                 background_texture=cfg.background_texture, wall=wall,
                                 recolour_probability=cfg.recolour_probability,
                                 frontal_input_probability=cfg.frontal_input_probability,
                                 occupancy=occupancy, occupancy_per_item=cfg.occupancy.per_item)
    val_set = WorldViewDataset(load_or_render_bank(cfg.val_data), cfg.num_targets, cfg.target_resolution, random_views=False)
    loader_kwargs = dict(batch_size=cfg.batch_size, num_workers=cfg.trainer.num_workers)
    return (DataLoader(train_set, shuffle=True, drop_last=True, **loader_kwargs),
            DataLoader(val_set, shuffle=False, **loader_kwargs))


def build_eg3d_loaders(cfg: PriorFitConfig, model: PriorModel) -> tuple[DataLoader, DataLoader]:
    """Loaders of :class:`EG3DTeacherDataset` batches (one item = one batch, generated by the teacher).

    The teacher triplane supervises the student's (``teacher.triplane_loss``: ``require`` makes
    triplanes of different shapes an error, ``auto`` skips the loss with a logged warning, ``off``
    never uses it); the student's renderer decoder starts from the teacher's when
    ``teacher.init_decoder`` (decoders of other sizes are an error naming the key).
    """
    teacher_cfg = cfg.teacher
    generator = load_teacher(teacher_cfg.checkpoint)
    encoder = model.cfg.encoder
    student_shape = (3, encoder.triplane_channels, encoder.plane_resolution, encoder.plane_resolution)
    teacher_shape = (3, generator.cfg.triplane_channels, generator.cfg.triplane_resolution, generator.cfg.triplane_resolution)
    include_planes = teacher_cfg.triplane_loss != "off" and student_shape == teacher_shape
    if teacher_cfg.triplane_loss != "off" and student_shape != teacher_shape:
        message = f"teacher triplane {teacher_shape} != student triplane {student_shape}"
        if teacher_cfg.triplane_loss == "require":
            raise ConfigError(f"{message}: no triplane loss possible; set teacher.triplane_loss=auto (or off) to train without it")
        logger.warning("%s: training without the triplane loss (teacher.triplane_loss=auto)", message)
    if teacher_cfg.init_decoder and not cfg.init:
        from pe3d.eg3d.renderer import copy_decoder_into

        try:
            copy_decoder_into(model.renderer.decoder, generator.decoder)
        except ValueError as error:
            raise ConfigError(f"teacher.init_decoder: {error}; set teacher.init_decoder=false to keep the student's own decoder") from None
    device = resolve_device(teacher_cfg.device)

    def dataset(length: int, seed: int) -> EG3DTeacherDataset:
        return EG3DTeacherDataset(generator, teacher_cfg, cfg.batch_size, cfg.num_targets, cfg.target_resolution,
                                  encoder.image_size, length, seed, include_planes, device)

    train = dataset(teacher_cfg.batches_per_epoch, teacher_cfg.seed)
    val = dataset(teacher_cfg.val_batches, teacher_cfg.seed + 1)
    return DataLoader(train, batch_size=None, shuffle=True), DataLoader(val, batch_size=None, shuffle=False)


def fit_prior(cfg: PriorFitConfig, resume: bool = False, callbacks: list | None = None) -> Path:
    """Train, then write ``<out>/prior.safetensors`` and ``<out>/config.yaml``; returns the weights path.
    ``callbacks``: extra Lightning callbacks for the trainer (e.g. a step timer)."""
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = checkpoint_to_resume(run_dir, resume)
    save_resolved(cfg, run_dir / "config.yaml")
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    if cfg.teacher.kind == "eg3d":
        model = build_prior_model(cfg)
        train_loader, val_loader = build_eg3d_loaders(cfg, model)
    else:
        model = build_prior_model(cfg)
        train_loader, val_loader = build_world_loaders(cfg, model)
    system = PriorSystem(model, cfg.system)
    trainer = build_trainer(cfg.trainer, run_dir, callbacks)
    started = time.perf_counter()
    trainer.fit(system, train_loader, val_loader, ckpt_path=ckpt_path)
    minutes = (time.perf_counter() - started) / 60
    meta = {"train_minutes": f"{minutes:.2f}", "steps": str(trainer.global_step)}
    out = run_dir / "prior.safetensors"
    exported = with_model_overrides(model.cpu(), cfg.export_model_overrides)
    return export_on_rank_zero(trainer, model, out, lambda: save_prior(exported, out, meta, cfg.export_dtype),
                               f"prior ({trainer.global_step} steps, {minutes:.1f} min)")


def with_model_overrides(model: PriorModel, overrides: List[str], allow_new: bool = False) -> PriorModel:
    """``model`` with ``key=value`` changes to its config (``encoder.*`` / ``renderer.*`` paths) and the
    same weights. A change that alters a weight's shape, or drops one, is refused naming the overrides.
    ``allow_new`` lets the changed model have tensors ``model`` lacks (e.g. ``encoder.t_refine_blocks``,
    whose blocks start as the identity); they keep their fresh initialisation and are logged."""
    from pe3d.config import load_structured
    from pe3d.models.checkpoints import with_config_overrides
    from pe3d.models.prior import PriorModelConfig

    return with_config_overrides(model, overrides, lambda o: PriorModel(load_structured(PriorModelConfig, [asdict(model.cfg)], o)),
                                 allow_new)
