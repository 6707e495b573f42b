"""Two editors' (or two renderer settings') feed-forward edits of one aligned photo, with a high-pass view that
shows straight lines.

    pe3d edit astronaut.png --style bronze_statue --out runs/astro-ff --resolution 128
    python tools/background_lines.py runs/astro-ff --b runs/border0/editor.safetensors \
        --out docs/results/quality/border_inference/astronaut_lines.png
    python tools/background_lines.py runs/astro-ff --a-ray-march wall_face_blend=0 --yaws -30 -15 15 30 \
        --out docs/results/quality/border_inference/astronaut_back_blend.png

Reads the aligned input (``input.png``) and camera (``portrait.json``) that ``pe3d edit`` wrote in its
output folder, resizes the input as the pipeline does (:func:`pe3d.images.resize_images`), edits the input with
editor A and editor B (default: both shipped) with ``--prompt`` and renders both at the photo's camera, or at
``--yaws`` (degrees, pitch 0), at ``--resolution``; ``--a-ray-march`` / ``--b-ray-march`` set
:class:`~pe3d.rendering.volume.RayMarchOptions` fields of that side's renderer (``KEY=VALUE``). The picture, one row
per camera: A, B, then each one's high-pass (the render minus its 9 x 9 box blur, x8 around grey), where the edges of
the triplane box's background read show up as lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch


def ray_march_overrides(pairs: list[str]) -> dict[str, object]:
    """``["KEY=VALUE", ...]`` -> typed :class:`~pe3d.rendering.volume.RayMarchOptions` field values."""
    from pe3d.rendering.volume import RayMarchOptions

    fields = {f.name: f for f in dataclasses.fields(RayMarchOptions)}
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(f"--*-ray-march {pair!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        default = getattr(RayMarchOptions(), key)
        values[key] = type(default)(text) if default is not None else float(text)
    return values


def main() -> None:
    """Render A and B side by side with their high-pass; write the picture."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a `pe3d edit` output folder (input.png, portrait.json)")
    parser.add_argument("--a", default="shipped", help="editor A (file or 'shipped')")
    parser.add_argument("--b", default="shipped", help="editor B (file or 'shipped')")
    parser.add_argument("--a-ray-march", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--b-ray-march", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument("--yaws", nargs="*", type=float, default=[], help="render at these yaws (degrees) instead")
    parser.add_argument("--prompt", default="turn the person into a bronze statue")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import torch.nn.functional as F
    from PIL import Image

    from pe3d.bench.methods import edit_with_prompt
    from pe3d.geometry import label_from_yaw_pitch
    from pe3d.images import load_image, resize_images
    from pe3d.models.editor import load_editor
    from pe3d.weights import shipped_path

    if args.yaws:
        cameras = label_from_yaw_pitch([math.radians(y) for y in args.yaws], [0.0] * len(args.yaws))
    else:
        cameras = torch.tensor(json.loads((args.folder / "portrait.json").read_text())["camera"], dtype=torch.float32)[None]
    columns = []
    with torch.no_grad():
        for source, overrides in ((args.a, args.a_ray_march), (args.b, args.b_ray_march)):
            editor = load_editor(shipped_path("editor_mini") if source == "shipped" else source).eval()
            for key, value in ray_march_overrides(overrides).items():
                setattr(editor.renderer.config.ray_march, key, value)
            size = editor.cfg.prior.encoder.image_size
            image = resize_images(load_image(args.folder / "input.png")[None], size)
            planes = edit_with_prompt(editor, image, args.prompt)
            renders = editor.render(planes.expand(len(cameras), -1, -1, -1, -1), cameras, resolution=args.resolution,
                                    images_only=True).image.clamp(0, 1)
            blur = F.avg_pool2d(renders, 9, 1, 4, count_include_pad=False)
            columns.append((renders, ((renders - blur) * 8 + 0.5).clamp(0, 1)))
    rows = [torch.cat([columns[0][0][i], columns[1][0][i], columns[0][1][i], columns[1][1][i]], dim=-1)
            for i in range(len(cameras))]
    sheet = torch.cat(rows, dim=-2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((sheet.permute(1, 2, 0) * 255).round().byte().numpy()).save(args.out)
    print(f"{args.out}: A = {args.a} {args.a_ray_march}, B = {args.b} {args.b_ray_march}, prompt {args.prompt!r}, "
          f"{args.resolution}^2, {'yaws ' + str(args.yaws) if args.yaws else 'the photo camera'}")


if __name__ == "__main__":
    main()
