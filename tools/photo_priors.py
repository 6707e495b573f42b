"""Priors side by side on a real photo: each prior's reconstruction at the photo's camera and yaw ±30°.

    pe3d edit astronaut.png --style bronze_statue --out runs/astronaut      # aligns the photo once
    python tools/photo_priors.py runs/astronaut shipped runs/prior-long5/prior.safetensors \
        [--resolution 128] [--out runs/photo_priors.png]

The folder is one that ``pe3d edit`` wrote (its ``input.png``: the aligned crop, and
``portrait.json``: the estimated camera). Each row is one prior (``shipped`` = the shipped mini
prior): the aligned input, then the prior's render at the photo's camera, at yaw −30° and +30°,
all at ``--resolution``. Shows how a prior copes with a textured background the world never has.
"""

import argparse
import json
import math
from pathlib import Path

import torch

from pe3d.bench.plots import GridRow, image_grid
from pe3d.geometry import label_from_yaw_pitch
from pe3d.images import load_square_image, resize_images
from pe3d.models.prior import load_prior
from pe3d.weights import resolve_weights

YAWS_DEG = (-30.0, 30.0)


def photo_camera(folder: Path) -> torch.Tensor:
    """The ``[25]`` camera ``pe3d edit`` estimated for the photo (``portrait.json``'s ``camera``)."""
    path = folder / "portrait.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (run `pe3d edit PHOTO --out {folder}` first)")
    camera = json.loads(path.read_text()).get("camera")
    if not isinstance(camera, list) or len(camera) != 25:
        raise SystemExit(f"{path}: field 'camera' must be a list of 25 numbers")
    return torch.tensor(camera, dtype=torch.float32)


@torch.no_grad()
def prior_row(name: str, image: torch.Tensor, camera: torch.Tensor, resolution: int) -> GridRow:
    """Input, then the prior's renders at the photo's camera and at yaw ±30° (pitch of the photo's camera: 0)."""
    prior = load_prior(resolve_weights("" if name == "shipped" else name, "prior_mini")).eval()
    planes = prior(resize_images(image[None], prior.cfg.encoder.image_size))
    cameras = torch.cat([camera[None], label_from_yaw_pitch([math.radians(y) for y in YAWS_DEG], [0.0] * len(YAWS_DEG))])
    renders = prior.render(planes.expand(cameras.shape[0], -1, -1, -1, -1), cameras, resolution=resolution)
    return GridRow(Path(name).parent.name or name, [image, *renders.image.clamp(0, 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder `pe3d edit` wrote (input.png, portrait.json)")
    parser.add_argument("priors", nargs="+", help="prior .safetensors files (shipped = pe3d/weights/prior_mini)")
    parser.add_argument("--resolution", type=int, default=128, help="render side in pixels")
    parser.add_argument("--out", default="runs/photo_priors.png", help="PNG written (atomically)")
    args = parser.parse_args()
    source = args.folder / "input.png"
    if not source.is_file():
        raise SystemExit(f"{source}: not found (run `pe3d edit PHOTO --out {args.folder}` first)")
    image = load_square_image(source, args.resolution)
    camera = photo_camera(args.folder)
    rows = [prior_row(name, image, camera, args.resolution) for name in args.priors]
    columns = ["aligned input", "photo camera", "yaw -30", "yaw +30"]
    path = image_grid(rows, columns, args.out, cell=args.resolution, title=f"priors on {args.folder}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
