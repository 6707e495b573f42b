"""Test-time refinement settings side by side on one aligned photo (what ``pe3d edit`` wrote).

    pe3d edit astronaut.png --style bronze_statue --out runs/astro --resolution 128 --refine-steps 0
    python tools/photo_refine_compare.py runs/astro [--prompt TEXT] [--resolution 128] \
        [--settings 0 50:0.02:128:1 100:0.04:0:1 200:0.04:0:0.25:0] [--picture runs/refine_compare.png]

Each setting is ``STEPS[:LR[:FIT_RESOLUTION[:RAY_FRACTION[:HULL_THRESHOLD[:HULL_DILATION[:EMPTY_WEIGHT[:HULL_SOFTNESS]]]]]]]``
(:class:`pe3d.refinement.RefineConfig`; fit resolution 0 = the default, the render side capped at the planes';
hull threshold 0 = the residual may change every cell; empty weight 0 = no term keeping the empty space empty; what is left out takes the defaults). For each: the
seconds the fit took, the PSNR of the prior's reconstruction plus the residual against the aligned input at the
photo's camera (``--resolution``), over the whole image, over the reconstruction's foreground (its opacity
above 0.5 there) and over that foreground's inside (8 pixels or more from its edge), and, in the picture, one row per setting: the edit plus the residual at the photo's camera, yaw
-30 and yaw +30.
The settings take turns with nothing else running in the process; time them on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from pe3d.images import load_image, resize_images
from pe3d.geometry import label_from_yaw_pitch
from pe3d.pipeline import EditPipeline
from pe3d.refinement import RefineConfig, fitting_resolution


def parse_setting(text: str) -> RefineConfig:
    """``STEPS[:LR[:FIT_RESOLUTION[:RAY_FRACTION[:HULL_THRESHOLD[:HULL_DILATION[:EMPTY_WEIGHT[:HULL_SOFTNESS]]]]]]]`` -> a :class:`RefineConfig`
    (defaults for what is left out)."""
    parts = text.split(":")
    try:
        steps = int(parts[0])
        lr = float(parts[1]) if len(parts) > 1 else RefineConfig.lr
        fit = int(parts[2]) if len(parts) > 2 else 0
        rays = float(parts[3]) if len(parts) > 3 else RefineConfig.ray_fraction
        hull = float(parts[4]) if len(parts) > 4 else RefineConfig.hull_threshold
        dilation = int(parts[5]) if len(parts) > 5 else RefineConfig.hull_dilation
        empty = float(parts[6]) if len(parts) > 6 else RefineConfig.empty_weight
        softness = int(parts[7]) if len(parts) > 7 else RefineConfig.hull_softness
    except ValueError:
        raise SystemExit(f"--settings {text!r}: expected STEPS[:LR[:FIT_RESOLUTION[:RAY_FRACTION[:HULL_THRESHOLD[:HULL_DILATION[:EMPTY_WEIGHT[:HULL_SOFTNESS]]]]]]], "
                         "e.g. 200:0.04:0:0.25:0.3:2:10") from None
    return RefineConfig(steps=steps, lr=lr, fit_resolution=fit, ray_fraction=rays, hull_threshold=hull, hull_dilation=dilation, hull_softness=softness,
                        empty_weight=empty)


def main() -> None:
    """Fit each setting's residual on the photo of a ``pe3d edit`` folder; print a table, write the picture."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a pe3d edit output folder of an aligned photo (input.png, portrait.json)")
    parser.add_argument("--prompt", default="turn the person into a bronze statue")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--settings", nargs="+", default=["0", "50:0.02:128:1", "100:0.04:0:1", "200:0.04:0:0.25"])
    parser.add_argument("--picture", default="")
    args = parser.parse_args()
    folder = Path(args.folder)
    record = folder / "portrait.json"
    if not record.is_file():
        raise SystemExit(f"{record}: not found; run pe3d edit on an aligned photo (without --no-align) first")
    camera = torch.tensor(json.loads(record.read_text())["camera"], dtype=torch.float32).reshape(1, 25)
    image = load_image(folder / "input.png")[None]
    pipe = EditPipeline.from_pretrained()
    target = resize_images(image, args.resolution)
    with torch.no_grad():
        reconstruction = pipe.refinement_prior()(pipe._prepare_image(image))
        edit = pipe.edit_triplane(image, prompt=args.prompt)
    cameras = torch.cat([camera, label_from_yaw_pitch([math.radians(-30), math.radians(30)], [0.0, 0.0])])
    with torch.no_grad():
        foreground = (pipe.render(reconstruction, camera, resolution=args.resolution).weights > 0.5).to(target)
        inside = 1 - torch.nn.functional.max_pool2d(1 - foreground, 17, stride=1, padding=8)
    print("| steps | lr | fit side | share of the rays | hull (threshold / cells) | empty space weight | seconds "
          "| reconstruction PSNR at the photo's camera (dB) | the same, foreground | its inside |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for text in args.settings:
        cfg = parse_setting(text)
        start = time.perf_counter()
        residual = pipe.detail_residual(image, camera, cfg, args.resolution)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            shown = pipe.render(reconstruction + residual, camera, resolution=args.resolution).image.clamp(0, 1)
            error = (shown - target).square()
            psnr = float(-10 * torch.log10(error.mean()))
            psnr_fg, psnr_inside = (float(-10 * torch.log10((error * m).sum() / (m.sum() * error.shape[1]))) for m in (foreground, inside))
            rows.append(pipe.render((edit + residual).repeat(3, 1, 1, 1, 1), cameras, resolution=args.resolution).image.clamp(0, 1))
        side = fitting_resolution(cfg, args.resolution, reconstruction.shape[-1])
        empty = f"{cfg.empty_weight:g}" if cfg.steps else "-"
        hull = "-" if not cfg.steps else f"{cfg.hull_threshold:g} / {cfg.hull_dilation}" + (f" / soft {cfg.hull_softness}" if cfg.hull_softness > 1 else "") if cfg.hull_threshold else "off"
        print(f"| {cfg.steps} | {cfg.lr:g} | {side if cfg.steps else '-'} | {cfg.ray_fraction:g} | {hull} | {empty} | {seconds:.1f} "
              f"| {psnr:.2f} | {psnr_fg:.2f} | {psnr_inside:.2f} |")
    if args.picture:
        from PIL import Image

        grid = torch.cat([torch.cat(list(row), dim=-1) for row in rows], dim=-2)
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()).save(args.picture)
        print(f"picture: {args.picture} (rows: {', '.join(args.settings)}; columns: the photo's camera, yaw -30, yaw +30)")


if __name__ == "__main__":
    main()
