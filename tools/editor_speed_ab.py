"""Two editor files' edit + render time side by side, in one process, alternating blocks of calls.

    python tools/editor_speed_ab.py --a shipped --b runs/border/editor_b10.safetensors [--blocks 10 --calls 5]

Each editor is timed on ``pe3d bench speed``'s mini call itself (:func:`pe3d.bench.speed.build_models` and the
``ours`` entry of :func:`pe3d.bench.speed.pipelines`: a world portrait, the setting's prompt, one render at the
input camera, no autograd); each block times ``--calls`` calls of one editor, then of the other, so load on the
machine falls on both alike. Prints the median and mean per editor and the ratio B / A of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from pe3d.bench import speed
from pe3d.bench.config import SpeedSetting


def time_alternated(calls: dict[str, Callable[[], object]], blocks: int, per_block: int) -> dict[str, list[float]]:
    """Name -> milliseconds of each timed call (no autograd): ``per_block`` warm-up calls of each, then ``blocks``
    rounds of ``per_block`` calls of one after the other, so load on the machine falls on all alike."""

    @torch.no_grad()
    def timed(call) -> float:
        start = time.perf_counter()
        call()
        return (time.perf_counter() - start) * 1000

    for call in calls.values():  # warm-up
        for _ in range(per_block):
            timed(call)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(blocks):
        for name, call in calls.items():
            times[name] += [timed(call) for _ in range(per_block)]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="shipped", help="editor file (shipped = the shipped mini editor)")
    parser.add_argument("--b", required=True, help="editor file compared with A")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    calls = {}
    for name, path in (("A", args.a), ("B", args.b)):
        setting = SpeedSetting(name="mini", editor=path)
        calls[name] = speed.pipelines(speed.build_models(setting, cpu), setting)["ours"]

    times = time_alternated(calls, args.blocks, args.calls)
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} ms, mean {statistics.mean(values):.1f} ms ({len(values)} calls)")
    print(f"B / A (medians): {statistics.median(times['B']) / statistics.median(times['A']):.3f}")


if __name__ == "__main__":
    main()
