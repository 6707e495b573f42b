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
