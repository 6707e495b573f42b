"""Random part recolouring: widens the world's appearances for prior training.

The world's identities have natural skin, hair and clothes colours only, so a prior trained on
them pulls an edited input (a green zombie face, blue hair) back towards natural colours: the
two-stage teacher then loses most of the edit before the editor ever sees it. Recolouring parts
with random colours, with the same colours in every view of an identity, teaches the prior to
reconstruct whatever colours its input has. It draws from no style filter, so the styles stay
unseen by the prior.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pe3d.world.field import Part
from pe3d.world.filters import luma, mask_of_parts

PART_GROUPS: tuple[tuple[Part, ...], ...] = (
    (Part.SKIN,),
    (Part.HAIR, Part.BROWS, Part.BEARD),
    (Part.CLOTHES,),
    (Part.LIPS,),
    (Part.EYES,),
    (Part.GLASSES,),
)
"""Parts that are recoloured together (hair, brows and beard share one colour)."""


def random_part_colours(generator: torch.Generator | None = None, probability: float = 0.5) -> list[Tensor | None]:
    """One draw per :data:`PART_GROUPS` entry: a colour ``[3]`` in [0, 1] with ``probability``, else ``None`` (kept)."""
    colours: list[Tensor | None] = []
    for _ in PART_GROUPS:
        keep = float(torch.rand((), generator=generator)) >= probability
        colour = torch.rand(3, generator=generator)
        colours.append(None if keep else colour)
    return colours


def recolour_parts(rgb: Tensor, parts: Tensor, colours: list[Tensor | None]) -> Tensor:
    """``rgb [K, 3, H, W]`` with each part group of ``parts [K, H, W]`` recoloured to its colour.

    The new colour keeps the shading: ``colour * (0.25 + 0.9 * luma)``, clamped to [0, 1]. Groups
    whose colour is ``None`` and the background are unchanged. The same ``colours`` applied to
    every view of an identity give a consistent recoloured identity.
    """
    if len(colours) != len(PART_GROUPS):
        raise ValueError(f"need {len(PART_GROUPS)} colours (one per part group), got {len(colours)}")
    shade = 0.25 + 0.9 * luma(rgb)
    out = rgb
    for group, colour in zip(PART_GROUPS, colours):
        if colour is None:
            continue
        new = (colour.to(rgb).view(1, 3, 1, 1) * shade).clamp(0.0, 1.0)
        out = torch.where(mask_of_parts(parts, *group), new, out)
    return out
