"""Locating pretrained weights of the evaluation networks in local files only.

The metrics never download: a network's weights come from a path the user gives or from a few
conventional local places; when none exists the metric is refused with
:class:`MetricWeightsMissing`, whose one message names the network and every place searched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from pe3d.errors import InputFileNotFound


SHOWN_PLACES = 6
"""Searched places listed in the message; the full list is :attr:`MetricWeightsMissing.searched`."""


class MetricWeightsMissing(InputFileNotFound):
    """A metric's network weights are not on this machine; the message names the model and the paths searched."""

    def __init__(self, what: str, searched: Sequence[str], hint: str = "") -> None:
        self.what = what
        self.searched = list(searched)
        shown = self.searched[:SHOWN_PLACES]
        places = "; ".join(shown) if shown else "(nowhere)"
        if len(self.searched) > len(shown):
            places += f"; ... and {len(self.searched) - len(shown)} more places (all in .searched)"
        message = f"{what}: weights not found locally (pe3d never downloads them); searched: {places}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


def first_existing_file(what: str, candidates: Iterable[str | Path], hint: str = "") -> Path:
    """The first of ``candidates`` that is an existing file; :class:`MetricWeightsMissing` naming all of them otherwise."""
    searched: list[str] = []
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if str(path) in searched:
            continue
        searched.append(str(path))
        if path.is_file():
            return path
    raise MetricWeightsMissing(what, searched, hint)
