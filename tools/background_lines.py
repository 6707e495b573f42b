"""Two editors' feed-forward edits of one aligned photo, with a high-pass view that shows straight lines.

    pe3d edit astronaut.png --style bronze_statue --out runs/astro-ff --resolution 128
    python tools/background_lines.py runs/astro-ff --b runs/border0/editor.safetensors \
        --out docs/results/quality/border_inference/astronaut_lines.png

Reads the aligned input (``input.png``) and camera (``portrait.json``) that ``pe3d edit`` wrote in its
output folder, resizes the input as the pipeline does (:func:`pe3d.images.resize_images`), edits the input with editor A (default: shipped) and editor B with ``--prompt`` and renders
both at the photo's camera at ``--resolution``. The picture: A, B, then each one's high-pass (the render
minus its 9 x 9 box blur, x8 around grey), where the straight edges of the triplane box's background
read show up as lines.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a `pe3d edit` output folder (input.png, portrait.json)")
    parser.add_argument("--a", default="shipped", help="editor A (file or 'shipped')")
    parser.add_argument("--b", required=True, help="editor B (file or 'shipped')")
    parser.add_argument("--prompt", default="turn the person into a bronze statue")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch.nn.functional as F
    from PIL import Image

    from pe3d.bench.methods import edit_with_prompt
    from pe3d.images import load_image, resize_images
    from pe3d.models.editor import load_editor
    from pe3d.weights import shipped_path

    camera = torch.tensor(json.loads((args.folder / "portrait.json").read_text())["camera"], dtype=torch.float32)[None]
    renders, high_pass = [], []
    with torch.no_grad():
        for source in (args.a, args.b):
            editor = load_editor(shipped_path("editor_mini") if source == "shipped" else source).eval()
            size = editor.cfg.prior.encoder.image_size
            image = resize_images(load_image(args.folder / "input.png")[None], size)
            planes = edit_with_prompt(editor, image, args.prompt)
            render = editor.render(planes, camera, resolution=args.resolution, images_only=True).image[0].clamp(0, 1)
            blur = F.avg_pool2d(render[None], 9, 1, 4, count_include_pad=False)[0]
            renders.append(render)
            high_pass.append(((render - blur) * 8 + 0.5).clamp(0, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet = torch.cat(renders + high_pass, dim=-1)
    Image.fromarray((sheet.permute(1, 2, 0) * 255).round().byte().numpy()).save(args.out)
    print(f"{args.out}: A = {args.a}, B = {args.b}, prompt {args.prompt!r}, {args.resolution}^2")


if __name__ == "__main__":
    main()
