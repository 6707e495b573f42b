"""Build hook: the repository's top-level ``configs/``, ``styles/`` and ``benchmarks/`` ship inside
the wheel as ``pe3d/builtin/...`` (found with ``importlib.resources`` by :mod:`pe3d.config.paths`).

The top-level folders stay the only copy in git; an editable install reads them in place.
Everything else is in ``setup.cfg``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUILTIN_FOLDERS = ("configs", "styles", "benchmarks")
BUILTIN_SUFFIXES = (".yaml", ".yml", ".txt", ".md", ".json", ".py")
"""Files copied from the built-in folders (never adapters, pairs, runs or caches someone left there)."""


def builtin_files(root: Path = ROOT):
    """``(source, path inside pe3d/builtin)`` of every file that ships as a built-in."""
    for folder in BUILTIN_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and path.suffix in BUILTIN_SUFFIXES and not any(
                part.startswith((".", "__pycache__")) for part in relative.parts
            ):
                yield path, relative


class BuildPyWithBuiltins(build_py):
    """``build_py`` that also copies the built-in folders into ``<build>/pe3d/builtin/``."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's folders
        target = Path(self.build_lib) / "pe3d" / "builtin"
        if target.exists():
            shutil.rmtree(target)
        for source, relative in builtin_files():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildPyWithBuiltins})
