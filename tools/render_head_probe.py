"""Probe (2026-12-07, not adopted): a small 2D CNN on the frozen prior's rendered feature image, EG3D's "neural
rendering" head kept at 64², trained to map each render to the world's ground truth. Does it sharpen the prior?

    PE3D_CACHE=... python tools/render_head_probe.py [--identities 256] [--steps 1500] [--walls 0.5]

Renders the shipped prior's reconstruction of the first ``--identities`` training identities (input: the bank's
view 0, as ``pe3d fit prior``'s bank: ``configs/prior/mini.yaml``'s 1,024 x 6 views) at all 6 of their views,
trains a 4-layer, 32-wide convolutional head (features + opacity in, an RGB residual out, last layer zero so it
starts as the identity; Adam 1e-3, cosine, batch 16) on those renders, then scores the held-out set of
``pe3d eval prior --count 8`` before and after the head: PSNR, and PSNR on the true foreground and background.
By default the head sees the world's white background only, so what it gains on the background is the world's wall
colour learned in 2D, not 3D (a recoloured wall would be painted white). ``--walls P`` gives that share of the training
identities a random flat background colour (input and every view, as ``pe3d fit prior``'s
``background_probability``), and the held-out set is scored twice: on the white wall and on a green one
(:data:`GREEN`, input and targets).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from pe3d.data.world_views import WorldViewsConfig, load_or_render_bank
from pe3d.evaluation.world import WorldEvalConfig, build_world_eval_set, render_views
from pe3d.images import resize_images
from pe3d.metrics.ground_truth import psnr
from pe3d.metrics.visibility import masked_psnr
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights

GREEN = (0.30, 0.62, 0.42)
"""The coloured wall of the second held-out scoring (``--walls``)."""


def on_wall(rgb: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """``rgb [..., 3, R, R]`` with its background (``mask [..., 1, R, R]`` = 0) replaced by ``colour [..., 3, 1, 1]``."""
    return rgb * mask + colour * (1 - mask)


class RenderHead(nn.Module):
    """``depth`` 3x3 convolutions on the feature image and opacity; adds an RGB residual to the rendered RGB."""

    def __init__(self, in_channels: int, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2)]
        self.body, self.out = nn.Sequential(*layers), nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, F, R, R]`` features (RGB first) -> ``[B, 3, R, R]``."""
        return features[:, :3] + self.out(self.body(features))


def main() -> None:
    """Train the head and print the scores before / after it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="", help="prior .safetensors (default: the shipped mini prior)")
    parser.add_argument("--identities", type=int, default=256)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--walls", type=float, default=0.0, help="share of training identities on a random flat wall")
    args = parser.parse_args()
    torch.manual_seed(0)
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    bank = load_or_render_bank(WorldViewsConfig(split="train", count=1024, views=6, resolution=64, supersample=1))
    rgb = bank["rgb"][: args.identities].float() / 255.0
    labels = bank["labels"][: args.identities]
    if args.walls > 0:
        mask = (bank["parts"][: args.identities] > 0).float()[:, :, None]
        walled = torch.rand(rgb.shape[0]) < args.walls
        colours = torch.rand(rgb.shape[0], 1, 3, 1, 1)
        rgb = torch.where(walled[:, None, None, None, None], on_wall(rgb, mask, colours), rgb)
    inputs, targets = [], []
    with torch.no_grad():
        for i in range(0, rgb.shape[0], 16):
            planes = prior(rgb[i : i + 16, 0])
            for v in range(rgb.shape[1]):
                out = prior.render(planes, labels[i : i + 16, v], resolution=64)
                inputs.append(torch.cat([out.features, out.weights], 1).half())
                targets.append(rgb[i : i + 16, v])
    x, y = torch.cat(inputs), torch.cat(targets)
    head = RenderHead(x.shape[1])
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    start = time.time()
    for step in range(args.steps):
        idx = torch.randint(0, x.shape[0], (16,))
        loss = F.mse_loss(head(x[idx].float()), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    print(f"{x.shape[0]} renders, {args.steps} steps in {(time.time() - start) / 60:.1f} min\n")
    data = build_world_eval_set(WorldEvalConfig(identities=8), styles=[])
    walls = {"white wall": None} | ({"green wall": torch.tensor(GREEN).view(1, 3, 1, 1)} if args.walls > 0 else {})
    for wall, colour in walls.items():
        views = data.truth.views
        if colour is not None:  # the held-out inputs and targets on the green wall
            views = {name: replace(v, image=on_wall(v.image, v.mask.float(), colour)) for name, v in views.items()}
        inputs = views["input"].image if colour is not None else data.rgb
        print(f"\n{wall}\n\n| view | PSNR prior -> + head | foreground | background |\n|---|---|---|---|")
        with torch.no_grad():
            planes = prior(resize_images(inputs, prior.cfg.encoder.image_size))
            renders = render_views(prior.render, planes, views, data.plan.scored, 64)
            for name in data.plan.scored:
                truth, render = views[name], renders[name]
                refined = head(torch.cat([render.features, render.weights], 1))
                cells = [f"{float(psnr(render.image, truth.image).mean()):.2f} -> {float(psnr(refined, truth.image).mean()):.2f}"]
                for mask in (truth.mask, ~truth.mask):
                    before = float(masked_psnr(render.image, truth.image, mask).nanmean())
                    cells.append(f"{before:.2f} -> {float(masked_psnr(refined, truth.image, mask).nanmean()):.2f}")
                print(f"| {name} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
