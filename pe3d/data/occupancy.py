"""The world's exact 3D shape as a training signal: signed distances at points of each training head's box.

The procedural world knows every head's signed distance field (:meth:`pe3d.world.field.HeadField.sdf`), so a
prior can be told directly where the head is in 3D, not only through the images its renders are compared
with. :func:`occupancy_samples` draws, per training identity of a view bank, points near the head's surface
(the bank's own depth maps give surface points, jittered by ``noise``) and points uniform in the triplane's box,
and stores their signed distance; ``pe3d fit prior`` with ``system.loss.occupancy > 0`` compares the field's
opacity at those points with the occupancy the distance implies (:func:`pe3d.losses.occupancy_loss`).
Computed once per bank and cached beside it (a few seconds per 100 identities).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm


@dataclass
class OccupancySamplesConfig:
    """How many signed-distance samples each training identity gets, and where.

    Attributes:
        points: samples per identity (0: none; the occupancy loss needs them).
        near_surface: share of them drawn near the surface (the rest uniform in the box).
        noise: standard deviation (world units) of the jitter of the near-surface samples (a plane cell of the mini
            prior is 0.0099).
        per_item: samples each training item draws from its identity's set, per step.
        seed: seed of the draws.
    """

    points: int = 0
    near_surface: float = 0.5
    noise: float = 0.01
    per_item: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        if self.points < 0 or self.per_item < 1:
            raise ValueError(f"occupancy.points must be >= 0 and occupancy.per_item >= 1, got {self.points}, {self.per_item}")
        if not 0.0 <= self.near_surface <= 1.0:
            raise ValueError(f"occupancy.near_surface must be in [0, 1], got {self.near_surface}")
        if self.noise < 0:
            raise ValueError(f"occupancy.noise must be >= 0, got {self.noise}")


def _identity_samples(bank: dict[str, Tensor], item: int, box_warp: float, cfg: OccupancySamplesConfig,
                      world_seed: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``points [P, 3]`` and their signed distances ``[P]`` for the bank's ``item``."""
    from pe3d.metrics.visibility import surface_points
    from pe3d.world import get_field, sample_identity

    half = 0.5 * box_warp
    near = round(cfg.points * cfg.near_surface)
    labels, depth = bank["labels"][item].float(), bank["depth"][item].float()
    surface = surface_points(labels, depth)[(bank["parts"][item] > 0).flatten(1)]  # foreground pixels of every view
    chosen = surface[torch.randint(0, max(surface.shape[0], 1), (near,), generator=generator)] if surface.shape[0] else surface[:0]
    chosen = chosen + cfg.noise * torch.randn(chosen.shape, generator=generator)
    chosen = chosen.clamp(-half, half)
    uniform = (torch.rand(cfg.points - chosen.shape[0], 3, generator=generator) * 2 - 1) * half
    points = torch.cat([chosen, uniform])
    field = get_field(sample_identity(world_seed, int(bank["index"][item])))
    return points, field.sdf(points)


def occupancy_samples(bank: dict[str, Tensor], box_warp: float, cfg: OccupancySamplesConfig, world_seed: int = 0,
                      progress: bool = True) -> dict[str, Tensor]:
    """``{"points": [N, P, 3], "sdf": [N, P]}`` (float16) for every identity of ``bank`` (a
    :func:`pe3d.data.world_views.load_or_render_bank` dict of world ``world_seed``) inside the cube of side ``box_warp``."""
    if cfg.points < 1:
        raise ValueError("occupancy.points must be >= 1 to draw samples")
    generator = torch.Generator().manual_seed(cfg.seed)
    points, sdf = [], []
    for item in tqdm(range(bank["index"].shape[0]), desc="occupancy samples", disable=not progress, unit="id"):
        p, d = _identity_samples(bank, item, box_warp, cfg, world_seed, generator)
        points.append(p.half())
        sdf.append(d.half())
    return {"points": torch.stack(points), "sdf": torch.stack(sdf)}


def load_or_build_occupancy(bank: dict[str, Tensor], box_warp: float, cfg: OccupancySamplesConfig, world_seed: int = 0,
                            cache_dir: Path | None = None, progress: bool = True) -> dict[str, Tensor]:
    """Cached :func:`occupancy_samples`; the key hashes the settings, the box, the bank's identities and
    cameras, and the world's source."""
    from pe3d.data.world_views import default_cache_dir, load_or_build_cached, world_source_hash

    digest = hashlib.sha256(bank["index"].numpy().tobytes() + bank["labels"].numpy().tobytes()).hexdigest()[:16]
    key_src = json.dumps({**asdict(cfg), "box_warp": box_warp, "world_seed": world_seed, "bank": digest,
                          "world_source": world_source_hash()}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / "world" / f"occupancy-{key}.safetensors"
    return load_or_build_cached(path, lambda: occupancy_samples(bank, box_warp, cfg, world_seed, progress), key_src)


__all__ = ["OccupancySamplesConfig", "load_or_build_occupancy", "occupancy_samples"]
