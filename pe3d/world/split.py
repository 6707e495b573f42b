"""Train / held-out split of the procedural identities.

Identities are addressed by ``(seed, index)`` (see :func:`~pe3d.world.identity.sample_identity`).
The split is by *index range*, so it needs no bookkeeping and can never overlap:

* training identities use indices ``0 .. HELDOUT_START - 1``;
* held-out identities use indices ``HELDOUT_START ..`` (one million and up).

Both ranges draw from the same distribution (the index only seeds the generator), so held-out
identities are new samples of the same world, never seen in training. ``WorldSplit`` also
supports taking a random subset of each range with a fixed generator seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pe3d.world.identity import Identity, sample_identity

__all__ = ["HELDOUT_START", "WorldSplit"]

HELDOUT_START: int = 1_000_000
"""First identity index of the held-out range; training indices are below it."""


@dataclass(frozen=True)
class WorldSplit:
    """Disjoint train / held-out identity index ranges of one world seed.

    Attributes:
        seed: world seed passed to :func:`sample_identity`.
        heldout_start: first held-out index (training indices are ``< heldout_start``).
    """

    seed: int = 0
    heldout_start: int = HELDOUT_START

    def train_indices(self, n: int, offset: int = 0) -> list[int]:
        """The ``n`` consecutive training indices starting at ``offset``."""
        if n < 0 or offset < 0 or offset + n > self.heldout_start:
            raise ValueError(f"training indices must lie in [0, {self.heldout_start}), got offset={offset}, n={n}")
        return list(range(offset, offset + n))

    def heldout_indices(self, n: int, offset: int = 0) -> list[int]:
        """The ``n`` consecutive held-out indices starting at ``heldout_start + offset``."""
        if n < 0 or offset < 0:
            raise ValueError(f"n and offset must be non-negative, got n={n}, offset={offset}")
        return list(range(self.heldout_start + offset, self.heldout_start + offset + n))

    def indices(self, split: str, n: int, offset: int = 0) -> list[int]:
        """``train_indices`` or ``heldout_indices`` by name (``"train"`` / ``"heldout"``, alias ``"test"``)."""
        if split == "train":
            return self.train_indices(n, offset)
        if split in ("heldout", "test", "val"):
            return self.heldout_indices(n, offset)
        raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")

    def random_indices(self, split: str, n: int, rng_seed: int = 0, pool: int = 100_000) -> list[int]:
        """``n`` distinct indices drawn without replacement from the first ``pool`` of a split."""
        rng = np.random.default_rng([int(self.seed), int(rng_seed), 0x5B17])
        picks = rng.choice(min(pool, self.heldout_start), size=n, replace=False)
        base = 0 if split == "train" else self.heldout_start
        if split not in ("train", "heldout", "test", "val"):
            raise ValueError(f"unknown split {split!r}; use 'train' or 'heldout'")
        return [base + int(i) for i in picks]

    def is_heldout(self, index: int) -> bool:
        """Whether an identity index belongs to the held-out range."""
        return index >= self.heldout_start

    def identities(self, split: str, n: int, offset: int = 0) -> list[Identity]:
        """The identities of ``indices(split, n, offset)``."""
        return [sample_identity(self.seed, i) for i in self.indices(split, n, offset)]
