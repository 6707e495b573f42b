"""Did a prior's depth lift (``encoder.t_depth_lift``) learn where each input pixel lies in depth?

For held-out world identities at the frontal input view, each foreground pixel's expected depth row under the
lift's distribution (:meth:`pe3d.models.depth_lift.DepthLift.depth_distribution`) is compared with the pixel's true
depth: Pearson correlation over each image's foreground, the distribution's mean entropy (nats; a uniform one over
``R`` rows has ``ln R``) and how much the lift adds to the depth planes against their own size::

    python tools/depth_lift_probe.py runs/ft-lift/prior.safetensors --count 8

``--time-against PRIOR`` also times one encoder call (one 64^2 image, no grad) of both priors in 10 alternated
blocks of 10 calls (``tools/editor_speed_ab.py``'s :func:`time_alternated`), on 1 and on 2 threads, and prints the
medians.
"""

from __future__ import annotations

import argparse
import math
import statistics

import torch
import torch.nn.functional as F

from editor_speed_ab import time_alternated  # tools/ is the script's directory
from pe3d.metrics.ground_truth import build_world_targets
from pe3d.models.prior import load_prior


def time_encoders(lifted, other, blocks: int = 10, calls: int = 10) -> None:
    """Print the median milliseconds of one encoder call of ``lifted`` and ``other``, alternated, on 1 and 2 threads."""
    size = lifted.cfg.encoder.image_size
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times = time_alternated({"lift": lambda: lifted.encoder(image), "other": lambda: other.encoder(image)},
                                blocks, calls)
        print(f"{threads} thread(s): encoder {statistics.median(times['other']):.1f} ms (other prior) -> "
              f"{statistics.median(times['lift']):.1f} ms (with the lift), median of {blocks} x {calls} calls")


def main() -> None:
    """Print one line per identity and the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a prior .safetensors whose encoder has t_depth_lift > 0")
    parser.add_argument("--count", type=int, default=8, help="held-out identities")
    parser.add_argument("--time-against", default="", help="another prior .safetensors to time the encoder against")
    args = parser.parse_args()
    prior = load_prior(args.weights).eval()
    decoder = prior.encoder.decoder
    if decoder.lift is None:
        raise SystemExit(f"{args.weights}: this prior has no depth lift (encoder.t_depth_lift = 0)")
    view = build_world_targets(None, args.count, prior.cfg.encoder.image_size, views={"input": (0.0, 0.0)}).views["input"]
    captured = {}
    hook = decoder.lift.register_forward_hook(lambda module, inputs, output: captured.update(x=inputs[0], add=output))
    with torch.no_grad():
        planes = prior.encoder(view.image)
        hook.remove()
        probability = decoder.lift.depth_distribution(captured["x"])  # [B, R, R, R]
    rows = torch.arange(probability.shape[1], dtype=probability.dtype).view(1, -1, 1, 1)
    expected = (probability * rows).sum(1)  # [B, R, R]
    entropy = -(probability * probability.clamp_min(1e-12).log()).sum(1)
    r = expected.shape[-1]
    count = view.image.shape[0]
    depth = F.interpolate(view.depth.reshape(count, 1, *view.depth.shape[-2:]), size=(r, r), mode="bilinear")[:, 0]
    mask = F.interpolate(view.mask.float(), size=(r, r), mode="bilinear")[:, 0] > 0.5
    added = captured["add"].flatten(1).norm(dim=1) / planes[:, 1:].flatten(1).norm(dim=1)
    print("| identity | correlation (expected depth row, true depth) | entropy (nats) | lift / depth planes (norm) |")
    print("|---|---|---|---|")
    rows_out = []
    for k in range(count):
        a, b = expected[k][mask[k]], depth[k][mask[k]]
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
        ent = float(entropy[k][mask[k]].mean())
        rows_out.append((corr, ent, float(added[k])))
        print(f"| {k} | {corr:+.3f} | {ent:.2f} | {float(added[k]):.3f} |")
    mean = [sum(v[i] for v in rows_out) / len(rows_out) for i in range(3)]
    print(f"| mean | {mean[0]:+.3f} | {mean[1]:.2f} (uniform {math.log(probability.shape[1]):.2f}) | {mean[2]:.3f} |")
    if args.time_against:
        time_encoders(prior, load_prior(args.time_against).eval())


if __name__ == "__main__":
    main()
