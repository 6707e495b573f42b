"""Time the mini edit + render with and without this checkout's inference shortcuts, in one process.

    python tools/inference_shortcuts_ab.py --blocks 40 --calls 5

The shortcuts (2026-12-06): renders that show images decode only the RGB channels
(``TriplaneRenderer.forward(images_only=True)``, what ``pe3d bench speed``, the benchmarks and
``EditPipeline`` call), dilated convolutions run on oneDNN directly
(``pe3d.models.layers.dilated_conv_on_onednn``) and channel concatenations keep the channels-last
layout of their majority (``cat_channels``). "Without" patches the two layer helpers back to plain
``torch`` calls and renders with ``images_only=False``. The two take turns in blocks of ``--calls``
calls (so a load that changes on a shared machine hits both alike) on ``pe3d bench speed``'s mini
request (shipped weights, a held-out world portrait, its bronze prompt, render at the input camera).
Prints the largest image difference, both medians and means, and the ratio without / with.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=40, help="alternating blocks per variant")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per block")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import pe3d.models.layers as layers
    import pe3d.models.prior_encoder as prior_encoder
    from pe3d.bench.config import SpeedSetting
    from pe3d.bench.methods import edit_with_prompt
    from pe3d.bench.speed import build_models

    setting = SpeedSetting()
    models = build_models(setting, torch.device("cpu"))
    onednn, cat_channels = layers.dilated_conv_on_onednn, layers.cat_channels

    def plain_cat(tensors):
        return torch.cat(list(tensors), dim=1)

    def edit_and_render(shortcuts: bool) -> torch.Tensor:
        layers.dilated_conv_on_onednn = onednn if shortcuts else (lambda conv, x: None)
        layers.cat_channels = prior_encoder.cat_channels = cat_channels if shortcuts else plain_cat
        planes = edit_with_prompt(models.editor, models.image, setting.prompt)
        return models.editor.render(planes, models.camera, images_only=shortcuts).image

    times: dict[bool, list[float]] = {False: [], True: []}
    with torch.no_grad():
        without, with_ = edit_and_render(False), edit_and_render(True)
        print(f"largest image difference: {(without - with_).abs().max().item():.2e}")
        for _ in range(2):
            edit_and_render(False), edit_and_render(True)
        for _ in range(args.blocks):
            for shortcuts in (False, True):
                for _ in range(args.calls):
                    start = time.perf_counter()
                    edit_and_render(shortcuts)
                    times[shortcuts].append(1000 * (time.perf_counter() - start))
    old, new = statistics.median(times[False]), statistics.median(times[True])
    print(f"without: median {old:.2f} ms, mean {statistics.mean(times[False]):.2f} ms ({len(times[False])} calls)")
    print(f"with:    median {new:.2f} ms, mean {statistics.mean(times[True]):.2f} ms ({len(times[True])} calls)")
    print(f"without / with (medians): {old / new:.3f}x")


if __name__ == "__main__":
    main()
