"""Find style folders: ``styles/*/style.yaml``, extra folders, and the ``pe3d.styles`` entry points.

Search order -- the user's folders first, the built-in styles last:

1. :func:`pe3d.config.user_styles_dir` (``$PE3D_STYLES``, else ``./styles`` of the current directory);
2. folders in ``$PE3D_STYLE_PATH`` (``os.pathsep``-separated) and ``extra_dirs``;
3. the ``pe3d.styles`` entry-point group: each entry point loads to a folder path (or a
   callable returning one, or a list of them); the folder is either one style (it holds
   ``style.yaml``) or a collection of style folders;
4. the built-in styles shipped with pe3d (:func:`pe3d.config.builtin_styles_dir`).

A name found in two different user folders (1-3) is an error naming both; a user style with
the name of a built-in one replaces it (this is how an adapted copy of a built-in style,
written by ``pe3d fit adapt`` into the user's folder, takes its place).

A style is referenced by its *name* only: references with path separators, ``..`` or an
absolute path are refused, so a name can never reach outside the searched folders.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Iterable, Sequence

from pe3d.config import builtin_styles_dir, user_styles_dir
from pe3d.styles.spec import STYLE_FILE, NAME_PATTERN, StyleError, StyleSpec, is_safe_name, load_style

ENTRY_POINT_GROUP = "pe3d.styles"
"""Entry-point group through which installed packages contribute style folders."""
PLUGIN_FILE = "generator.py"
"""Optional Python file in a style folder that registers the style's own generator."""
STYLE_PATH_ENV = "PE3D_STYLE_PATH"
"""Environment variable with extra style folders (``os.pathsep``-separated)."""

BUILTIN_LABEL = "built-in styles"
"""Label of the built-in styles folder in :func:`style_roots`."""

_PLUGINS: dict[Path, ModuleType] = {}


def check_style_reference(ref: Any) -> str:
    """Return ``ref`` if it is a plain style name; refuse paths, ``..`` and absolute references.

    Raises:
        StyleError: the reference would escape the styles folder or is not a valid name.
    """
    if not isinstance(ref, str) or not ref:
        raise StyleError(f"style reference {ref!r}: expected a non-empty style name")
    if os.path.isabs(ref) or ref.startswith(("~", "/", "\\")) or (len(ref) > 1 and ref[1] == ":"):
        raise StyleError(f"style reference {ref!r}: absolute paths are refused; give a style name")
    parts = ref.replace("\\", "/").split("/")
    if ".." in parts or len(parts) > 1:
        raise StyleError(f"style reference {ref!r}: refused, it would escape the styles folder; give a style name")
    if not is_safe_name(ref):
        raise StyleError(f"style reference {ref!r}: not a valid style name ({NAME_PATTERN.pattern})")
    return ref


def _env_dirs() -> list[Path]:
    value = os.environ.get(STYLE_PATH_ENV, "")
    return [Path(part).expanduser() for part in value.split(os.pathsep) if part.strip()]


def _entry_point_dirs() -> list[tuple[Path, str]]:
    """Folders contributed by the ``pe3d.styles`` entry points, with the entry point's name."""
    out: list[tuple[Path, str]] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        label = f"entry point {entry.name!r} ({entry.value})"
        try:
            value = entry.load()
            if callable(value):
                value = value()
        except Exception as error:  # a broken third-party package must not hide the message
            raise StyleError(f"{label}: failed to load: {type(error).__name__}: {error}") from error
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if not isinstance(item, (str, os.PathLike)):
                raise StyleError(f"{label}: expected a folder path, got {type(item).__name__}")
            out.append((Path(item).expanduser(), label))
    return out


def _scan(root: Path) -> list[Path]:
    """Style folders under ``root`` (or ``root`` itself when it holds ``style.yaml``)."""
    if (root / STYLE_FILE).is_file():
        return [root]
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith((".", "_")) or not child.is_dir():
            continue
        if not (child / STYLE_FILE).is_file():
            continue
        if not is_safe_name(child.name):
            warnings.warn(f"{child}: skipped, folder name is not a valid style name ({NAME_PATTERN.pattern})", stacklevel=3)
            continue
        found.append(child)
    return found


def style_roots(extra_dirs: Iterable[str | Path] = (), entry_points: bool = True) -> list[tuple[Path, str]]:
    """Every searched folder with a label saying where it came from, in search order."""
    roots: list[tuple[Path, str]] = [(user_styles_dir(), "user styles dir")]
    roots += [(path, f"${STYLE_PATH_ENV}") for path in _env_dirs()]
    roots += [(Path(path).expanduser(), "extra dir") for path in extra_dirs]
    if entry_points:
        roots += _entry_point_dirs()
    roots.append((builtin_styles_dir(), BUILTIN_LABEL))
    return roots


def discover_styles(extra_dirs: Iterable[str | Path] = (), entry_points: bool = True) -> dict[str, Path]:
    """Map style name -> absolute style folder over all searched folders (first one found wins).

    Raises:
        StyleError: the same style name in two different user folders (both named); a user
            style named like a built-in one replaces the built-in.
    """
    styles: dict[str, Path] = {}
    for root, label in style_roots(extra_dirs, entry_points):
        for folder in _scan(root):
            folder = folder.absolute()
            old = styles.get(folder.name)
            if old is not None and old.resolve() != folder.resolve() and label != BUILTIN_LABEL:
                raise StyleError(f"duplicate style {folder.name!r}: {old} and {folder}")
            styles.setdefault(folder.name, folder)
    return dict(sorted(styles.items()))


def list_styles(extra_dirs: Iterable[str | Path] = (), entry_points: bool = True) -> list[str]:
    """Sorted names of every discovered style."""
    return list(discover_styles(extra_dirs, entry_points))


def find_style(name: str, extra_dirs: Iterable[str | Path] = (), entry_points: bool = True) -> Path:
    """The folder of the style called ``name``.

    Raises:
        StyleError: unsafe reference (path traversal / absolute) or unknown name; the latter
            lists the known styles.
    """
    check_style_reference(name)
    styles = discover_styles(extra_dirs, entry_points)
    if name not in styles:
        known = ", ".join(styles) or "none"
        searched = ", ".join(str(root) for root, _ in style_roots(extra_dirs, entry_points=False))
        raise StyleError(f"unknown style {name!r} (known: {known}; searched {searched} and entry points)")
    return styles[name]


def import_style_plugin(folder: str | Path) -> ModuleType | None:
    """Import ``<folder>/generator.py`` by file path (once per file) so it can register generators.

    Returns:
        The module, or ``None`` when the folder has no ``generator.py``.

    Raises:
        StyleError: the file failed to import (file and error named).
    """
    path = (Path(folder) / PLUGIN_FILE).resolve()
    if not path.is_file():
        return None
    if path in _PLUGINS:
        return _PLUGINS[path]
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    safe = "".join(ch if ch.isalnum() else "_" for ch in path.parent.name)
    module_name = f"pe3d_style_plugin_{safe}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise StyleError(f"{path}: cannot import style plugin")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except StyleError as error:
        sys.modules.pop(module_name, None)
        raise StyleError(f"{path}: {error}") from error
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise StyleError(f"{path}: style plugin failed to import: {type(error).__name__}: {error}") from error
    _PLUGINS[path] = module
    return module


def load_named_style(
    name: str,
    extra_dirs: Iterable[str | Path] = (),
    overrides: Sequence[str] = (),
    entry_points: bool = True,
) -> StyleSpec:
    """:func:`find_style` then :func:`~pe3d.styles.spec.load_style`."""
    return load_style(find_style(name, extra_dirs, entry_points), overrides=overrides)


def load_styles(extra_dirs: Iterable[str | Path] = (), entry_points: bool = True) -> dict[str, StyleSpec]:
    """Load every discovered style (all ``generator.py`` plugins are imported first, so a
    style may use a generator registered by another style's plugin)."""
    folders = discover_styles(extra_dirs, entry_points)
    for folder in folders.values():
        import_style_plugin(folder)
    return {name: load_style(folder) for name, folder in folders.items()}
