"""``PriorSystem``: trains the prior encoder from multi-view supervision (Live3D's recipe).

One input view goes in; the predicted triplane is rendered at several cameras of the
same identity and compared with their ground truth (image L2 + perceptual term, depth
L1 on the foreground, opacity against the mask, triplane L1 when a teacher
triplane is in the batch, and optionally the opacity of the field's own empty space,
``loss.empty_space``, and the field's opacity at the world's signed-distance samples, ``loss.occupancy``,
in training). The renderer is trained with the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
from torch import Tensor

from pe3d.losses import (ImageLoss, ReconstructionLossConfig, depth_loss, empty_space_loss, occupancy_loss, opacity_loss,
                         triplane_loss)
from pe3d.models.prior import PriorModel
from pe3d.systems.common import DilatedRays, OptimConfig, build_optimizer, log_image_grid, trainer_max_steps


@dataclass
class PriorSystemConfig:
    """Optimisation and loss settings of prior training."""

    loss: ReconstructionLossConfig = field(default_factory=ReconstructionLossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    image_log_every: int = 200
    ray_stride: int = 1
    """Training renders every ``ray_stride``-th ray in each direction, from a random offset
    (a dilated patch covering the whole view): ``ray_stride**2`` times cheaper per step.
    Validation always renders full images."""
    lift_lr_scale: float = 1.0
    """Learning-rate multiplier of the encoder's depth lift (``encoder.t_depth_lift``), so that a lift grown onto a
    trained encoder, whose zero-initialised output passes small gradients at first, catches up with it."""

    plane_bias_lr_scale: float = 1.0
    """Learning-rate multiplier of the encoder's learned plane offset (``encoder.t_plane_bias``): AdamW moves each
    cell by about the rate a step, small against plane features of size ~5, so a grown offset needs a larger rate."""

    def __post_init__(self) -> None:
        for name in ("lift_lr_scale", "plane_bias_lr_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"system.{name} must be > 0, got {getattr(self, name)}")


class PriorSystem(L.LightningModule):
    """Lightning wrapper around a :class:`PriorModel`; batches come from ``WorldViewDataset`` (the world)
    or ``EG3DTeacherDataset`` (an EG3D teacher, which also provides ``teacher_planes``)."""

    def __init__(self, model: PriorModel, cfg: PriorSystemConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.image_loss = ImageLoss(cfg.loss.image)

    def compute_losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Loss terms (key ``loss`` = weighted total) and the renders, for one batch."""
        planes = self.model(batch["input_image"])
        target = batch["target_image"]  # [B,K,3,r,r]
        b, k = target.shape[:2]
        labels = batch["target_label"].reshape(b * k, 25)
        size, stride = target.shape[-1], self.cfg.ray_stride if self.training else 1
        flat = lambda x: x.reshape(b * k, *x.shape[2:])  # noqa: E731
        rays = DilatedRays.sample(size, stride)
        out = rays.render(self.model.renderer, planes.repeat_interleave(k, dim=0), labels)
        crop = rays.crop
        target = crop(target)
        mask = crop(flat(batch["target_mask"]))
        terms = {f"image_{name}": value for name, value in self.image_loss(out.image, flat(target)).items()}
        loss = terms["image_total"]
        if self.cfg.loss.depth > 0:
            terms["depth"] = depth_loss(out.depth, crop(flat(batch["target_depth"])), mask)
            loss = loss + self.cfg.loss.depth * terms["depth"]
        if self.cfg.loss.opacity > 0:
            terms["opacity"] = opacity_loss(out.weights, mask)
            loss = loss + self.cfg.loss.opacity * terms["opacity"]
        if self.cfg.loss.empty_space > 0:
            terms["empty_space"] = empty_space_loss(self.model.renderer, planes, self.cfg.loss.empty_space_points)
            loss = loss + self.cfg.loss.empty_space * terms["empty_space"]
        if self.cfg.loss.occupancy > 0 and ("occupancy_points" in batch or self.training):
            if "occupancy_points" not in batch:
                raise ValueError("system.loss.occupancy > 0 needs the world's signed-distance samples: set occupancy.points")
            terms["occupancy"] = occupancy_loss(self.model.renderer, planes, batch["occupancy_points"], batch["occupancy_sdf"])
            loss = loss + self.cfg.loss.occupancy * terms["occupancy"]
        if self.cfg.loss.triplane > 0 and "teacher_planes" in batch:
            terms["triplane"] = triplane_loss(planes, batch["teacher_planes"])
            loss = loss + self.cfg.loss.triplane * terms["triplane"]
        terms["loss"] = loss
        return terms, {"pred": out.image.reshape(b, k, *out.image.shape[1:]), "target": target}

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        terms, images = self.compute_losses(batch)
        self.log_dict({f"train/{key}": value.detach() for key, value in terms.items()}, prog_bar=False)
        self.log("loss", terms["loss"].detach(), prog_bar=True, logger=False)
        if self.cfg.image_log_every and self.global_step % self.cfg.image_log_every == 0:
            log_image_grid(self, "train/views", batch["input_image"], images["target"], images["pred"])
        return terms["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        terms, images = self.compute_losses(batch)
        self.log_dict({f"val/{key}": value for key, value in terms.items()}, sync_dist=True)
        if batch_idx == 0:
            log_image_grid(self, "val/views", batch["input_image"], images["target"], images["pred"])

    def configure_optimizers(self):
        return build_optimizer(self.cfg.optim, self.parameter_groups(), total_steps=trainer_max_steps(self))

    def parameter_groups(self) -> list[dict]:
        """The trainable parameters as AdamW groups: the depth lift's at ``lift_lr_scale`` times the rate, the plane
        offset's at ``plane_bias_lr_scale`` times it, the rest at it."""
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        encoder = self.model.encoder
        scaled = [(self.cfg.lift_lr_scale, {id(p) for p in encoder.lift_parameters()}),
                  (self.cfg.plane_bias_lr_scale, {id(p) for p in encoder.plane_bias_parameters()})]
        scaled = [(scale, ids) for scale, ids in scaled if scale != 1.0 and ids]
        special = set().union(*(ids for _, ids in scaled))
        groups = [{"params": [p for p in trainable if id(p) not in special]}]
        groups += [{"params": [p for p in trainable if id(p) in ids], "lr": self.cfg.optim.lr * scale} for scale, ids in scaled]
        return [g for g in groups if g["params"]]
