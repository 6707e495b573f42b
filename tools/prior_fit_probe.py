"""Can the prior's encoder fit a few held-out input views when trained on nothing else? (a capacity probe)

    python tools/prior_fit_probe.py [--what encoder|planes] [--steps 200] [--identities 8] [--lr 1e-3]
                                    [--weights FILE] [model overrides, e.g. encoder.t_refine_blocks=2 ...]

Starts from the shipped prior (or ``--weights``), freezes its renderer, and trains either the whole
encoder (``--what encoder``) or one free triplane per identity (``--what planes``, the representation's
ceiling at this view) to reproduce the input view of the first ``--identities`` held-out world
identities, 512 random rays per image per step (MSE). Prints the full-render PSNR at the input view
every 100 steps, on the true outline's one-pixel ring and the share of pixels its outline draws too wide / too narrow
(:mod:`pe3d.metrics.silhouette`). An encoder that climbs here but not when trained on the whole world is short of
capacity for the world, not unable to represent a sharp input view. Model overrides (``key=value``)
are applied to the loaded prior; new tensors (e.g. ``encoder.t_refine_blocks``) start as the identity.
"""

import argparse
import time

import torch

from pe3d.data.world_views import WorldViewDataset, load_or_render_bank
from pe3d.metrics.silhouette import outline_errors, split_ring_psnr
from pe3d.models.prior import load_prior
from pe3d.recipes.prior import load_prior_fit_config, with_model_overrides
from pe3d.weights import resolve_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=["encoder", "planes"], default="encoder")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 (encoder), 1e-2 (planes)")
    parser.add_argument("--rays", type=int, default=512)
    parser.add_argument("--weights", default="")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.manual_seed(0)
    data_cfg = load_prior_fit_config(None, []).val_data
    dataset = WorldViewDataset(load_or_render_bank(data_cfg), 1, data_cfg.resolution, random_views=False)
    items = [dataset[i] for i in range(min(args.identities, len(dataset)))]
    images = torch.stack([item["input_image"] for item in items])
    labels = torch.stack([item["input_label"] for item in items])
    targets = torch.stack([item["target_image"][0] for item in items])  # the input view itself
    masks = torch.stack([item["target_mask"][0] for item in items]) > 0.5
    model = with_model_overrides(load_prior(resolve_weights(args.weights, "prior_mini")), args.overrides, allow_new=True)
    model.renderer.requires_grad_(False)
    if args.what == "planes":
        with torch.no_grad():
            planes = model(images).clone()
        planes.requires_grad_(True)
        params, lr = [planes], args.lr or 1e-2
    else:
        params, lr = list(model.encoder.parameters()), args.lr or 1e-3
    optimizer = torch.optim.Adam(params, lr=lr)
    size = targets.shape[-1]
    started = time.perf_counter()
    for step in range(args.steps + 1):
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                full = model.render(planes if args.what == "planes" else model(images), labels, resolution=size)
            render = full.image
            psnr = -10 * torch.log10((render.clamp(0, 1) - targets).square().mean())
            ring = split_ring_psnr(render, targets, masks).ring_psnr
            outline = outline_errors(full.weights, masks)
            print(f"step {step:4d}  input-view PSNR {psnr.item():.2f} dB, on the outline's ring {ring:.2f} dB, outline too wide "
                  f"{100 * outline.too_wide:.2f} % / too narrow {100 * outline.too_narrow:.2f} %  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
        if step == args.steps:
            break
        rays = torch.randint(0, size * size, (len(items), args.rays))
        render = model.render(planes if args.what == "planes" else model(images), labels, resolution=size, ray_indices=rays)
        target = targets.flatten(2).gather(2, rays[:, None].expand(-1, 3, -1))
        loss = (render.image - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    main()
