"""Training data: pair sets on disk (:mod:`pe3d.data.pairs`), their ``LightningDataModule``
(:mod:`pe3d.data.datamodule`, loaded on first use so ``import pe3d.data`` needs no Lightning),
sharded pair generation (:mod:`pe3d.data.sharding`) and view datasets for prior training."""

from pe3d.data.pairs import (
    ManifestError,
    PairDataConfig,
    PairDataset,
    PairRecord,
    collate_pairs,
    pair_set_complete,
    read_manifest,
    write_pairs,
)

__all__ = [
    "ManifestError",
    "PairDataConfig",
    "PairDataModule",
    "PairDataset",
    "PairRecord",
    "collate_pairs",
    "pair_set_complete",
    "read_manifest",
    "write_pairs",
]


def __getattr__(name: str):
    """``PairDataModule`` imports Lightning, so it is loaded on first access."""
    if name == "PairDataModule":
        from pe3d.data.datamodule import PairDataModule

        return PairDataModule
    raise AttributeError(f"module 'pe3d.data' has no attribute {name!r}")
