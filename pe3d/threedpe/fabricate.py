"""Seeded stand-in weights in the 3DPE / Live3D checkpoint layout (for tests and parity runs).

The real checkpoints are NVIDIA-licensed downloads we never ship, so tests fabricate files in
their exact layout: :func:`fabricate_state` fills a layout (key -> shape, e.g.
``tests/data/threedpe_keys.json``, recorded from their code) with deterministic random tensors
of sensible scale, and :func:`their_layout` derives the layout of a reduced-width variant from
our own model through :func:`pe3d.threedpe.keymap.their_key`. The same function fills their
modules in the parity tool, so both sides run on identical weights.
"""

from __future__ import annotations

import math
import zlib
from typing import Mapping, Sequence

import torch

from pe3d.models.prior_encoder import PriorEncoderConfig
from pe3d.threedpe.keymap import PARTS, their_key

RESAMPLE_FILTER = torch.outer(torch.tensor([1.0, 3.0, 3.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])) / 64.0
"""StyleGAN2's ``setup_filter([1, 3, 3, 1])`` (a fixed buffer, never random)."""


def _tensor(key: str, shape: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    shape = tuple(int(s) for s in shape)
    name = key.rsplit(".", 1)[-1]
    if name == "resample_filter":
        return RESAMPLE_FILTER.clone()
    noise = torch.randn(shape, generator=gen)
    if name == "noise_strength":
        return 0.1 * noise
    if name == "bias" or name in ("cls_token", "pos_embed", "noise_const"):
        return 0.05 * noise
    if len(shape) == 1:  # LayerNorm gains
        return 1.0 + 0.1 * noise
    if name == "const":
        return noise
    fan_in = math.prod(shape[1:])
    if key.startswith(("superresolution.", "decoder.net.")) or ".affine." in key:
        return noise  # equalised-lr layers store unit-variance weights and scale at run time
    return noise / math.sqrt(fan_in)


def fabricate_tensor(part: str, key: str, shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """One tensor of :func:`fabricate_state`: it depends only on ``(seed, part, key, shape)``, so any subset
    of a layout can be fabricated on its own."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(f"{part}:{key}".encode()))
    return _tensor(key, shape, gen)


def fabricate_state(layout: Mapping[str, Mapping[str, Sequence[int]]], seed: int = 0) -> dict[str, dict[str, torch.Tensor]]:
    """``{part: {key: tensor}}`` for a layout ``{part: {key: shape}}`` (see :func:`fabricate_tensor`)."""
    return {part: {key: fabricate_tensor(part, key, shape, seed) for key, shape in layout[part].items()} for part in layout}


def their_layout(state_dict: Mapping[str, torch.Tensor], cfg: PriorEncoderConfig) -> dict[str, dict[str, list[int]]]:
    """Their layout ``{part: {key: shape}}`` of one of our models (its state dict), via :func:`their_key`."""
    layout: dict[str, dict[str, list[int]]] = {part: {} for part in PARTS}
    for key, value in state_dict.items():
        part, theirs = their_key(key, cfg)
        layout[part][theirs] = list(value.shape)
    return layout
