"""Distillation and norm-only adaptation: two LightningModules, one training step.

Both receive a built :class:`~pe3d.models.editor.EditorCore` and a frozen teacher
:class:`~pe3d.models.prior.PriorModel` (the 3D prior of Eq. 5), and optimise the same
objective (:class:`~pe3d.losses.EditObjective`). They differ only in which parameters
train:

* :class:`DistillSystem`: ``E_p`` (as its ``train`` mode allows), the cross-attention and ``E_t``;
* :class:`AdaptSystem`: ``E_p`` and the normalization parameters of ``E_t``.

Everything else (``E_low``, ``E_high``, the renderer, the teacher) is frozen; so is ``E_p`` with
``system.train_prompt_encoder=false``. ``system.self_distill_weight`` adds a term that holds the editor's
triplanes to those of a frozen copy of the editor it started from (:class:`EditSystemConfig`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterator

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pe3d.geometry import sample_camera_labels
from pe3d.losses import EditLossConfig, EditObjective, ImageLossConfig, triplane_loss
from pe3d.models.editor import EditorCore, Prompts
from pe3d.models.prior import PriorModel
from pe3d.refinement import RefineConfig, fit_detail_residual
from pe3d.systems.common import DilatedRays, OptimConfig, build_optimizer, log_image_grid, trainer_max_steps
from pe3d.systems.frozen_cache import FrozenOutputCache, batch_independent, image_fingerprints, pair_keys
from pe3d.systems.teacher_store import RefinedTeacherStore, stored_fingerprints, teacher_provenance
from pe3d.systems.view_bank import ViewBank


TEACHER_REFINE_LR = 0.02
"""The rate of the teacher's refinement (``system.teacher_refine_steps``): the shipped editor's stages were
distilled with it (half the rate a photo is refined at, :class:`~pe3d.refinement.RefineConfig`'s default), and
with every ray each step (a photo: a quarter)."""


def teacher_refinement(steps: int) -> RefineConfig:
    """The refinement of a pair's teacher triplane (``system.teacher_refine_steps``): the shipped recipe's
    settings, whatever :class:`~pe3d.refinement.RefineConfig`'s defaults for photos become."""
    return RefineConfig(steps=steps, lr=TEACHER_REFINE_LR, ray_fraction=1.0, hull_threshold=0.0, empty_weight=0.0)


@dataclass
class EditSystemConfig:
    """Settings shared by distillation and adaptation.

    ``num_views``: size of the camera set ``C`` for ``L3d`` (random poses each step);
    ``render_resolution``: side of the renders compared in the losses.
    """

    loss: EditLossConfig = field(
        default_factory=lambda: EditLossConfig(image_3d=ImageLossConfig(perceptual="lpips", perceptual_weight=2.0))
    )
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, warmup_steps=0))
    num_views: int = 2
    render_resolution: int = 32
    view_yaw_std: float = 0.4
    view_pitch_std: float = 0.15
    view_ray_stride: int = 1
    """``L3d`` views render a dilated patch (every ``view_ray_stride``-th ray) when training."""
    input_ray_stride: int = 1
    """``L2d``'s render at the input camera is a dilated patch (every ``input_ray_stride``-th ray)
    when training, compared with the same pixels of the full-resolution pseudo-label."""
    view_bank: int = 0
    """``L3d`` views per training pair: 0 draws fresh poses (and ray-patch offsets) at every step; ``K > 0``
    draws each item's ``num_views`` from ``K`` views fixed per pair (:class:`~pe3d.systems.view_bank.ViewBank`),
    so the frozen teacher renders each of them once (kept in the frozen-output cache; needs
    ``frozen_cache_mb > 0`` and pairs that name themselves, else fresh views are drawn). Off by default:
    on the adaptation fixtures (``python tools/adaptation_sweep.py STYLE system.view_bank=16``, 2026-12-04)
    a bank of 16 made ``fit adapt`` 11 % faster (12.2 vs 13.7 s, 3 runs each, alternating) and moved the
    adapted editor by -0.11 / -0.13 / -0.07 dB (green_mono, trainer.seed 0 / 1 / 2), -0.06
    (green_mono_bg) and +0.11 dB (golden_statue); banks of 8 / 32 gave green_mono -0.07 / -0.05 dB."""
    teacher_refine_steps: int = 0
    """Steps of test-time detail refinement (:mod:`pe3d.refinement`) of the teacher's triplane of each
    pair's 2D edit: a residual fitted so that it renders like the edit at the pair's camera, once per pair
    (kept in the frozen-output cache; :func:`teacher_refinement`). 0: the teacher's feed-forward triplane, as in
    the paper."""
    teacher_store: str = ""
    """A folder where the refined teacher's triplanes (``teacher_refine_steps > 0``) are kept across runs
    (:class:`~pe3d.systems.teacher_store.RefinedTeacherStore`: one file per pair, in a subfolder named by a hash of
    the teacher and the refinement settings), so a later run on the same pairs reads them instead of fitting them
    again. ``""``: kept in memory for one run only; ``pe3d fit distill`` and ``fit adapt`` fill it with
    ``<pairs_dir>/refined-teacher`` (``none``: memory only there too)."""
    self_distill_weight: float = 0.0
    """Weight of an L1 term (:func:`~pe3d.losses.triplane_loss`) between the editor's triplanes and those a frozen
    copy of the editor it starts from makes for the same image and prompt (self-distillation), on every item whose
    style is not in ``self_distill_exempt_styles``: a stage that trains one style further
    (``data.style_repeats``) keeps what the editor did for the others, prompts near their training prompts included.
    0: off (no copy is made)."""
    self_distill_exempt_styles: list[str] = field(default_factory=list)
    """Styles (pair folder names) the self-distillation term leaves free: those the stage is meant to change."""
    train_prompt_encoder: bool = True
    """``False`` keeps ``E_p`` frozen (in distillation whatever its ``train`` mode allows; in adaptation its mapper
    too, so only ``E_t``'s norms adapt): the prompts' tokens stay where they are, so
    a stage that trains one style further (``data.style_repeats``) does not move the paraphrases of the others,
    which no training prompt holds in place (their decoder input is unchanged; only the decoder that reads them
    trains)."""
    image_log_every: int = 200
    frozen_cache_mb: float = 2048.0
    """Memory for outputs of frozen modules kept per pair (the teacher's triplanes of the edited and the
    input image, the editor's ``E_low`` / ``E_high`` features): computed at a pair's first step, reused
    after (:class:`~pe3d.systems.frozen_cache.FrozenOutputCache`); 0 computes them at every step."""

    def __post_init__(self) -> None:
        if self.num_views < 1 or self.render_resolution < 1:
            raise ValueError(f"system.num_views={self.num_views} and system.render_resolution={self.render_resolution}"
                             " must be >= 1")
        if self.teacher_refine_steps < 0:
            raise ValueError(f"system.teacher_refine_steps must be >= 0, got {self.teacher_refine_steps}")
        if self.teacher_store in ("True", "False"):  # YAML reads off / no / yes as booleans
            raise ValueError(f"system.teacher_store={self.teacher_store!r}: a folder, or none to keep the refined "
                             "teacher in memory only (off / no / yes are booleans to YAML)")
        if self.self_distill_weight < 0:
            raise ValueError(f"system.self_distill_weight={self.self_distill_weight}: must be >= 0 (0 turns it off)")
        if self.self_distill_exempt_styles and self.self_distill_weight == 0:
            raise ValueError(f"system.self_distill_exempt_styles={list(self.self_distill_exempt_styles)} has no effect "
                             "with system.self_distill_weight=0: give a weight, or leave the styles out")
        if self.view_bank < 0 or 0 < self.view_bank < self.num_views:
            raise ValueError(f"system.view_bank={self.view_bank}: 0 (fresh views at every step) or at least "
                             f"system.num_views={self.num_views} views per pair")


def prompts_from_batch(batch: dict) -> Prompts:
    """Per item: the reference image when ``has_reference`` is set, else the text prompt."""
    has_ref = batch.get("has_reference")
    if has_ref is None or not bool(has_ref.any()):
        return Prompts(texts=list(batch["prompt"]))
    texts = [None if has else text for text, has in zip(batch["prompt"], has_ref.tolist())]
    return Prompts(texts=texts if any(t is not None for t in texts) else None, images=batch["reference"], has_image=has_ref)


def _freeze(module: nn.Module) -> None:
    for param in module.parameters():
        param.requires_grad_(False)


class EditingSystem(L.LightningModule):
    """The shared training step; subclasses choose the trainable parameters."""

    def __init__(self, editor: EditorCore, teacher: PriorModel, cfg: EditSystemConfig) -> None:
        super().__init__()
        self.editor = editor
        # an editor in training reads its prompts as written, in validation and in-training evaluation too
        # (the reading of EditorCore.read_prompt is for the exported editor, see load_editor)
        self.editor.prompt_vocabulary = None
        self.teacher = teacher
        self.cfg = cfg
        self.objective = EditObjective(cfg.loss)
        self.frozen_cache = FrozenOutputCache(cfg.frozen_cache_mb)
        self.teacher_store = None
        if cfg.teacher_refine_steps > 0 and cfg.teacher_store not in ("", "none"):
            settings = teacher_refinement(cfg.teacher_refine_steps).fingerprint()
            self.teacher_store = RefinedTeacherStore(cfg.teacher_store, teacher_provenance(teacher, settings),
                                                     teacher_provenance(teacher, settings, store_format=None))
        self.view_bank = None
        if cfg.view_bank > 0:
            stride = DilatedRays.stride_for(editor.renderer, cfg.view_ray_stride)
            self.view_bank = ViewBank(cfg.view_bank, cfg.render_resolution, stride, cfg.view_yaw_std, cfg.view_pitch_std)
        # self-distillation: a frozen copy of the editor as it starts (made before any step changes it)
        self.initial_editor = copy.deepcopy(editor) if cfg.self_distill_weight > 0 else None
        _freeze(self.editor)
        _freeze(self.teacher)
        if self.initial_editor is not None:
            _freeze(self.initial_editor)
            self.initial_editor.eval()
        self.teacher.eval()
        for param in self.trainable_parameters():
            param.requires_grad_(True)

    def trainable_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters this system optimises (all others stay bit-identical): the subclass's
        :meth:`_chosen_parameters`, less ``E_p``'s with ``system.train_prompt_encoder=false``."""
        frozen = set() if self.cfg.train_prompt_encoder else {
            id(p) for encoder in self.editor.prompt_encoders() for p in encoder.parameters()}
        return (p for p in self._chosen_parameters() if id(p) not in frozen)

    def _chosen_parameters(self) -> Iterator[nn.Parameter]:
        """The parameters this kind of system trains."""
        raise NotImplementedError

    def _prompt_parameters(self) -> Iterator[nn.Parameter]:
        for encoder in self.editor.prompt_encoders():
            yield from encoder.trainable_parameters()

    def compute_losses(self, batch: dict) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Loss terms (``loss`` = total) and the renders for image logging."""
        size = self.cfg.render_resolution
        image, edited, label = batch["input_image"], batch["edited_image"], batch["label"]
        b = image.shape[0]
        keys = pair_keys(batch)
        prompts = prompts_from_batch(batch)
        planes = self._edit(self.editor, image, prompts, keys)
        input_rays = DilatedRays.sample_for(self.editor.renderer, size, self.cfg.input_ray_stride if self.training else 1)
        input_render = input_rays.render(self.editor.renderer, planes, label).image
        edited_small = input_rays.crop(F.interpolate(edited, size=(size, size), mode="area"))
        teacher_planes = views = teacher_views = geometry_views = None
        if self.objective.needs_teacher:
            n = self.cfg.num_views
            slots = None
            if self._uses_view_bank(keys):
                slots = self.view_bank.draw(keys, n)
                cams, rays = self.view_bank.select(keys, slots, image)
            else:
                cams = sample_camera_labels(b * n, yaw_std=self.cfg.view_yaw_std, pitch_std=self.cfg.view_pitch_std).to(image)
                rays = DilatedRays.sample_for(self.editor.renderer, size, self.cfg.view_ray_stride if self.training else 1)
            views = rays.render(self.editor.renderer, planes.repeat_interleave(n, 0), cams)
            with torch.no_grad():
                teacher_planes = self._teacher_planes("teacher_edited", edited, keys, label)
                teacher_views = self._teacher_views("teacher_edited_views", edited, teacher_planes, keys, cams, rays, slots)
                if self.cfg.loss.depth_source == "input" and self.cfg.loss.depth_3d > 0:
                    input_planes = self._teacher_planes("teacher_input", image, keys)
                    geometry_views = self._teacher_views("teacher_input_views", image, input_planes, keys, cams, rays, slots)
        terms = self.objective(input_render, edited_small, planes, teacher_planes, views, teacher_views, geometry_views)
        if self.initial_editor is not None:
            self._add_self_distillation(terms, planes, image, prompts, keys, batch.get("style"))
        images = {"target": edited_small[:, None], "pred": input_render[:, None]}
        if views is not None:
            if views.image.shape[-1] == size and input_render.shape[-1] == size:
                images["target"] = torch.cat([images["target"], teacher_views.image.reshape(b, n, 3, size, size)], 1)
                images["pred"] = torch.cat([images["pred"], views.image.reshape(b, n, 3, size, size)], 1)
        return terms, images

    def _add_self_distillation(self, terms: dict[str, Tensor], planes: Tensor, image: Tensor, prompts: Prompts, keys,
                               styles) -> None:
        """Adds ``self_distill`` (the L1 to the initial editor's triplanes on the items of styles not exempt) to
        ``terms`` and its weighted value to ``terms["loss"]``; a batch of exempt styles only adds 0."""
        exempt = set(self.cfg.self_distill_exempt_styles)
        names = [str(style).split(":")[0] for style in styles] if styles is not None else [""] * image.shape[0]
        held = torch.tensor([name not in exempt for name in names], device=planes.device)
        if not bool(held.any()):
            terms["self_distill"] = planes.new_zeros(())
            return
        with torch.no_grad():
            self.initial_editor.eval()
            initial = self._edit(self.initial_editor, image, prompts, keys)
        terms["self_distill"] = triplane_loss(planes[held], initial[held])
        terms["loss"] = terms["loss"] + self.cfg.self_distill_weight * terms["self_distill"]

    def _uses_view_bank(self, keys) -> bool:
        """Training with a view bank, pairs that name themselves and a frozen cache to keep the teacher's views."""
        return self.view_bank is not None and self.training and keys is not None and self.frozen_cache.max_bytes > 0

    def _teacher_views(self, name: str, images: Tensor, planes: Tensor, keys, cams: Tensor, rays: DilatedRays,
                       slots: Tensor | None):
        """The teacher's renders of ``planes`` (made from ``images``) at this step's ``L3d`` views: rendered now, or,
        with a view bank (``slots`` given), looked up in the frozen cache where the pair's views were rendered once."""
        if slots is None:
            return rays.render(self.teacher.renderer, planes.repeat_interleave(self.cfg.num_views, 0), cams)
        return self.view_bank.frozen_renders(self.frozen_cache, name, keys, images, planes, slots, self.teacher.renderer)

    def _teacher_planes(self, name: str, images: Tensor, keys, labels: Tensor | None = None) -> Tensor:
        """The frozen teacher's triplanes of ``images``, from the cache where this pair was seen before; with
        ``labels`` (the images' cameras) and ``teacher_refine_steps``, refined to the images there."""
        steps = self.cfg.teacher_refine_steps if labels is not None else 0

        def feed_forward(idx: Tensor) -> Tensor:
            return self.teacher(images[idx])

        def refinement(idx: Tensor, planes: Tensor) -> Tensor:
            return fit_detail_residual(self.teacher.render, planes, images[idx], labels[idx],
                                       teacher_refinement(steps), frozen=self.teacher)

        def compute(idx):
            planes = feed_forward(idx)
            return (planes + refinement(idx, planes) if steps else planes,)

        if steps and self.teacher_store is not None and keys is not None:
            return self.frozen_cache.get(name, keys, images, self._stored(feed_forward, refinement, keys, images, labels))[0]
        return self.frozen_cache.get(name, keys, images, compute)[0]

    def _stored(self, feed_forward, refinement, keys, images: Tensor, labels: Tensor):
        """The refined teacher's planes of batch indices: the feed-forward triplane (one teacher pass) plus the
        refinement's residual, read from the teacher store where a pair's is there (float16, which the store
        keeps), else fitted and written to it (and used as the store will give it back, so a run that writes
        and a run that reads see the same triplanes)."""
        store = self.teacher_store

        def stored_compute(idx: Tensor):
            # fingerprinted here, only for the items the memory cache did not hold, not at every step
            items = idx.tolist()
            fingerprints = torch.cat([stored_fingerprints(images[idx]), image_fingerprints(labels[idx])], 1)
            planes = feed_forward(idx)
            found = [store.load(keys[i], fp, planes[k]) for k, (i, fp) in enumerate(zip(items, fingerprints))]
            missing = [k for k, residual in enumerate(found) if residual is None]
            if missing:
                fitted = refinement(idx[missing], planes[missing]).detach()
                for residual, k in zip(fitted, missing):
                    found[k] = store.save(keys[items[k]], fingerprints[k], residual)
            return (planes + torch.stack([residual.to(planes.device, planes.dtype) for residual in found]),)

        return stored_compute

    def _edit(self, editor: EditorCore, image: Tensor, prompts: Prompts, keys) -> Tensor:
        """``editor``'s triplanes (the trained editor's, or its frozen initial copy's, which shares its frozen
        parts); ``E_low`` / ``E_high`` features (and a residual editor's base planes) come from the cache while
        they are frozen."""
        if not self._image_features_frozen():
            return editor(image, prompts)
        f_g, f_h = self.frozen_cache.get("editor_features", keys, image,
                                         lambda idx: self.editor.image_features(image[idx]))
        base = None
        if self.editor.base_decoder is not None:  # a residual editor's base is frozen too
            base = self.frozen_cache.get("editor_base_planes", keys, image,
                                         lambda idx: (self.editor.base_planes(f_g[idx], f_h[idx], image[idx]),))[0]
        return editor.edit_features(f_g, f_h, image, prompts, base=base)

    def _image_features_frozen(self) -> bool:
        branches = (self.editor.encoder.low, self.editor.encoder.high)
        return all(batch_independent(m) and not any(p.requires_grad for p in m.parameters()) for m in branches)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        self.teacher.eval()
        terms, images = self.compute_losses(batch)
        self.log_dict({f"train/{k}": v.detach() for k, v in terms.items()}, batch_size=batch["input_image"].shape[0])
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False, batch_size=batch["input_image"].shape[0])
        if self.cfg.image_log_every and self.global_step % self.cfg.image_log_every == 0:
            log_image_grid(self, "train/edits", batch["input_image"], images["target"], images["pred"])
        return terms["loss"]

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        terms, _ = self.compute_losses(batch)
        self.log_dict({f"val/{k}": v for k, v in terms.items()}, sync_dist=True, batch_size=batch["input_image"].shape[0])

    def configure_optimizers(self):
        return build_optimizer(self.cfg.optim, [p for p in self.parameters() if p.requires_grad], total_steps=trainer_max_steps(self))


class DistillSystem(EditingSystem):
    """Full distillation (paper Sec. 3.3 "Training"): trains ``E_p``, the cross-attention and ``E_t``."""

    def _chosen_parameters(self) -> Iterator[nn.Parameter]:
        yield from self._prompt_parameters()
        yield from self.editor.cross_attention.parameters()
        yield from self.editor.encoder.decoder.parameters()


class AdaptSystem(EditingSystem):
    """Norm-only adaptation (paper Sec. 3.3 "Customized Prompts Adaptation"): ``E_p`` + ``E_t``'s norms.

    ``decoder_lr_scale > 0`` adapts the renderer's decoder MLP too
    (:meth:`~pe3d.models.editor.EditorCore.decoder_adaptation_parameters`), at that multiple of the
    learning rate (a colour map the same at every 3D point; not in the paper)."""

    def __init__(self, editor: EditorCore, teacher: PriorModel, cfg: EditSystemConfig, decoder_lr_scale: float = 0.0) -> None:
        if decoder_lr_scale < 0:
            raise ValueError(f"decoder_lr_scale={decoder_lr_scale}: must be >= 0 (0 keeps the renderer's decoder frozen)")
        self.decoder_lr_scale = decoder_lr_scale
        super().__init__(editor, teacher, cfg)

    @property
    def adapter_kind(self) -> str:
        """The ``adapter_kind`` written into this adaptation's adapters: ``norm-only``, or ``norm-only+decoder``
        when the renderer's decoder adapts too."""
        return "norm-only+decoder" if self.decoder_lr_scale > 0 else "norm-only"

    def adapter_parameters(self) -> Iterator[nn.Parameter]:
        """What this adaptation's adapters carry: every adaptation parameter of the editor (one held frozen, e.g.
        ``E_p``'s mapper with ``system.train_prompt_encoder=false``, at the base editor's values, so every adapter of
        a base has the same tensors) and the renderer's decoder when it adapts."""
        yield from self.editor.adaptation_parameters()
        if self.decoder_lr_scale > 0:
            yield from self.editor.decoder_adaptation_parameters()

    def _chosen_parameters(self) -> Iterator[nn.Parameter]:
        return self.adapter_parameters()

    def configure_optimizers(self):
        if self.decoder_lr_scale <= 0:
            return super().configure_optimizers()
        decoder = list(self.editor.decoder_adaptation_parameters())
        ids = {id(p) for p in decoder}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest}, {"params": decoder, "lr": self.cfg.optim.lr * self.decoder_lr_scale}]
        return build_optimizer(self.cfg.optim, groups, total_steps=trainer_max_steps(self))
