"""Wall-clock timing with warm-up runs excluded and device synchronisation."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from pe3d.metrics.timing import synchronize


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed repeat (warm-up runs excluded)."""

    seconds: tuple[float, ...]

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per call."""
        return 1000.0 * statistics.fmean(self.seconds)

    @property
    def std_ms(self) -> float:
        """Sample standard deviation in milliseconds (0 for a single repeat)."""
        return 1000.0 * statistics.stdev(self.seconds) if len(self.seconds) > 1 else 0.0

    @property
    def fps(self) -> float:
        """Calls per second at the mean time."""
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1, device: torch.device | str = "cpu") -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (synchronising ``device``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        fn()
    synchronize(device)
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return Timing(tuple(seconds))


def time_interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                     device: torch.device | str = "cpu") -> dict[str, Timing]:
    """Like :func:`time_call` for several functions, taking turns each repeat, so that a load that
    changes during the measurement (other jobs on a shared machine) affects all of them alike."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(max(0, warmup)):
        for fn in fns.values():
            fn()
    synchronize(device)
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(values)) for name, values in seconds.items()}
