"""``PairDataModule``: training / validation loaders over pair-set folders (one per style).

Kept apart from :mod:`pe3d.data.pairs` so that writing pairs never imports Lightning.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from pe3d.data.pairs import MANIFEST_FILE, PROMPT_SOURCES, ManifestError, PairDataConfig, PairDataset, collate_pairs, read_manifest, read_meta, split_ids
from pe3d.data.prompt_augment import shared_words, style_words, vocabulary_words
from pe3d.errors import InvalidInput
from pe3d.prompt_vocabulary import prompt_words


def load_reference_image(path: str | Path) -> torch.Tensor:
    """A style's reference image as ``[3, S, S]`` in [0, 1]: its centre square, as ``pe3d edit --prompt-image``
    reads one (each pair's dataset then resizes it to the pair resolution)."""
    from pe3d.images import center_square, load_image

    return center_square(load_image(path))


class PairDataModule(LightningDataModule):
    """Training / validation loaders over one or more pair-set folders (one per style).

    Batches are :func:`collate_pairs` dicts. Typical use::

        dm = PairDataModule(PairDataConfig(dirs=["runs/pairs/bronze_statue"], batch_size=8))
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
    """

    def __init__(self, config: PairDataConfig) -> None:
        super().__init__()
        if not config.dirs:
            raise InvalidInput("PairDataConfig.dirs: at least one pair-set folder is required")
        if config.batch_size < 1:
            raise InvalidInput(f"PairDataConfig.batch_size: must be >= 1, got {config.batch_size}")
        if config.prompt_source not in PROMPT_SOURCES:
            raise InvalidInput(f"PairDataConfig.prompt_source: must be one of {list(PROMPT_SOURCES)}, got {config.prompt_source!r}")
        if not 0.0 <= config.val_fraction < 1.0:
            raise InvalidInput(f"PairDataConfig.val_fraction: must be in [0, 1), got {config.val_fraction}")
        self.config = config
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Read the manifests, check resolutions agree and split each folder into train / val."""
        cfg = self.config
        train_parts: list[Dataset] = []
        val_parts: list[Dataset] = []
        resolutions: dict[int, str] = {}
        reference = load_reference_image(cfg.reference_image) if cfg.reference_image else None
        metas = [(folder, read_meta(folder)) for folder in cfg.dirs]
        unknown_styles = sorted(set(cfg.style_repeats) - {Path(folder).name for folder in cfg.dirs})
        if unknown_styles:
            raise InvalidInput(f"data.style_repeats: {unknown_styles} name no pair folder of this run "
                               f"(folders: {[Path(folder).name for folder in cfg.dirs]})")
        train_prompts = [meta.get("prompts", {}).get("train") or [] for _, meta in metas]
        shared = shared_words(train_prompts) if cfg.prompt_augment.no_edit > 0 else []
        own_words = (style_words(train_prompts) if cfg.prompt_augment.no_edit_without_style_word
                     else [frozenset()] * len(metas))
        unknown = (vocabulary_words(word for prompts in train_prompts for prompt in prompts for word in prompt_words(prompt))
                   if cfg.prompt_augment.unknown_word_source == "vocabulary" else [])
        for (folder, meta), words in zip(metas, own_words):
            resolution = int(meta.get("pairs", {}).get("resolution", -1))
            resolutions.setdefault(resolution, folder)
            if len(resolutions) > 1:
                raise ManifestError(f"{folder}: resolution {resolution} differs from {resolutions} of the other folders")
            ids = sorted(r.id for r in read_manifest(Path(folder) / MANIFEST_FILE))
            if cfg.limit is not None:
                ids = ids[: cfg.limit]
            if not ids:
                raise ManifestError(f"{folder}: no pairs (run write_pairs first)")
            train_ids, val_ids = split_ids(ids, cfg.val_fraction, cfg.seed)
            train_set = PairDataset(folder, resample_prompts=cfg.resample_prompts, ids=train_ids,
                                    prompt_augment=cfg.prompt_augment, prompt_source=cfg.prompt_source,
                                    reference=reference, shared_words=shared, mirror=cfg.mirror,
                                    unknown_vocabulary=unknown, style_words=words)
            train_parts += [train_set] * cfg.style_repeats.get(Path(folder).name, 1)
            if val_ids:
                val_parts.append(PairDataset(folder, resample_prompts=False, ids=val_ids, prompt_source=cfg.prompt_source,
                                             reference=reference))
        self.train_set = ConcatDataset(train_parts)
        self.val_set = ConcatDataset(val_parts) if val_parts else None

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        if self.train_set is None:
            self.setup("fit")
        return DataLoader(
            self.train_set,  # type: ignore[arg-type]
            batch_size=self.config.batch_size,
            shuffle=True,
            num_workers=self.config.num_workers,
            collate_fn=collate_pairs,
            drop_last=self.config.drop_last and len(self.train_set) > self.config.batch_size,  # type: ignore[arg-type]
            generator=torch.Generator().manual_seed(self.config.seed),
            persistent_workers=self.config.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in id order (an empty list when there is no validation split)."""
        if self.train_set is None:
            self.setup("validate")
        if self.val_set is None:
            return []
        return DataLoader(
            self.val_set,
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            collate_fn=collate_pairs,
        )

