"""Model files: safetensors weights whose header carries the kind, the resolved config and a hash.

A file is all that is needed to rebuild a model; loading checks the key set strictly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, TypeVar

import torch
from omegaconf import OmegaConf
from torch import nn

import pe3d
from pe3d.config import load_structured
from pe3d.devices import STORAGE_DTYPES
from pe3d.io import load_tensors, save_tensors, state_dict_hash
from pe3d.errors import InvalidInput

M = TypeVar("M", bound=nn.Module)
logger = logging.getLogger(__name__)


def model_hash(model: nn.Module) -> str:
    """Content hash of a model's state dict (what adapters record as their base)."""
    return state_dict_hash(model.state_dict())


DTYPES = STORAGE_DTYPES
"""Storage dtypes for exported weights (loading always casts back to the model's dtype)."""


def save_model(
    model: nn.Module, config: object, kind: str, path: str | Path, extra_metadata: dict | None = None, dtype: str = "float32"
) -> Path:
    """Write ``model``'s state dict with ``kind``, ``config`` (YAML) and its hash in the header.

    ``dtype`` (``float32``/``float16``/``bfloat16``) is the storage type of floating tensors;
    ``float16`` halves the file for the weights shipped inside the package.
    """
    if dtype not in DTYPES:
        raise InvalidInput(f"export dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    state = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    metadata = {
        "kind": kind,
        "pe3d_version": pe3d.__version__,
        "config": OmegaConf.to_yaml(OmegaConf.structured(config)),
        "hash": state_dict_hash(state),
        **(extra_metadata or {}),
    }
    return save_tensors(path, state, metadata)


def load_model(path: str | Path, kind: str, config_type: type, build: Callable[[object], M]) -> tuple[M, dict[str, str]]:
    """Rebuild a model saved by :func:`save_model`; returns it and the header metadata.

    Raises:
        ValueError: the file holds another kind of model.
        KeyError: the tensors do not match the config (names the missing and unexpected keys).
    """
    tensors, metadata = load_tensors(path)
    if metadata.get("kind") != kind:
        raise InvalidInput(f"{path}: expected a {kind} checkpoint, found kind={metadata.get('kind')!r}")
    config = load_structured(config_type, [OmegaConf.to_container(OmegaConf.create(metadata["config"]))])
    model = build(config)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise KeyError(f"{path}: weights do not match their config: missing {sorted(missing)}, unexpected {sorted(unexpected)}")
    return model, metadata


def short_list(items: list[str], n: int = 8) -> str:
    """The first ``n`` of ``items`` and their count, for one-line error messages."""
    return f"{items[:n]}{' ...' if len(items) > n else ''} ({len(items)})"


def with_config_overrides(model: M, overrides: list[str], rebuild: Callable[[list[str]], M], allow_new: bool = False) -> M:
    """``model`` rebuilt by ``rebuild(overrides)`` (its config with ``key=value`` changes) holding the same weights.

    A change that alters a weight's shape, or drops one, raises :class:`~pe3d.config.ConfigError` naming the
    overrides; so does one that adds tensors unless ``allow_new`` (they keep their fresh initialisation and
    are logged).
    """
    from pe3d.config import ConfigError

    if not overrides:
        return model
    changed = rebuild(list(overrides))
    state, target = model.state_dict(), changed.state_dict()
    dropped = sorted(set(state) - set(target))
    reshaped = sorted(f"{k}: {tuple(v.shape)} -> {tuple(target[k].shape)}" for k, v in state.items()
                      if k in target and v.shape != target[k].shape)
    new = sorted(set(target) - set(state))
    problems = [f"{name} {short_list(items)}" for name, items in
                (("drop", dropped), ("reshape", reshaped), ("add", [] if allow_new else new)) if items]
    if problems:
        raise ConfigError(f"model overrides {list(overrides)} change the weights: {'; '.join(problems)}")
    changed.load_state_dict(state, strict=False)
    if new:
        logger.info("model overrides %s add %d tensors that start fresh: %s", list(overrides), len(new), short_list(new))
    return changed


def load_strict(model: nn.Module, tensors: dict, source: str, error: type[Exception], what: str) -> None:
    """Load ``tensors`` into ``model`` key for key (cast to the model's dtypes).

    A missing, unexpected or mis-shaped tensor raises ``error`` naming ``source`` and listing them
    (``"<source>: weights do not match <what>: missing [...] (n); unexpected [...] (n); ..."``).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = sorted(f"{k}: {tuple(tensors[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                    if k in tensors and tensors[k].shape != v.shape)
    if missing or unexpected or shapes:
        problems = [f"{name} {short_list(items)}" for name, items in
                    (("missing", missing), ("unexpected", unexpected), ("shape mismatches", shapes)) if items]
        raise error(f"{source}: weights do not match {what}: {'; '.join(problems)}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()}, strict=True)
