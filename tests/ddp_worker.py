"""Run by tests/test_ddp.py: a few distillation + adaptation steps under Lightning DDP on CPU (gloo).

Usage: python tests/ddp_worker.py OUT_DIR PAIRS_DIR
Each rank writes ``OUT_DIR/<system>-rank<r>.txt`` holding the hash of its trained weights.
"""

import sys
from pathlib import Path

import lightning as L
import torch

from pe3d.config import configs_dir
from pe3d.data.datamodule import PairDataModule
from pe3d.data.pairs import PairDataConfig
from pe3d.losses import EditLossConfig, ImageLossConfig
from pe3d.models.checkpoints import model_hash
from pe3d.models.editor import EditorCore, editor_config_from_yaml
from pe3d.models.prior import PriorModel
from pe3d.systems.editing import AdaptSystem, DistillSystem, EditSystemConfig
from pe3d.systems.runner import resolve_strategy


class WriteHash(L.Callback):
    def __init__(self, out: Path, name: str) -> None:
        self.out, self.name = out, name

    def on_train_end(self, trainer, pl_module) -> None:
        (self.out / f"{self.name}-rank{trainer.global_rank}.txt").write_text(
            f"{model_hash(pl_module.editor)} {trainer.world_size} {trainer.global_step}"
        )


def main(out: Path, pairs: Path) -> None:
    torch.set_num_threads(1)
    cfg = editor_config_from_yaml(
        configs_dir() / "model" / "mini.yaml",
        ["renderer.ray_march.depth_resolution=6", "renderer.ray_march.depth_resolution_importance=6"],
    )
    for name, system_cls in (("distill", DistillSystem), ("adapt", AdaptSystem)):
        torch.manual_seed(0)
        prior = PriorModel(cfg.prior)
        editor = EditorCore.from_prior(prior, cfg.cross_attention, cfg.prompt_encoder)
        system_cfg = EditSystemConfig(
            loss=EditLossConfig(image_3d=ImageLossConfig(perceptual="ssim", perceptual_weight=0.5)),
            num_views=1, render_resolution=8, image_log_every=0,
        )
        system_cfg.optim.lr = 1e-2
        system = system_cls(editor, prior, system_cfg)
        data = PairDataModule(PairDataConfig(dirs=[str(pairs)], batch_size=2, val_fraction=0.0))
        trainer = L.Trainer(
            accelerator="cpu", devices=2, strategy=resolve_strategy("ddp"), max_steps=3, logger=False,
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            callbacks=[WriteHash(out, name)],
        )
        trainer.fit(system, datamodule=data)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
