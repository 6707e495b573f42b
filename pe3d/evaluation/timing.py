"""Latency: the one timing helper of Table 1 (``ms / image``) and the speed benchmark.

Every timed call is wall-clock time between two device synchronisations (so CUDA work is
counted, not just its launch); warm-up calls are run first and never counted; several
functions take turns call by call, so a load that changes during the measurement (other jobs
on a shared machine) hits all of them alike.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TypeVar, Union

from pe3d.metrics.timing import DeviceLike, synchronize

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call (warm-up calls excluded)."""

    seconds: tuple[float, ...]

    @property
    def mean_ms(self) -> float:
        """Mean milliseconds per call."""
        return 1000.0 * statistics.fmean(self.seconds)

    @property
    def std_ms(self) -> float:
        """Sample standard deviation in milliseconds (0 for a single call)."""
        return 1000.0 * statistics.stdev(self.seconds) if len(self.seconds) > 1 else 0.0

    @property
    def median_ms(self) -> float:
        """Median milliseconds per call: the typical call, unmoved by the rare slow call that another
        job on a shared machine causes."""
        return 1000.0 * statistics.median(self.seconds)

    @property
    def fps(self) -> float:
        """Calls per second at the mean time."""
        return 1000.0 / self.mean_ms if self.mean_ms > 0 else float("inf")

    @property
    def median_fps(self) -> float:
        """Calls per second at the median time."""
        return 1000.0 / self.median_ms if self.median_ms > 0 else float("inf")


def time_in_turns(calls: Mapping[str, Sequence[Callable[[], T]]], warmup: Union[int, Mapping[str, int]] = 1,
                  device: DeviceLike = None) -> tuple[dict[str, Timing], dict[str, list[T]]]:
    """Time ``calls[name][i]()`` for every name and ``i``, the names taking turns at each ``i``.

    Args:
        calls: name -> the calls to time, in order (e.g. one per image, or one function repeated).
        warmup: untimed runs of each name's first call before any timing (per name when a mapping).
        device: synchronised before and after each timed call (CUDA; nothing to wait for on the CPU).

    Returns:
        name -> :class:`Timing` of its calls, and name -> what its calls returned (in order).
    """
    if any(not fns for fns in calls.values()):
        raise ValueError("every timed name needs at least one call")
    for name, fns in calls.items():
        for _ in range(max(0, warmup.get(name, 0) if isinstance(warmup, Mapping) else warmup)):
            fns[0]()
    synchronize(device)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    results: dict[str, list[T]] = {name: [] for name in calls}
    for i in range(max(len(fns) for fns in calls.values())):
        for name, fns in calls.items():
            if i >= len(fns):
                continue
            started = time.perf_counter()
            results[name].append(fns[i]())
            synchronize(device)
            seconds[name].append(time.perf_counter() - started)
    return {name: Timing(tuple(values)) for name, values in seconds.items()}, results


def time_interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1,
                     device: DeviceLike = None) -> dict[str, Timing]:
    """:func:`time_in_turns` of each function called ``repeats`` times."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    return time_in_turns({name: [fn] * repeats for name, fn in fns.items()}, warmup, device)[0]


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1, device: DeviceLike = None) -> Timing:
    """:func:`time_interleaved` of one function."""
    return time_interleaved({"call": fn}, repeats, warmup, device)["call"]


__all__ = ["Timing", "time_call", "time_in_turns", "time_interleaved"]
