"""Free-disk check run before the tests: a full disk otherwise shows as dozens of unrelated errors at setup."""

from __future__ import annotations

import shutil
from pathlib import Path

TEST_RUN_NEEDS_BYTES = 1 << 30
"""Free space the test run asks for where pytest puts its temp folders. Its peak there was 0.26-0.29 GB
(2026-12-07, two fresh clones' whole suite with ``tmp_path_retention_policy = failed``; full-size checkpoints such as an
IR-SE50 face net and LPIPS' backbone are written there and deleted as their tests pass): 1 GiB leaves room."""


def free_disk_problem(folder: str | Path, needed_bytes: int = TEST_RUN_NEEDS_BYTES) -> str | None:
    """A message naming ``folder`` and both sizes when its disk has less than ``needed_bytes`` free, else ``None``.

    ``folder`` is the nearest existing folder at or above the given path (pytest creates its own below it).
    """
    path = Path(folder).resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    free = shutil.disk_usage(path).free
    if free >= needed_bytes:
        return None
    return (f"only {free / 2**20:.0f} MiB free on the disk of {path}, where the tests write their temporary files "
            f"(up to about 0.3 GB at once); they need {needed_bytes / 2**20:.0f} MiB. Free some space, or point "
            f"pytest elsewhere with --basetemp DIR.")
