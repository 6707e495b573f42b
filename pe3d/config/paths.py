"""Where pe3d finds its built-in configs, styles and benchmarks, and where it writes.

Built-ins ship inside the package (``pe3d/builtin/{configs,styles,benchmarks}``, copied
from the repository's top-level folders when a wheel is built) and are found with
:mod:`importlib.resources`. A source checkout (editable install) has no copy and reads the
repository's top-level folders instead; ``$PE3D_HOME`` (a folder holding ``configs/``,
``styles/`` and ``benchmarks/``) overrides both.

Nothing is ever written under the built-in root: the user's style folder
(:func:`user_styles_dir`: ``$PE3D_STYLES`` or ``./styles``) receives new styles and
adapters, and run folders default to ``./runs`` (:func:`runs_dir`).
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from pe3d.errors import InputFileNotFound

__all__ = [
    "benchmarks_dir",
    "builtin_root",
    "builtin_styles_dir",
    "configs_dir",
    "is_builtin",
    "named_config",
    "runs_dir",
    "user_styles_dir",
]

BUILTIN_PACKAGE_DIR = "builtin"
"""Folder inside the installed ``pe3d`` package that holds the copied built-ins."""
BUILTIN_FOLDERS = ("configs", "styles", "benchmarks")
"""The repository's top-level folders that ship as package data."""


def _packaged_root() -> Path | None:
    """``pe3d/builtin`` of an installed (non-editable) package, or ``None``."""
    resource = importlib.resources.files("pe3d") / BUILTIN_PACKAGE_DIR
    if not resource.is_dir():
        return None
    path = Path(str(resource))
    if not path.is_dir():  # a zip import: built-ins need real folders (styles import generator.py files)
        raise InputFileNotFound(f"{resource}: pe3d's built-in configs are not on the file system; install pe3d unzipped")
    return path


def builtin_root() -> Path:
    """The folder holding ``configs/``, ``styles/`` and ``benchmarks/`` (read-only for pe3d).

    ``$PE3D_HOME`` wins; then the package data of an installed wheel; then the top level of a
    source checkout.
    """
    env = os.environ.get("PE3D_HOME")
    if env:
        return Path(env).expanduser().resolve()
    packaged = _packaged_root()
    if packaged is not None:
        return packaged
    checkout = Path(__file__).resolve().parents[2]
    if all((checkout / name).is_dir() for name in BUILTIN_FOLDERS):
        return checkout
    raise InputFileNotFound(
        f"pe3d's built-in configs are missing: neither {Path(__file__).resolve().parents[1] / BUILTIN_PACKAGE_DIR} "
        f"nor a source checkout at {checkout}; reinstall pe3d or set $PE3D_HOME"
    )


def configs_dir() -> Path:
    """The built-in ``configs/`` folder."""
    return builtin_root() / "configs"


def benchmarks_dir() -> Path:
    """The built-in ``benchmarks/`` folder."""
    return builtin_root() / "benchmarks"


def builtin_styles_dir() -> Path:
    """The built-in ``styles/`` folder (searched after the user's folders)."""
    return builtin_root() / "styles"


def user_styles_dir() -> Path:
    """The user's style folder: ``$PE3D_STYLES``, else ``./styles`` of the current directory.

    Searched first by style discovery; new styles (web adaptation) and adapters of built-in
    styles are written here.
    """
    env = os.environ.get("PE3D_STYLES")
    return Path(env).expanduser().resolve() if env else Path.cwd() / "styles"


def runs_dir() -> Path:
    """Default parent folder of run folders: ``./runs`` of the current directory."""
    return Path.cwd() / "runs"


def is_builtin(path: str | Path) -> bool:
    """Whether ``path`` lies inside :func:`builtin_root` (pe3d never writes there)."""
    try:
        Path(path).resolve().relative_to(builtin_root().resolve())
    except ValueError:
        return False
    return True


def named_config(group: str, name_or_path: str | Path, what: str) -> Path:
    """``configs/<group>/<name>.yaml`` for a short name, or a YAML path as given.

    ``what`` names the config in errors (e.g. ``"model config"``); an unknown name lists the known ones.
    """
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"}:
        if not path.is_file():
            raise InputFileNotFound(f"{path}: {what} not found")
        return path
    folder = configs_dir() / group
    candidate = folder / f"{name_or_path}.yaml"
    if not candidate.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise InputFileNotFound(f"unknown {what} {str(name_or_path)!r}; known: {known}")
    return candidate
