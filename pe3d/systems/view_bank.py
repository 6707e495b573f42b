"""A fixed set of ``L3d`` views per training pair, so the frozen teacher renders each of them once.

``L3d`` compares the editor's renders with the frozen teacher's at a camera set ``C`` (paper Eq. 6).
Drawn afresh at every step, the teacher's renders must be recomputed at every step: half of the
renders of an adaptation step, and none of them trains anything. :class:`ViewBank` gives each pair
``size`` views (a camera pose drawn like the per-step ones and a dilated ray-patch offset) the first
time the pair is seen; each step then uses ``num_views`` of them per item, and the teacher's renders
at all of a pair's views are computed once and kept in the
:class:`~pe3d.systems.frozen_cache.FrozenOutputCache` (:meth:`ViewBank.frozen_renders`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import torch
from torch import Tensor

from pe3d.geometry import sample_camera_labels
from pe3d.systems.common import DilatedRays
from pe3d.systems.frozen_cache import FrozenOutputCache


@dataclass
class ViewRenders:
    """The fields of renders that ``L3d`` reads, each ``[N, C, h, w]``."""

    image: Tensor
    depth: Tensor
    weights: Tensor


class ViewBank:
    """Per pair key, ``size`` fixed views: camera labels ``[size, 25]`` and ray-patch offsets ``[size, 2]``.

    Args:
        size: views per pair (at least the views used per step).
        resolution, stride: the renders' side and ray-patch stride (:class:`~pe3d.systems.common.DilatedRays`;
            stride 1 = full views).
        yaw_std, pitch_std: spread of the poses (:func:`~pe3d.geometry.sample_camera_labels`).

    A pair's views are drawn from torch's global random state the first time its key is seen (a resumed
    run draws new ones, as it recomputes the frozen cache).
    """

    def __init__(self, size: int, resolution: int, stride: int, yaw_std: float, pitch_std: float) -> None:
        if size < 1:
            raise ValueError(f"view bank size must be >= 1, got {size}")
        self.size, self.resolution, self.stride = size, resolution, max(1, stride)
        self.yaw_std, self.pitch_std = yaw_std, pitch_std
        self._views: dict[Hashable, tuple[Tensor, Tensor]] = {}

    def views(self, key: Hashable) -> tuple[Tensor, Tensor]:
        """``(labels [size, 25], offsets [size, 2])`` of the pair ``key``."""
        if key not in self._views:
            labels = sample_camera_labels(self.size, yaw_std=self.yaw_std, pitch_std=self.pitch_std)
            self._views[key] = labels, torch.randint(self.stride, (self.size, 2))
        return self._views[key]

    def draw(self, keys: Sequence[Hashable], num_views: int) -> Tensor:
        """``num_views`` distinct view slots per item, ``[B, num_views]`` (long)."""
        if num_views > self.size:
            raise ValueError(f"{num_views} views per step from a bank of {self.size} per pair: raise view_bank")
        return torch.stack([torch.randperm(self.size)[:num_views] for _ in keys])

    def select(self, keys: Sequence[Hashable], slots: Tensor, like: Tensor) -> tuple[Tensor, DilatedRays]:
        """Camera labels ``[B*n, 25]`` (dtype / device of ``like``) and the rays of the views ``slots [B, n]``."""
        labels, offsets = [], []
        for key, item_slots in zip(keys, slots):
            item_labels, item_offsets = self.views(key)
            labels.append(item_labels[item_slots])
            offsets.append(item_offsets[item_slots])
        return torch.cat(labels).to(like), self._rays(torch.cat(offsets))

    def frozen_renders(self, cache: FrozenOutputCache, name: str, keys: Sequence[Hashable], images: Tensor,
                       planes: Tensor, slots: Tensor, renderer) -> ViewRenders:
        """A frozen ``renderer``'s views ``slots [B, n]`` of ``planes [B, ...]`` (made from ``images``): every view
        of a pair rendered the first time the pair is seen, kept in ``cache`` under ``name``, then looked up."""

        def render_all(idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            labels, offsets = zip(*(self.views(keys[i]) for i in idx.tolist()))
            rays = self._rays(torch.cat(offsets))
            out = rays.render(renderer, planes[idx].repeat_interleave(self.size, 0), torch.cat(labels).to(planes))
            per_pair = lambda v: v.reshape(len(idx), self.size, *v.shape[1:])  # noqa: E731
            return per_pair(out.image), per_pair(out.depth), per_pair(out.weights)

        image, depth, weights = cache.get(name, keys, images, render_all)
        rows = torch.arange(len(keys), device=slots.device)[:, None]
        pick = lambda v: v[rows, slots.to(v.device)].flatten(0, 1)  # noqa: E731
        return ViewRenders(pick(image), pick(depth), pick(weights))

    def _rays(self, offsets: Tensor) -> DilatedRays:
        if self.stride <= 1:
            return DilatedRays(self.resolution)
        return DilatedRays(self.resolution, self.stride, offsets=offsets)
