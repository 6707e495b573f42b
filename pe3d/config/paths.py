"""Where pe3d finds its configs, styles and run folders."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding ``configs/`` and ``styles/``.

    ``$PE3D_HOME`` wins; otherwise the parent of the ``pe3d`` package (an editable
    install or a source checkout).
    """
    env = os.environ.get("PE3D_HOME")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[2]


def configs_dir() -> Path:
    """``<project_root>/configs``."""
    return project_root() / "configs"


def styles_dir() -> Path:
    """``<project_root>/styles`` (override with ``$PE3D_STYLES``)."""
    env = os.environ.get("PE3D_STYLES")
    return Path(env).expanduser().resolve() if env else project_root() / "styles"


def runs_dir() -> Path:
    """Default parent folder of training runs: ``<project_root>/runs``."""
    return project_root() / "runs"


def named_config(group: str, name_or_path: str | Path, what: str) -> Path:
    """``configs/<group>/<name>.yaml`` for a short name, or a YAML path as given.

    ``what`` names the config in errors (e.g. ``"model config"``); an unknown name lists the known ones.
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: {what} not found")
        return path
    folder = configs_dir() / group
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise FileNotFoundError(f"unknown {what} {str(name_or_path)!r}; known: {known}")
    return candidate
