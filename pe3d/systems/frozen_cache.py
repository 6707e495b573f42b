"""Outputs of frozen modules, computed once per training pair and reused at every later step.

Distillation and adaptation run frozen networks on each pair at every step: the teacher on the
edited image (its triplane ``T_e``), the teacher on the unedited input (when ``L3d``'s depth
follows the input) and the editor's own frozen branches ``E_low`` / ``E_high``. Their outputs
depend only on the pair's images, so :class:`FrozenOutputCache` keeps them in memory, keyed by
the pair (its style and id) and checked against a fingerprint of the images, and computes only
the items of a batch it has not seen.

Only modules whose output cannot depend on the training mode or on the other items of the batch
may be cached (no batch normalisation, no active dropout: :func:`batch_independent`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Hashable, Sequence

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)

Outputs = tuple[Tensor, ...]
"""What a cached computation returns for a batch: one or more tensors, batch first."""


def batch_independent(module: nn.Module) -> bool:
    """``True`` when ``module``'s output for one item cannot depend on the batch or the training mode
    (no batch-norm layer, no dropout with ``p > 0``), so it may be computed once per item and reused."""
    for sub in module.modules():
        if isinstance(sub, nn.modules.batchnorm._BatchNorm):
            return False
        if isinstance(sub, nn.modules.dropout._DropoutNd) and sub.p > 0:
            return False
    return True


def image_fingerprints(images: Tensor) -> Tensor:
    """Per item, the sum and the sum of squares of ``images [B, ...]``: ``[B, 2]`` (float64).

    Stored beside a cached entry, so a key reused for other images (two pair folders of one
    style, say) is recomputed instead of returning another pair's outputs."""
    flat = images.detach().flatten(1).double()
    return torch.stack([flat.sum(1), flat.square().sum(1)], 1)


@dataclass
class _Entry:
    fingerprint: Tensor
    outputs: Outputs


class FrozenOutputCache:
    """Per-pair outputs of frozen modules, kept up to ``max_mb`` megabytes (0 turns caching off).

    Args:
        max_mb: memory budget of the stored tensors; items beyond it are computed at every step.

    Attributes:
        hits / misses: items served from memory / computed, over the cache's life.
        full: an item did not fit (said once, as a warning: the items beyond the budget are recomputed
            at every step, which can make later epochs several times slower).
    """

    def __init__(self, max_mb: float) -> None:
        if max_mb < 0:
            raise ValueError(f"max_mb must be >= 0 (0 = no caching), got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.full = False
        self._entries: dict[Hashable, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def summary(self) -> str:
        """One line for the end of a run, e.g. ``"frozen outputs of 10 pairs kept (17.5 MB), 96% of lookups reused"``
        (``""`` when nothing was looked up)."""
        lookups = self.hits + self.misses
        if not lookups:
            return ""
        return (f"frozen outputs of {self._pairs_kept()} pairs kept ({self.bytes / 2**20:.1f} MB), "
                f"{100 * self.hits / lookups:.0f}% of lookups reused")

    def _pairs_kept(self) -> int:
        """Pairs with at least one stored computation (entries are keyed ``(name, pair key)``)."""
        return len({key for _, key in self._entries})

    def get(self, name: str, keys: Sequence[Hashable] | None, images: Tensor,
            compute: Callable[[Tensor], Outputs]) -> Outputs:
        """``compute``'s outputs for every item of a batch, computing only the items not stored yet.

        Args:
            name: which computation (one cache holds several, e.g. ``"teacher_edited"``).
            keys: one hashable key per item (``None``: nothing is cached, the whole batch is computed).
            images: ``[B, ...]`` what the outputs are computed from; an entry whose
                :func:`image_fingerprints` differ is recomputed.
            compute: ``indices [M] -> outputs`` for those items of the batch, each ``[M, ...]``; it must
                not need gradients (its outputs are stored detached).

        Returns:
            The outputs for the whole batch, each ``[B, ...]``, in batch order.
        """
        batch = images.shape[0]
        if keys is None or self.max_bytes == 0:
            return tuple(out.detach() for out in compute(torch.arange(batch, device=images.device)))
        if len(keys) != batch:
            raise ValueError(f"{len(keys)} keys for a batch of {batch}")
        fingerprints = image_fingerprints(images)
        found: list[Outputs | None] = []
        for key, fingerprint in zip(keys, fingerprints):
            entry = self._entries.get((name, key))
            ok = entry is not None and torch.allclose(entry.fingerprint, fingerprint, rtol=1e-9, atol=0.0)
            found.append(entry.outputs if ok else None)
        missing = [i for i, outputs in enumerate(found) if outputs is None]
        self.hits += batch - len(missing)
        self.misses += len(missing)
        if missing:
            computed = tuple(out.detach() for out in compute(torch.tensor(missing, device=fingerprints.device)))
            for j, i in enumerate(missing):
                found[i] = tuple(out[j] for out in computed)
                self._store((name, keys[i]), fingerprints[i], found[i])
        return tuple(torch.stack([item[k] for item in found]) for k in range(len(found[0])))

    def _store(self, key: Hashable, fingerprint: Tensor, outputs: Outputs) -> None:
        old = self._entries.get(key)
        size = sum(out.numel() * out.element_size() for out in outputs)
        freed = 0 if old is None else sum(out.numel() * out.element_size() for out in old.outputs)
        if self.bytes - freed + size > self.max_bytes:
            if not self.full:
                self.full = True
                logger.warning("frozen-output cache full at %.1f MB (%d pairs kept): the outputs of later pairs are "
                               "recomputed at every step; raise system.frozen_cache_mb to keep them (this item: %.2f MB)",
                               self.bytes / 2**20, self._pairs_kept(), size / 2**20)
            return
        # a copy, so the entry does not keep the whole computed batch alive
        self._entries[key] = _Entry(fingerprint.clone(), tuple(out.clone() for out in outputs))
        self.bytes += size - freed


def pair_keys(batch: dict) -> list[Hashable] | None:
    """One key per item, ``(style, id)``, from a :func:`~pe3d.data.pairs.collate_pairs` batch (``None`` when
    the batch does not name its pairs)."""
    ids, styles = batch.get("id"), batch.get("style")
    if ids is None or styles is None:
        return None
    return [(str(style), int(i)) for style, i in zip(styles, torch.as_tensor(ids).tolist())]
