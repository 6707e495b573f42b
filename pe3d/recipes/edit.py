"""``pe3d edit``: a portrait file in, the edited image, a turntable GIF and depth maps out.

The photo is centre-cropped to a square and resized to the model's input; there is no face
detection or camera estimation yet (the input camera is the frontal FFHQ camera), so it works
best on portraits framed like FFHQ or the embedded world.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pe3d.images import center_square, load_image
from pe3d.pipeline import EditPipeline
from pe3d.turntable import depth_to_gray, to_uint8, turntable_cameras, write_turntable_gif


def resolve_style_prompt(pipe: EditPipeline, style: str) -> str:
    """Load ``style``'s adapter when it has one and return the text prompt to use with it."""
    from pe3d.styles.adapters import ADAPTER_FILE
    from pe3d.styles.discovery import find_style, load_named_style

    spec = load_named_style(style)
    folder = find_style(style)
    if (folder / ADAPTER_FILE).is_file():
        pipe.set_adapter(pipe.load_adapter(folder))
    return (spec.prompts.test or spec.prompts.train)[0]


def edit_photo(
    photo: str | Path,
    out: str | Path,
    style: str | None = None,
    prompt: str | None = None,
    prompt_image: str | Path | None = None,
    views: int = 24,
    strength: float = 1.0,
    weights: str | None = None,
    resolution: int = 64,
) -> dict[str, Path]:
    """Edit one photo; returns the written files by kind."""
    if sum(x is not None for x in (style, prompt, prompt_image)) == 0:
        raise ValueError("give --style NAME, --prompt TEXT or --prompt-image FILE")
    pipe = EditPipeline.from_pretrained(weights)
    if style is not None:
        prompt = prompt or resolve_style_prompt(pipe, style)
    image = center_square(load_image(photo))
    reference = center_square(load_image(prompt_image)) if prompt_image is not None else None
    front = pipe(image, prompt=prompt, prompt_image=reference, strength=strength, resolution=resolution)
    turn = pipe(image, prompt=prompt, prompt_image=reference, strength=strength, cameras=turntable_cameras(views), resolution=resolution)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"edited": out / "edited.png", "depth": out / "depth.png", "turntable": out / "turntable.gif"}
    Image.fromarray(to_uint8(front.image[0])).save(files["edited"])
    Image.fromarray(to_uint8(depth_to_gray(front.depth[0]))).save(files["depth"])
    write_turntable_gif(image, turn.views[0], turn.depths[0], files["turntable"])
    return files
