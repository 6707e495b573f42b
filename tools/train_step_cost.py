"""Cost of one training step of ``fit adapt`` and ``fit distill`` with and without the per-pair cache of
frozen outputs (``system.frozen_cache_mb``), and with the teacher's ``L3d`` views cached too
(``system.view_bank``), timed side by side.

    python tools/train_step_cost.py [--repeats 8] [--batch 4]

Both systems start from the shipped editor and prior with the CPU recipes' settings (``fit adapt``'s and
``configs/distill/mini.yaml``'s losses: depth from the unedited input), on one batch of world pairs
(golden_statue's filter). Cached and uncached steps take turns (:func:`pe3d.evaluation.time_in_turns`), so a
changing load hits both alike; the cache is filled by the warm-up step, as by a pair's first step in training.
Also prints the loss of the first step with and without the cache (they must agree) and the cache's memory per
pair. The view bank (``--view-bank K``, default 16) draws other cameras, so its losses differ; its row is a
pair's steady state, after the warm-up step rendered the teacher at all K of its views.
"""

import argparse

import torch

from pe3d.config import configs_dir, load_structured
from pe3d.evaluation import time_interleaved
from pe3d.geometry import label_from_yaw_pitch
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig
from pe3d.systems.editing import AdaptSystem, DistillSystem
from pe3d.weights import shipped_path
from pe3d.world import WorldSplit, apply_style_filter, render_identities, sample_identity


def _batch(size: int) -> dict:
    identities = [sample_identity(0, i) for i in WorldSplit().train_indices(size)]
    render = render_identities(identities, label_from_yaw_pitch([0.0] * size, [0.0] * size), 64)
    return {"input_image": render.rgb, "edited_image": apply_style_filter("golden_statue", render.rgb, render.parts),
            "label": label_from_yaw_pitch([0.0] * size, [0.0] * size), "prompt": ["turn the person into a golden statue"] * size,
            "id": torch.arange(size), "style": ["golden_statue"] * size}


def _system_configs():
    adapt = load_structured(AdaptFitConfig, [], []).system
    adapt.optim.lr, adapt.loss.depth_source, adapt.loss.depth_3d = 6e-3, "input", 10.0  # golden_statue's adapt: settings
    distill = load_structured(DistillFitConfig, [configs_dir() / "distill" / "mini.yaml"], []).system
    return {"adapt": (AdaptSystem, adapt), "distill": (DistillSystem, distill)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--view-bank", type=int, default=16, help="views per pair of the third variant")
    args = parser.parse_args()
    batch = _batch(args.batch)
    for name, (kind, cfg) in _system_configs().items():
        steps, first_loss, caches = {}, {}, {}
        for label, cache_mb, bank in (("uncached", 0.0, 0), ("cached", 4096.0, 0), ("view bank", 4096.0, args.view_bank)):
            cfg.frozen_cache_mb, cfg.view_bank = cache_mb, bank
            system = kind(load_editor(shipped_path("editor_mini")), load_prior(shipped_path("prior_mini")), cfg)
            system.train()
            system.teacher.eval()
            optimizer = torch.optim.AdamW([p for p in system.parameters() if p.requires_grad], lr=cfg.optim.lr)
            caches[label] = system.frozen_cache

            def step(system=system, optimizer=optimizer, label=label):
                if label not in first_loss:
                    torch.manual_seed(0)  # the same cameras and ray offsets for both first steps
                loss = system.compute_losses(batch)[0]["loss"]
                first_loss.setdefault(label, loss.item())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            steps[label] = step
        timings = time_interleaved(steps, repeats=args.repeats, warmup=1)
        cache = caches["cached"]
        ratio = timings["uncached"].mean_ms / timings["cached"].mean_ms
        print(f"{name}: {timings['uncached'].mean_ms:.0f} ± {timings['uncached'].std_ms:.0f} ms/step uncached, "
              f"{timings['cached'].mean_ms:.0f} ± {timings['cached'].std_ms:.0f} ms cached: {ratio:.2f}x "
              f"(batch {args.batch}, {args.repeats} steps each; first-step loss {first_loss['uncached']:.5f} vs "
              f"{first_loss['cached']:.5f}; cache {cache.bytes / max(1, args.batch) / 2**20:.2f} MB per pair)")
        bank = timings["view bank"]
        print(f"{name}: {bank.mean_ms:.0f} ± {bank.std_ms:.0f} ms/step with the teacher's views cached too "
              f"(view_bank={args.view_bank}): {timings['cached'].mean_ms / bank.mean_ms:.2f}x the cached step, "
              f"{timings['uncached'].mean_ms / bank.mean_ms:.2f}x the uncached one "
              f"(cache {caches['view bank'].bytes / max(1, args.batch) / 2**20:.2f} MB per pair)")


if __name__ == "__main__":
    main()
