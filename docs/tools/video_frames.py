"""Frames of edited videos side by side: one row per video, the same frames in each (the README's video picture).

    python docs/tools/video_frames.py runs/astro_v0.mp4 runs/astro_h10.mp4 runs/astro_h40.mp4 \
        --frames 0 8 16 23 --scale 2 --out docs/results/quality/refinement/video_frames.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F


def main() -> None:
    """Read each video (``pe3d.video.read_video``), take ``--frames``, enlarge them ``--scale`` times (nearest
    pixel) and write one row per video."""
    from PIL import Image

    from pe3d.video import read_video

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--frames", type=int, nargs="+", default=[0, 8, 16, 23])
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = []
    for path in args.videos:
        frames = read_video(path).frames
        missing = [i for i in args.frames if not 0 <= i < frames.shape[0]]
        if missing:
            raise SystemExit(f"{path}: has {frames.shape[0]} frames, no frame {missing[0]}")
        chosen = F.interpolate(frames[args.frames], scale_factor=args.scale, mode="nearest")
        rows.append(torch.cat(list(chosen), dim=-1))
    if len({tuple(r.shape) for r in rows}) != 1:
        raise SystemExit("the videos' frames differ in size: " + ", ".join(f"{p} {tuple(r.shape[1:])}" for p, r in zip(args.videos, rows)))
    grid = torch.cat(rows, dim=-2).clamp(0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()).save(args.out)
    print(f"{args.out}: rows {', '.join(args.videos)}; frames {args.frames}")


if __name__ == "__main__":
    main()
