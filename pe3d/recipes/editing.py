"""``pe3d fit distill`` and ``pe3d fit adapt``: the two editing recipes.

Both make (or resume) the styles' pairs, build the editor and the frozen teacher, and
run the matching system through the shared trainer. Distillation writes a base editor
(``<out>/editor.safetensors``); adaptation exports ``<style folder>/adapter.safetensors`` (a
built-in style is first copied into the user's style folder: :mod:`pe3d.recipes.export`).
Exports happen once, on global rank 0, after the ranks agree on the weights.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence

import lightning as L
from omegaconf import OmegaConf

from pe3d.config import ConfigError, builtin_root, save_resolved
from pe3d.data.pairs import PairDataConfig, pair_set_complete, write_pairs
from pe3d.losses import DEPTH_SOURCES, EditLossConfig, ImageLossConfig
from pe3d.models.checkpoints import model_hash, short_list
from pe3d.models.editor import EditorCore, editor_config_from_yaml, input_framing, load_editor, save_editor, with_editor_overrides
from pe3d.models.prior import PriorModel, load_prior
from pe3d.recipes.prior import model_yaml_path
from pe3d.adapters import adapter_parameter_names, save_adapter
from pe3d.recipes.export import adapter_destination, checkpoint_to_resume, export_on_rank_zero
from pe3d.styles.discovery import load_named_style
from pe3d.styles.spec import AdaptSpec, StyleSpec
from pe3d.systems.common import OptimConfig
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.runner import TrainerConfig, build_trainer
from pe3d.weights import resolve_weights

logger = logging.getLogger(__name__)


def _cpu_edit_system() -> EditSystemConfig:
    # LPIPS needs backbone weights that cannot be downloaded here; SSIM is the default
    # perceptual term of the CPU recipes (set system.loss.image_3d.perceptual=lpips to use it).
    # Renders are compared at the mini model's full 64^2 on dilated ray patches (cheap on a CPU).
    loss = EditLossConfig(image_3d=ImageLossConfig(l2=1.0, l1=0.5, perceptual="ssim", perceptual_weight=0.2))
    return EditSystemConfig(loss=loss, render_resolution=64, input_ray_stride=4, view_ray_stride=4)


def _cpu_adapt_system() -> EditSystemConfig:
    # optim.lr 0.0 = "not given": the recipe takes `lr`, else the style's adapt.lr (see AdaptFitConfig);
    # loss.depth_source "" = the style's adapt.depth_source; loss.depth_3d -1 = the style's adapt.depth_weight.
    # A weak triplane term (0.1, distillation's mini recipe too): norm-only adaptation cannot make E_t's
    # triplane features match the teacher's, and at 1.0 the L1 to them pulls the edit towards the teacher's
    # blur (golden_statue, 10 pairs, 80 steps, edit / novel-view PSNR: 17.91 / 17.18 dB at 1.0, 18.77 / 17.82
    # at 0.1, 19.41 / 18.21 at 0; the teacher 18.46 / 17.55); without it, a recoloured background is not
    # learned in 80 steps (green_mono_bg 13.06 dB at 0, 15.73 at 0.1; its teacher 15.74). Measured with
    # depth_source input; green_mono_bg was 14.80 dB at 1.0 with depth_source edited.
    system = _cpu_edit_system()
    system.optim = OptimConfig(lr=0.0, warmup_steps=0)
    system.loss.triplane_3d = 0.1
    system.loss.depth_source = ""
    system.loss.depth_3d = -1.0
    return system


@dataclass
class DistillFitConfig:
    """``pe3d fit distill``: a multi-style base editor from a trained prior.

    ``style_dirs``: extra folders searched for ``styles`` (a relative path is taken from the
    current directory when it exists there, else from pe3d's built-in root, e.g.
    ``configs/experiment/paper_styles``); ``style_overrides``: ``key=value`` applied to every
    style (e.g. ``params.dir=/data/ffhq512``); ``model_overrides``: ``key=value`` for the model
    YAML (e.g. ``prompt_encoder.text.pretrained=openai``); ``global_batch_size``: when set,
    ``data.batch_size`` per process becomes this divided by the number of processes (the
    paper's 32 on 8 GPUs is 4 each; a different ``data.batch_size`` is replaced, with a logged warning).
    ``data.dirs`` is filled from the styles' pair folders (giving it is refused). ``init``: an
    editor file to continue from (fine-tuning, e.g. with a new ``data.prompt_augment``) instead of
    a new editor built from the prior; its triplanes must match the prior's. With ``init``,
    ``model_overrides`` may change only settings that no weight depends on (e.g.
    ``encoder.plane_border``); one that adds, drops or reshapes a weight is refused.
    """

    prior: str = ""
    init: str = ""
    init_takes_prior_parts: bool = True
    """With ``init``: the editor's E_low, E_high and renderer (the parts a new editor copies from its prior and
    distillation keeps frozen) become ``prior``'s first (logged when they differ), so a stage against a
    continued prior starts from its encoders and renderer, not from those of the prior the init editor was built
    from; ``false`` keeps the init file's."""
    residual: bool = False
    """Distil a residual editor (:attr:`~pe3d.models.editor.EditorConfig.residual`: the frozen prior's triplane
    plus a learned edit). A new editor is built residual; with ``init``, a non-residual editor file is turned
    into one (:meth:`~pe3d.models.editor.EditorCore.as_residual`: ``prior``'s E_t as the base, E_t's output
    layer zeroed) and a residual one is continued as it is."""
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
    prior that supervises ``L3d`` (default: the shipped mini prior; it must match the editor's
    triplanes, :func:`check_teacher`: an imported 3DPE editor takes its imported Live3D prior).
    The pairs are made at the editor's input size and prompted as it can read them
    (:func:`pairs_for_editor`, :func:`adapt_prompt_source`: an editor without a text encoder
    adapts to image-prompt styles only).

    Defaults taken from the style's ``adapt`` section, each overridable:

    * ``num_pairs`` (``None`` = the style's ``adapt.num_pairs``; ``data.limit`` follows it);
    * ``lr`` or ``system.optim.lr`` (not both; unset = the style's ``adapt.lr``); every other
      ``system.optim.*`` key applies as given (warm-up defaults to 0 steps here);
    * ``trainer.max_steps``: ``-1`` = the style's ``adapt.max_steps``;
    * ``trainer.max_minutes``: ``-1`` = the style's ``adapt.max_minutes``, ``0`` = no time limit;
    * ``trainer.gradient_clip_norm``: ``-1`` = the style's ``adapt.gradient_clip_norm``, ``0`` = no clipping;
    * ``data.batch_size``: ``-1`` = the style's ``adapt.batch_size`` (capped at ``num_pairs``);
    * ``system.loss.depth_source``: ``""`` = the style's ``adapt.depth_source``;
    * ``system.loss.depth_3d``: ``-1`` = the style's ``adapt.depth_weight``.

    ``system.loss.triplane_3d`` defaults to 0.1 (see ``_cpu_adapt_system``).
    ``export``: adapter file (default: see :func:`~pe3d.recipes.export.adapter_destination`).
    ``style_dirs`` / ``style_overrides``: as in :class:`DistillFitConfig`.
    """

    base: str = ""
    prior: str = ""
    style: str = ""
    num_pairs: Optional[int] = None
    lr: Optional[float] = None
    decoder_lr_scale: float = 0.0
    """``> 0``: the renderer's decoder MLP adapts too, at this multiple of the learning rate, and the adapter
    carries it (a colour map the same at every 3D point; not in the paper). 0.1 measured best: a recoloured
    background 0.5-0.9 dB closer to its teacher on the shipped pair, the other fixtures within seed noise
    (docs/results/quality/residual_editor.md). 0: norm-only, as the paper."""
    pairs_dir: str = "runs/pairs"
    out: str = ""
    export: str = ""
    data: PairDataConfig = field(default_factory=lambda: PairDataConfig(batch_size=-1, val_fraction=0.0))
    system: EditSystemConfig = field(default_factory=_cpu_adapt_system)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        max_steps=-1, max_minutes=-1, gradient_clip_norm=-1, checkpoint_every_n_steps=50))
    style_dirs: list[str] = field(default_factory=list)
    style_overrides: list[str] = field(default_factory=list)


def style_search_dirs(dirs: Sequence[str]) -> list[Path]:
    """A recipe's ``style_dirs`` as folders: a relative path is taken from the current directory
    when it exists there, otherwise from pe3d's built-in root (``configs/experiment/paper_styles``)."""
    paths = [Path(d).expanduser() for d in dirs]
    return [p if p.is_absolute() or p.is_dir() else builtin_root() / p for p in paths]


def ensure_pairs(style: str, pairs_dir: str, count: int, style_dirs: Sequence[str] = (), overrides: Sequence[str] = (),
                 folder_name: str = "") -> Path:
    """Write (or resume) ``count`` pairs of ``style`` into ``<pairs_dir>/<style>``; returns the folder.

    ``style_dirs`` / ``overrides``: extra style folders (see :func:`style_search_dirs`) and
    ``key=value`` style overrides; ``folder_name``: another sub-folder than the style name. A
    complete set is only read, without the writer lock: every rank of a distributed launch runs
    this at once (make large sets beforehand with the sharded ``pe3d pairs --devices N``).
    """
    spec = load_named_style(style, style_search_dirs(style_dirs), overrides=overrides)
    folder = Path(pairs_dir) / (folder_name or style)
    if not pair_set_complete(spec, folder, count):
        write_pairs(spec, folder, count=count)
    return folder


def per_device_batch_size(global_batch_size: int, world_size: int) -> int:
    """``global_batch_size`` split evenly over ``world_size`` processes (ValueError if it does not divide)."""
    if global_batch_size < 1 or global_batch_size % world_size:
        raise ValueError(f"global_batch_size={global_batch_size} must be a positive multiple of the {world_size} processes")
    return global_batch_size // world_size


def _run(system: L.LightningModule, data_cfg: PairDataConfig, trainer_cfg: TrainerConfig, run_dir: Path, resume: bool,
         callbacks: Sequence[L.Callback] = (), global_batch_size: Optional[int] = None) -> tuple[L.Trainer, float]:
    from pe3d.data.datamodule import PairDataModule

    ckpt_path = checkpoint_to_resume(run_dir, resume)
    L.seed_everything(trainer_cfg.seed, workers=True, verbose=False)
    trainer = build_trainer(trainer_cfg, run_dir, extra_callbacks=list(callbacks))
    if global_batch_size:
        per_device = per_device_batch_size(global_batch_size, trainer.num_devices * trainer.num_nodes)
        if per_device != data_cfg.batch_size:
            logger.warning("global_batch_size=%d over %d processes: data.batch_size=%d becomes %d per process",
                           global_batch_size, trainer.num_devices * trainer.num_nodes, data_cfg.batch_size, per_device)
        data_cfg = replace(data_cfg, batch_size=per_device)
    datamodule = PairDataModule(data_cfg)
    started = time.perf_counter()
    trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer, (time.perf_counter() - started) / 60


def teacher_store_folder(value: str, pairs_dir: str) -> str:
    """``system.teacher_store`` as the recipes use it: ``<pairs_dir>/refined-teacher`` when empty (the refined
    teacher's triplanes are kept beside the pairs they were made from), else as given (``none``: not kept)."""
    return value or str(Path(pairs_dir) / "refined-teacher")


def _run_summary(minutes: float, system: AdaptSystem | DistillSystem) -> str:
    """``"0.6 min"``, plus what the frozen-output cache reused and the refined-teacher store read (on this process)."""
    notes = [note for note in (system.frozen_cache.summary(),
                               system.teacher_store.summary() if system.teacher_store is not None else "") if note]
    return "; ".join([f"{minutes:.1f} min", *notes])


def _refuse_recipe_keys(cfg: DistillFitConfig | AdaptFitConfig) -> None:
    """Keys the recipe fills in itself: giving them would be ignored, so they are refused by name."""
    if cfg.data.dirs:
        raise ConfigError(f"data.dirs={list(cfg.data.dirs)}: set by the recipe from the style pairs (use pairs_dir / styles)")
    if isinstance(cfg, AdaptFitConfig) and cfg.data.limit is not None:
        raise ConfigError(f"data.limit={cfg.data.limit}: fit adapt uses num_pairs (give num_pairs={cfg.data.limit})")


def build_distill_system(cfg: DistillFitConfig, prior: PriorModel) -> DistillSystem:
    """The editor (``cfg.model`` + ``cfg.model_overrides``, started from ``prior``; or the editor file
    ``cfg.init``, checked against the prior) in a :class:`DistillSystem`."""
    if cfg.init:
        # overrides that leave every weight as it is (e.g. encoder.plane_border) apply; others are refused
        editor = with_editor_overrides(load_editor(resolve_weights(cfg.init, "editor_mini")), cfg.model_overrides)
        prior_name = cfg.prior or "the shipped mini prior"
        check_teacher(prior, editor, prior_name, cfg.init)
        if cfg.init_takes_prior_parts:
            try:
                changed = editor.take_prior_parts(prior)
            except ValueError as err:
                raise ConfigError(f"init={cfg.init}: {err} (prior {prior_name}); "
                                  "init_takes_prior_parts=false keeps the editor's own") from err
            if changed:
                logger.warning("init=%s: E_low, E_high and the renderer taken from the prior (differed: %s)",
                               cfg.init, short_list(changed, 3))
        if cfg.residual and not editor.cfg.residual:
            editor = editor.as_residual(prior)
            logger.warning("init=%s: turned residual (the prior's E_t as the frozen base, E_t's output layer zeroed)",
                           cfg.init)
        return DistillSystem(editor, prior, cfg.system)
    model_cfg = editor_config_from_yaml(model_yaml_path(cfg.model), cfg.model_overrides)
    editor = EditorCore.from_prior(prior, model_cfg.cross_attention, model_cfg.prompt_encoder,
                                   residual=cfg.residual or model_cfg.residual)
    return DistillSystem(editor, prior, cfg.system)


def fit_distill(cfg: DistillFitConfig, resume: bool = False, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Train a base editor on the pairs of ``cfg.styles``; returns ``<out>/editor.safetensors``.

    ``callbacks``: extra Lightning callbacks for the trainer (e.g. the benchmark's training record).
    """
    if not cfg.styles:
        raise ConfigError("fit distill: no styles given (styles=[a,b] or --styles a,b)")
    _refuse_recipe_keys(cfg)
    run_dir = Path(cfg.out)
    checkpoint_to_resume(run_dir, resume)  # a --resume with nothing to resume fails before the pairs are made
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = replace(cfg, system=replace(cfg.system, teacher_store=teacher_store_folder(cfg.system.teacher_store, cfg.pairs_dir)))
    save_resolved(cfg, run_dir / "config.yaml")
    folders = [ensure_pairs(style, cfg.pairs_dir, cfg.pairs_per_style, cfg.style_dirs, cfg.style_overrides) for style in cfg.styles]
    prior = load_prior(resolve_weights(cfg.prior, "prior_mini"))
    system = build_distill_system(cfg, prior)
    editor = system.editor
    data = copy.deepcopy(cfg.data)
    data.dirs = [str(f) for f in folders]
    trainer, minutes = _run(system, data, cfg.trainer, run_dir, resume, callbacks, global_batch_size=cfg.global_batch_size)
    meta = {"styles": ",".join(cfg.styles), "train_minutes": f"{minutes:.2f}"}
    out = run_dir / "editor.safetensors"
    return export_on_rank_zero(trainer, editor, out, lambda: save_editor(editor.cpu(), out, meta, cfg.export_dtype),
                               f"base editor ({_run_summary(minutes, system)})")


def fit_adapt(cfg: AdaptFitConfig, resume: bool = False, callbacks: Sequence[L.Callback] = ()) -> Path:
    """Norm-only adaptation to ``cfg.style``; exports and returns the adapter path.

    ``callbacks``: extra Lightning callbacks for the trainer (e.g. the benchmark's time checkpoints).
    """
    if not cfg.style:
        raise ConfigError("fit adapt: which style? (--style NAME or style=NAME)")
    _refuse_recipe_keys(cfg)
    spec = load_named_style(cfg.style, style_search_dirs(cfg.style_dirs), overrides=cfg.style_overrides)
    num_pairs = spec.adapt.num_pairs if cfg.num_pairs is None else cfg.num_pairs
    trainer_cfg, system_cfg, data = adapt_settings(cfg, spec.adapt, num_pairs)
    base_path = resolve_weights(cfg.base, "editor_mini")
    editor = load_editor(base_path)
    data.prompt_source, data.reference_image = adapt_prompt_source(spec, editor, str(cfg.base or base_path))
    extra, folder_name = pairs_for_editor(spec, editor, cfg.style_overrides)
    teacher_path = resolve_weights(cfg.prior, "prior_mini")
    teacher = load_prior(teacher_path)
    check_teacher(teacher, editor, str(cfg.prior or teacher_path), str(cfg.base or base_path))
    run_dir = Path(cfg.out or f"runs/adapt/{cfg.style}")
    checkpoint_to_resume(run_dir, resume)  # before the pairs are made
    folder = ensure_pairs(cfg.style, cfg.pairs_dir, num_pairs, cfg.style_dirs, [*cfg.style_overrides, *extra], folder_name)
    base_hash = model_hash(editor)
    run_dir.mkdir(parents=True, exist_ok=True)
    data.dirs = [str(folder)]
    save_resolved(cfg, run_dir / "config.yaml")
    system = AdaptSystem(editor, teacher, system_cfg, decoder_lr_scale=cfg.decoder_lr_scale)
    names = adapter_parameter_names(editor, system.adapter_parameters())
    trainer, minutes = _run(system, data, trainer_cfg, run_dir, resume, callbacks)
    config_yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg))

    def write() -> Path:
        export = Path(cfg.export) if cfg.export else adapter_destination(spec.path, spec.name)
        return save_adapter(export, editor.cpu(), names, cfg.style, base_hash, kind=system.adapter_kind,
                            config_yaml=config_yaml)

    where = Path(cfg.export) if cfg.export else spec.path
    return export_on_rank_zero(trainer, editor, where, write, f"adapter for {cfg.style!r} ({len(names)} tensors, {_run_summary(minutes, system)})")


def adapt_prompt_source(spec: StyleSpec, editor: EditorCore, base: str) -> tuple[str, str]:
    """How the pairs of ``spec`` prompt ``editor``: ``(data.prompt_source, data.reference_image)``.

    * a style with a ``reference`` image: that image prompts every pair;
    * an editor without a text encoder (the imported 3DPE release reads reference images only)
      and a style with ``image_prompts``: every pair is prompted by an image in the target style
      (its own reference, else another pair's edited image: the authors' loader, see
      :class:`~pe3d.data.pairs.PairDataset`);
    * otherwise each pair keeps its stored prompt.

    Raises:
        ConfigError: the style prompts with text only and the editor has no text encoder (or it
            prompts with an image and the editor has no image encoder), in one line naming both.
    """
    if spec.reference:
        if editor.image_encoder is None:
            raise ConfigError(f"style {spec.name!r} prompts with its reference image {spec.reference!r}, but the base "
                              f"editor {base} has no image prompt encoder (prompt_encoder.image is null)")
        return "image", str(spec.reference_path)
    if editor.text_encoder is not None:
        return "stored", ""
    if not spec.image_prompts:
        raise ConfigError(f"style {spec.name!r} prompts with text only (image_prompts: false, no reference image), but "
                          f"the base editor {base} has no text encoder (it reads reference images only, like the 3DPE "
                          f"release): set image_prompts: true or reference: IMAGE in {spec.style_file}")
    return "image", ""


def pairs_for_editor(spec: StyleSpec, editor: EditorCore, overrides: Sequence[str]) -> tuple[list[str], str]:
    """Style overrides that make the pairs the way ``editor`` takes its input, and their pair folder name.

    The pairs are made at the editor's input size (512^2 for the imported 3DPE editor, whatever
    the style's ``pairs.resolution``) and photos aligned by a ``folder`` style are cropped with
    the editor's framing (EG3D's FFHQ crop for the imported editor). Returns ``([], "")`` when
    the style already matches; otherwise the overrides and ``<style>@<size>[-<framing>]``, so the
    pairs never mix with the style's own set in ``<pairs_dir>/<style>``.

    Raises:
        ConfigError: a ``pairs.resolution`` override that differs from the editor's input size.
    """
    size = editor.cfg.prior.encoder.image_size
    framing = input_framing(editor.cfg)
    extra: list[str] = []
    if spec.pairs.resolution != size:
        if any(o.replace(" ", "").startswith("pairs.resolution=") for o in overrides):
            raise ConfigError(f"pairs.resolution={spec.pairs.resolution}: the base editor takes {size}^2 images "
                              f"(leave pairs.resolution unset: fit adapt makes the pairs at the editor's size)")
        extra.append(f"pairs.resolution={size}")
    aligned = spec.generator == "folder" and spec.params.get("align", "none") != "none"
    if aligned and spec.params.get("framing", "world") != framing:
        extra.append(f"params.framing={framing}")
    if not extra:
        return [], ""
    return extra, f"{spec.name}@{size}" + (f"-{framing}" if aligned and framing != "world" else "")


def _triplane_shape(cfg) -> tuple:
    enc = cfg.encoder
    return (enc.image_size, enc.triplane_channels, enc.plane_resolution, getattr(cfg, "eg3d_renderer", None) is not None)


def check_teacher(teacher: PriorModel, editor: EditorCore, prior: str, base: str) -> None:
    """The frozen teacher must take the editor's input and give triplanes of its shape for its renderer
    (``L3d`` compares the two triplanes and renders both at the same cameras).

    Raises:
        ConfigError: in one line, naming both files and, for an imported editor, how to get its prior.
    """
    ours, theirs = _triplane_shape(editor.cfg.prior), _triplane_shape(teacher.cfg)
    if ours == theirs:
        return

    def describe(shape: tuple) -> str:
        size, channels, resolution, eg3d = shape
        return f"{size}^2 images -> 3 x {channels} x {resolution}^2 triplanes, {'EG3D' if eg3d else 'pe3d'} renderer"

    hint = ""
    if ours[3]:
        hint = ("; an imported 3DPE editor is supervised by the Live3D prior it was distilled from: "
                "pe3d import-3dpe encoder_render.pt live3d.safetensors, then prior=live3d.safetensors")
    raise ConfigError(f"prior {prior} ({describe(theirs)}) does not match the base editor {base} ({describe(ours)}){hint}")


def adapt_settings(cfg: AdaptFitConfig, style: AdaptSpec, num_pairs: int) -> tuple[TrainerConfig, EditSystemConfig, PairDataConfig]:
    """The trainer, system and data settings of one adaptation: ``cfg`` with the style's
    defaults filled in where ``cfg`` leaves them unset (see :class:`AdaptFitConfig`).

    Raises:
        ConfigError: a value that cannot be used, naming its key.
    """
    if num_pairs < 1:
        raise ConfigError(f"num_pairs={num_pairs}: must be at least 1")
    trainer_cfg = copy.deepcopy(cfg.trainer)
    if trainer_cfg.max_steps == -1:
        trainer_cfg.max_steps = style.max_steps
    elif trainer_cfg.max_steps < 1:
        raise ConfigError(f"trainer.max_steps={trainer_cfg.max_steps}: must be positive, or -1 for the style's adapt.max_steps")
    if trainer_cfg.max_minutes == -1:
        trainer_cfg.max_minutes = style.max_minutes or 0.0
    elif trainer_cfg.max_minutes < 0:
        raise ConfigError(f"trainer.max_minutes={trainer_cfg.max_minutes}: must be >= 0 (0 = no limit), or -1 for the style's")
    if trainer_cfg.gradient_clip_norm == -1:
        trainer_cfg.gradient_clip_norm = style.gradient_clip_norm
    elif trainer_cfg.gradient_clip_norm < 0:
        raise ConfigError(f"trainer.gradient_clip_norm={trainer_cfg.gradient_clip_norm}: must be >= 0 (0 = no clipping), "
                          "or -1 for the style's adapt.gradient_clip_norm")
    system_cfg = copy.deepcopy(cfg.system)
    if cfg.lr is not None and system_cfg.optim.lr != 0.0:
        raise ConfigError(f"lr={cfg.lr} and system.optim.lr={system_cfg.optim.lr}: give one of them")
    system_cfg.optim.lr = cfg.lr if cfg.lr is not None else (system_cfg.optim.lr or style.lr)
    if system_cfg.optim.lr <= 0:
        raise ConfigError(f"lr={system_cfg.optim.lr}: must be positive")
    system_cfg.loss.depth_source = system_cfg.loss.depth_source or style.depth_source
    if system_cfg.loss.depth_source not in DEPTH_SOURCES:
        raise ConfigError(f"system.loss.depth_source={system_cfg.loss.depth_source!r}: must be one of {list(DEPTH_SOURCES)}")
    system_cfg.teacher_store = teacher_store_folder(system_cfg.teacher_store, cfg.pairs_dir)
    if system_cfg.loss.depth_3d == -1:
        system_cfg.loss.depth_3d = style.depth_weight
    elif system_cfg.loss.depth_3d < 0:
        raise ConfigError(f"system.loss.depth_3d={system_cfg.loss.depth_3d}: must be >= 0, or -1 for the style's adapt.depth_weight")
    data = copy.deepcopy(cfg.data)
    if data.batch_size == -1:
        data.batch_size = min(style.batch_size, num_pairs)
    elif not 1 <= data.batch_size <= num_pairs:
        raise ConfigError(f"data.batch_size={data.batch_size}: must be between 1 and num_pairs={num_pairs}, or -1 for the style's")
    data.limit = num_pairs
    return trainer_cfg, system_cfg, data
