"""Multi-view renders of world identities, cached on disk, for prior training and evaluation.

A :class:`WorldViewBank` renders ``identities x views`` once (progress bar), stores
them as one safetensors file in a cache folder keyed by every setting, and serves
training samples: one input view plus ``num_targets`` supervision views of the same
identity.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pe3d.data.backgrounds import WallGeometry, WallTexture, wall_background
from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import quantize_uint8
from pe3d.io import load_tensors, save_tensors
from pe3d.world.appearance import random_part_colours, recolour_parts


@dataclass
class WorldViewsConfig:
    """Which identities and views to render.

    ``split``: ``train`` or ``heldout``; ``count`` identities from that split; ``views``
    random cameras each (yaw/pitch Gaussian, clamped), the first always frontal-ish.
    """

    split: str = "train"
    count: int = 512
    views: int = 6
    resolution: int = 64
    seed: int = 0
    yaw_std: float = 0.35
    pitch_std: float = 0.15
    yaw_limit: float = 0.7
    pitch_limit: float = 0.35
    supersample: int = 2


def default_cache_dir() -> Path:
    """``$PE3D_CACHE`` or ``~/.cache/pe3d``."""
    import os

    return Path(os.environ.get("PE3D_CACHE", Path.home() / ".cache" / "pe3d")).expanduser()


def sample_view_angles(cfg: WorldViewsConfig, identity_index: int) -> tuple[Tensor, Tensor]:
    """Deterministic yaw/pitch ``[views]`` for one identity (view 0 is near-frontal)."""
    gen = torch.Generator().manual_seed(cfg.seed * 7_919 + identity_index)
    yaw = (torch.randn(cfg.views, generator=gen) * cfg.yaw_std).clamp(-cfg.yaw_limit, cfg.yaw_limit)
    pitch = (torch.randn(cfg.views, generator=gen) * cfg.pitch_std).clamp(-cfg.pitch_limit, cfg.pitch_limit)
    yaw[0] = yaw[0] * 0.3
    pitch[0] = pitch[0] * 0.3
    return yaw, pitch


def _render_identity(cfg: WorldViewsConfig, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One identity's ``cfg.views`` views: ``rgb uint8``, ``depth f16``, ``parts uint8``, ``labels f32``."""
    from pe3d.world import render_identities, sample_identity

    yaw, pitch = sample_view_angles(cfg, index)
    label = label_from_yaw_pitch(yaw, pitch)
    identity = sample_identity(cfg.seed, index)
    out = render_identities([identity] * cfg.views, label, cfg.resolution, supersample=cfg.supersample)
    return quantize_uint8(out.rgb), out.depth.to(torch.float16), out.parts.to(torch.uint8), label


def _render_chunk(cfg: WorldViewsConfig, indices: list[int]) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
    """Worker of :func:`render_bank`: one thread, a run of identities in order."""
    torch.set_num_threads(1)
    return [_render_identity(cfg, index) for index in indices]


def render_bank(cfg: WorldViewsConfig, progress: bool = True, workers: int = 0) -> dict[str, Tensor]:
    """Render every (identity, view): ``rgb uint8 [N,V,3,R,R]``, ``depth f16 [N,V,1,R,R]``,
    ``parts uint8 [N,V,R,R]``, ``labels f32 [N,V,25]``, ``index i64 [N]``.

    ``workers > 1`` renders runs of identities in that many forked processes of one thread each
    (for machines with many cores); every identity is rendered alone either way, so the bank
    is the same."""
    from pe3d.world import WorldSplit

    indices = WorldSplit().indices(cfg.split, cfg.count)
    desc = f"rendering world ({cfg.split})"
    if workers > 1 and len(indices) > 1:
        import multiprocessing

        chunk = max(1, min(32, len(indices) // (workers * 4)))
        runs = [indices[i:i + chunk] for i in range(0, len(indices), chunk)]
        with multiprocessing.get_context("fork").Pool(workers) as pool, \
                tqdm(total=len(indices), desc=desc, disable=not progress, unit="id") as bar:
            views = []
            for rendered in pool.imap(functools.partial(_render_chunk, cfg), runs):
                views.extend(rendered)
                bar.update(len(rendered))
    else:
        views = [_render_identity(cfg, index) for index in tqdm(indices, desc=desc, disable=not progress, unit="id")]
    rgb, depth, parts, labels = zip(*views)
    return {
        "rgb": torch.stack(rgb),
        "depth": torch.stack(depth),
        "parts": torch.stack(parts),
        "labels": torch.stack(labels),
        "index": torch.tensor(indices, dtype=torch.int64),
    }


def world_source_hash() -> str:
    """Hash of the world's source files: a cached bank is re-rendered whenever the world changes."""
    import pe3d.world

    digest = hashlib.sha256()
    for path in sorted(Path(pe3d.world.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def load_or_render_bank(cfg: WorldViewsConfig, cache_dir: Path | None = None, progress: bool = True,
                        workers: int = 0) -> dict[str, Tensor]:
    """Cached :func:`render_bank` (``workers`` processes when it renders); the cache key hashes every
    setting and the world's source."""
    key_src = json.dumps({**asdict(cfg), "world_source": world_source_hash()}, sort_keys=True)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    path = (cache_dir or default_cache_dir()) / "world" / f"views-{cfg.split}-{key}.safetensors"
    return load_or_build_cached(path, lambda: render_bank(cfg, progress=progress, workers=workers), key_src)


def load_or_build_cached(path: Path, build: Callable[[], dict[str, Tensor]], config: str) -> dict[str, Tensor]:
    """The tensors cached at ``path``, or ``build()``'s, written there (atomically, with ``config`` as metadata)
    first. A corrupt cache file is rebuilt: it holds nothing that cannot be recomputed."""
    if path.is_file():
        try:
            return load_tensors(path)[0]
        except (ValueError, OSError):
            path.unlink()
    tensors = build()
    save_tensors(path, tensors, {"config": config})
    return tensors


def random_background_colour(generator: torch.Generator | None = None) -> Tensor:
    """A random flat background colour ``[3, 1, 1]`` in [0, 1] (uniform per channel)."""
    return torch.rand(3, 1, 1, generator=generator)


class WorldViewDataset(Dataset):
    """Training samples from a view bank.

    Each item is one identity: an input view (``input_image [3,R,R]`` float in [0,1],
    ``input_label [25]``) and ``num_targets`` views (``target_image [K,3,r,r]``,
    ``target_depth [K,1,r,r]``, ``target_mask [K,1,r,r]``, ``target_label [K,25]``)
    at ``target_resolution`` (area-downsampled). The input view is always one of the
    targets, so the input camera is supervised too.

    With ``background_probability > 0`` that share of items has the world's white background
    replaced by one random flat colour in every view (input and targets), so a prior whose
    renderer reads its background from the triplane learns to carry the input's background
    into 3D. Exact for banks rendered without supersampling (hard masks). With
    ``background_texture > 0`` that share of the replaced backgrounds is a random textured wall
    (:mod:`pe3d.data.backgrounds`) seen from each view's camera instead of a flat colour; it
    needs the model's ``wall`` geometry (the triplane box and the ray end read as background).
    With ``recolour_probability > 0`` that share of items has random parts (skin, hair, clothes,
    ...) recoloured with random colours, the same in every view (:mod:`pe3d.world.appearance`).
    With ``frontal_input_probability > 0`` that share of items takes the bank's near-frontal view 0 as
    the input (the other targets still drawn at random), as held-out evaluation and most photos do.
    With ``occupancy`` (:func:`pe3d.data.occupancy.load_or_build_occupancy` of the same bank), each item also
    holds ``occupancy_per_item`` of its identity's signed-distance samples (``occupancy_points [P, 3]``,
    ``occupancy_sdf [P]``), drawn at random.
    """

    def __init__(
        self,
        bank: dict[str, Tensor],
        num_targets: int = 3,
        target_resolution: int | None = None,
        random_views: bool = True,
        background_probability: float = 0.0,
        background_texture: float = 0.0,
        wall: WallGeometry | None = None,
        recolour_probability: float = 0.0,
        frontal_input_probability: float = 0.0,
        occupancy: dict[str, Tensor] | None = None,
        occupancy_per_item: int = 1024,
    ) -> None:
        self.bank = bank
        self.views = bank["rgb"].shape[1]
        if not 1 <= num_targets <= self.views:
            raise ValueError(f"num_targets must be in [1, {self.views}], got {num_targets}")
        if not 0.0 <= background_probability <= 1.0:
            raise ValueError(f"background_probability must be in [0, 1], got {background_probability}")
        if not 0.0 <= background_texture <= 1.0:
            raise ValueError(f"background_texture must be in [0, 1], got {background_texture}")
        if not 0.0 <= recolour_probability <= 1.0:
            raise ValueError(f"recolour_probability must be in [0, 1], got {recolour_probability}")
        if not 0.0 <= frontal_input_probability <= 1.0:
            raise ValueError(f"frontal_input_probability must be in [0, 1], got {frontal_input_probability}")
        if background_texture > 0 and wall is None:
            raise ValueError("background_texture > 0 needs the wall geometry (box_warp, ray_end) of the model")
        self.num_targets = num_targets
        self.target_resolution = target_resolution or bank["rgb"].shape[-1]
        self.random_views = random_views
        self.background_probability = background_probability
        self.background_texture = background_texture
        self.wall = wall
        self.recolour_probability = recolour_probability
        self.frontal_input_probability = frontal_input_probability
        if occupancy is not None and occupancy["points"].shape[0] != bank["rgb"].shape[0]:
            raise ValueError(f"occupancy samples hold {occupancy['points'].shape[0]} identities, the bank {bank['rgb'].shape[0]}")
        self.occupancy = occupancy
        self.occupancy_per_item = occupancy_per_item

    def __len__(self) -> int:
        return self.bank["rgb"].shape[0]

    def _choose_views(self, item: int) -> list[int]:
        if not self.random_views:
            return list(range(self.num_targets))
        if self.frontal_input_probability > 0 and float(torch.rand(())) < self.frontal_input_probability:
            return [0] + (torch.randperm(self.views - 1) + 1)[: self.num_targets - 1].tolist()
        return torch.randperm(self.views)[: self.num_targets].tolist()

    def _background(self, labels: Tensor, resolution: int) -> Tensor:
        """A flat colour ``[3, 1, 1]`` or, with probability ``background_texture``, a textured
        wall seen from each of the views ``labels [K, 25]``: ``[K, 3, R, R]``."""
        if self.background_texture > 0 and float(torch.rand(())) < self.background_texture:
            assert self.wall is not None  # checked in __init__
            return wall_background(labels.float(), resolution, self.wall, WallTexture.random())
        return random_background_colour()

    def __getitem__(self, item: int) -> dict[str, Tensor]:
        views = self._choose_views(item)
        rgb = self.bank["rgb"][item, views].float() / 255.0
        depth = self.bank["depth"][item, views].float()
        parts = self.bank["parts"][item, views]
        mask = (parts > 0).float()[:, None]
        if self.recolour_probability > 0 and float(torch.rand(())) < self.recolour_probability:
            rgb = recolour_parts(rgb, parts, random_part_colours())
        if self.background_probability > 0 and float(torch.rand(())) < self.background_probability:
            rgb = rgb * mask + self._background(self.bank["labels"][item, views], rgb.shape[-1]) * (1.0 - mask)
        sample = {
            "input_image": rgb[0],
            "input_label": self.bank["labels"][item, views[0]],
            "target_label": self.bank["labels"][item, views],
            "identity": self.bank["index"][item],
        }
        size = self.target_resolution
        if size != rgb.shape[-1]:
            rgb = F.interpolate(rgb, size=(size, size), mode="area")
            depth_sum = F.interpolate(depth * mask, size=(size, size), mode="area")
            mask = F.interpolate(mask, size=(size, size), mode="area")
            depth = depth_sum / mask.clamp_min(1e-6)
            mask = (mask > 0.5).float()
            depth = depth * mask
        sample.update(target_image=rgb, target_depth=depth, target_mask=mask)
        if self.occupancy is not None:
            chosen = torch.randint(0, self.occupancy["points"].shape[1], (self.occupancy_per_item,))
            sample.update(occupancy_points=self.occupancy["points"][item, chosen].float(),
                          occupancy_sdf=self.occupancy["sdf"][item, chosen].float())
        return sample
