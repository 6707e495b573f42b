"""Inference time per image (paper Sec. 4.1: "average of 100 samples" on one GPU).

``TimePerImage`` accumulates wall-clock seconds and image counts and reports milliseconds per
image. :meth:`TimePerImage.measure` (or the free :func:`timed`) times a block of code.

CUDA runs asynchronously: a kernel launch returns before the GPU has finished, so a timer read
right after ``model(x)`` measures only the launch. Give ``device`` (a CUDA device, or a tensor /
module on it) and the timer calls ``torch.cuda.synchronize`` before starting and before stopping,
so the measured span covers the GPU work. Exclude warm-up runs (first-call allocation, cuDNN
autotuning, lazy weight loading) with ``warmup``: the first ``warmup`` updates are ignored.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
from torch import Tensor, nn
from torchmetrics import Metric

DeviceLike = Union[str, torch.device, Tensor, nn.Module, None]
"""Something that names a device: a device, a string, or a tensor / module living on it."""


def _device_of(device: DeviceLike) -> Optional[torch.device]:
    if device is None:
        return None
    if isinstance(device, Tensor):
        return device.device
    if isinstance(device, nn.Module):
        first = next(iter(device.parameters()), None)
        return None if first is None else first.device
    return torch.device(device)


def synchronize(device: DeviceLike) -> None:
    """Wait for all queued GPU work on ``device`` (no-op for CPU or ``None``)."""
    resolved = _device_of(device)
    if resolved is not None and resolved.type == "cuda":
        torch.cuda.synchronize(resolved)


class Stopwatch:
    """Elapsed wall-clock seconds of one ``with`` block; see :func:`timed`."""

    seconds: float = math.nan


@contextmanager
def timed(device: DeviceLike = None) -> Iterator[Stopwatch]:
    """``with timed(device) as watch: ...`` -> ``watch.seconds``; synchronises CUDA at both ends."""
    watch = Stopwatch()
    synchronize(device)
    start = time.perf_counter()
    try:
        yield watch
    finally:
        synchronize(device)
        watch.seconds = time.perf_counter() - start


class TimePerImage(Metric):
    """Mean wall-clock milliseconds per image.

    Args:
        warmup: the first ``warmup`` calls of :meth:`update` are ignored (warm-up runs).

    Example::

        timer = TimePerImage(warmup=1)
        for batch in batches:
            with timer.measure(count=len(batch), device=model):
                model(batch)
        timer.compute()   # ms per image
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    seconds: Tensor
    count: Tensor
    ignored: Tensor

    def __init__(self, warmup: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        self.warmup = int(warmup)
        self.add_state("seconds", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("ignored", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, seconds: float, count: int = 1) -> None:
        """Add ``seconds`` of wall-clock time spent on ``count`` images."""
        seconds, count = float(seconds), int(count)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite non-negative number, got {seconds}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if int(self.ignored) < self.warmup:
            self.ignored += 1
            return
        self.seconds += seconds
        self.count += count

    @contextmanager
    def measure(self, count: int = 1, device: DeviceLike = None) -> Iterator[Stopwatch]:
        """Time the ``with`` block (synchronising CUDA on ``device``) and :meth:`update` with ``count`` images."""
        with timed(device) as watch:
            yield watch
        self.update(watch.seconds, count)

    def compute(self) -> Tensor:
        """Milliseconds per image (NaN before any counted update)."""
        if int(self.count) == 0:
            return torch.tensor(math.nan, dtype=torch.float64)
        return 1000.0 * self.seconds / self.count
