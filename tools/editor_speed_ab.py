"""Two editor files' edit + render time side by side, in one process, alternating blocks of calls.

    python tools/editor_speed_ab.py --a shipped --b runs/border/editor_b10.safetensors [--blocks 10 --calls 5]

One 64² input, one text prompt, one render at 64² from yaw 0.5 / pitch 0.1 rad, no autograd (the call of
``pe3d bench speed``'s mini row); each block times ``--calls`` calls of one editor, then of the other, so load
on the machine falls on both alike. Prints the median and mean per editor and the ratio B / A of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pe3d.geometry import label_from_yaw_pitch
from pe3d.models.editor import Prompts, load_editor
from pe3d.weights import resolve_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="shipped", help="editor file (shipped = the shipped mini editor)")
    parser.add_argument("--b", required=True, help="editor file compared with A")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    editors = {name: load_editor(resolve_weights("" if path == "shipped" else path, "editor_mini")).eval()
               for name, path in (("A", args.a), ("B", args.b))}
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    label = label_from_yaw_pitch([0.5], [0.1])
    prompts = Prompts(texts=["turn him into a bronze statue"])

    @torch.no_grad()
    def call(editor) -> float:
        start = time.perf_counter()
        editor.render(editor(image, prompts), label, resolution=64)
        return (time.perf_counter() - start) * 1000

    for editor in editors.values():  # warm-up
        for _ in range(args.calls):
            call(editor)
    times: dict[str, list[float]] = {name: [] for name in editors}
    for _ in range(args.blocks):
        for name, editor in editors.items():
            times[name] += [call(editor) for _ in range(args.calls)]
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.1f} ms, mean {statistics.mean(values):.1f} ms ({len(values)} calls)")
    print(f"B / A (medians): {statistics.median(times['B']) / statistics.median(times['A']):.3f}")


if __name__ == "__main__":
    main()
