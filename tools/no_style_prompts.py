"""Prompts that name no style: what the editor makes of them, and what ``pe3d edit`` returns for them.

    python tools/no_style_prompts.py [EDITOR.safetensors] [--out-of-scope tools/out_of_scope_prompts.yaml]
        [--in-scope tools/validation_prompts_no_style_word.yaml] [--picture OUT.png]

The mini editor's text tower knows only its training prompts' words. A prompt that holds none of the words that
tell a style from the others (:meth:`pe3d.prompt_vocabulary.PromptVocabulary.names_no_style`, after the compound
and WordNet readings) tells it nothing; :meth:`pe3d.pipeline.EditPipeline.edit_triplane` returns the portrait
unedited for it (the prior's reconstruction, with a warning) instead of the editor's output. Two prompt sets,
both written before any run scored them, mean PSNR over 8 held-out world identities and the input + yaw -30/+30
views (the protocol of ``tools/prompt_sweep.py``):

* *out of scope* (``tools/out_of_scope_prompts.yaml``): edits no distilled style makes ("make the person smile"),
  scored against the unedited ground truth, the answer a user would accept from an editor that cannot do them;
  the table also says which distilled style's target each editor output is nearest.
* *in scope* (``tools/validation_prompts_no_style_word.yaml``): paraphrases of a style that hold no word of it,
  scored against that style's target, to show what returning them unedited costs.

Each row: the prompt as read, whether it names no style, the editor's own output (``unedited_without_style``
off) and what the pipeline returns.
"""

import argparse
import warnings
from pathlib import Path

import torch
import yaml

from pe3d.evaluation import WorldEvalConfig, build_world_eval_set, model_inputs
from pe3d.evaluation.world import filter_targets, planes_psnr, render_views, style_filter_name
from pe3d.pipeline import EditPipeline
from pe3d.styles.discovery import load_named_style

STYLES = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]


def psnr(pipe: EditPipeline, planes, views, names, resolution) -> float:
    """Mean PSNR over the named views of ``planes`` rendered by the pipeline's editor."""
    return planes_psnr(pipe.editor.render, planes, views, names, resolution)


def planes_of(pipe: EditPipeline, inputs, prompt: str, rule: bool):
    """The pipeline's triplanes of ``inputs`` under ``prompt``, with the no-style rule on or off."""
    pipe.unedited_without_style = rule
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pipe.edit_triplane(inputs, prompt=prompt)
    finally:
        pipe.unedited_without_style = True


@torch.no_grad()
def main(weights: str | None, out_of_scope: list[str], in_scope: dict[str, list[str]], out: str | None = None) -> None:
    """Print both tables (Markdown) for the editor ``weights`` (default the shipped one); ``out``: the picture."""
    pipe = EditPipeline.from_pretrained(weights)
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=[], novel_pitches_deg=[]))
    names, resolution = data.plan.scored, data.resolution
    inputs = model_inputs(data, pipe.editor.cfg.prior.encoder.image_size)
    targets = {s: filter_targets(data.truth, style_filter_name(load_named_style(s))).views for s in STYLES}
    unedited = data.truth.views
    if out:
        picture(pipe, inputs, out_of_scope[0], names, unedited, resolution, out)
    print("| set | prompt | read as | names no style | editor vs unedited | returned vs unedited | editor nearest style (dB) |")
    print("|---|---|---|---|---|---|---|")
    rows = {"editor": [], "returned": []}
    for prompt in out_of_scope:
        editor_planes = planes_of(pipe, inputs, prompt, rule=False)
        returned = planes_of(pipe, inputs, prompt, rule=True)
        a, b = psnr(pipe, editor_planes, unedited, names, resolution), psnr(pipe, returned, unedited, names, resolution)
        near = max(((psnr(pipe, editor_planes, targets[s], names, resolution), s) for s in STYLES))
        rows["editor"].append(a)
        rows["returned"].append(b)
        print(f"| out of scope | {prompt} | {pipe.editor.read_prompt(prompt)} | {pipe.names_no_style(prompt)} | "
              f"{a:.2f} | {b:.2f} | {near[1]} {near[0]:.2f} |", flush=True)
    n = len(out_of_scope)
    print(f"| out of scope, mean of {n} | | | {sum(map(pipe.names_no_style, out_of_scope))} of {n} | "
          f"{sum(rows['editor']) / n:.2f} | {sum(rows['returned']) / n:.2f} | |")
    print()
    print("| set | style | prompt | read as | names no style | editor vs style target | returned vs style target |")
    print("|---|---|---|---|---|---|---|")
    ins = {"editor": [], "returned": []}
    for style, prompts in in_scope.items():
        for prompt in prompts:
            a = psnr(pipe, planes_of(pipe, inputs, prompt, rule=False), targets[style], names, resolution)
            b = psnr(pipe, planes_of(pipe, inputs, prompt, rule=True), targets[style], names, resolution)
            ins["editor"].append(a)
            ins["returned"].append(b)
            print(f"| in scope | {style} | {prompt} | {pipe.editor.read_prompt(prompt)} | {pipe.names_no_style(prompt)} | "
                  f"{a:.2f} | {b:.2f} |", flush=True)
    m = len(ins["editor"])
    print(f"| in scope, mean of {m} | | | | | {sum(ins['editor']) / m:.2f} | {sum(ins['returned']) / m:.2f} |")


def picture(pipe: EditPipeline, inputs, prompt: str, names, views, resolution: int, out: str, count: int = 4) -> None:
    """``out`` (PNG): for ``count`` identities at the input view, the input | the editor's own output | what the
    pipeline returns, under ``prompt``."""
    from PIL import Image

    from pe3d.turntable import to_uint8

    front = names[0]
    rows = []
    for rule in (False, True):
        planes = planes_of(pipe, inputs, prompt, rule)
        rows.append(render_views(pipe.editor.render, planes, {front: views[front]}, [front], resolution)[front].image[:count])
    tiles = [torch.nn.functional.interpolate(inputs[:count], size=rows[0].shape[-2:], mode="bilinear",
                                             antialias=True, align_corners=False), *rows]
    grid = torch.cat([torch.cat(list(t.clamp(0, 1)), dim=2) for t in tiles], dim=1)  # rows: input, editor, returned
    Image.fromarray(to_uint8(grid)).resize((grid.shape[2] * 2, grid.shape[1] * 2), Image.NEAREST).save(out)
    print(f"picture: {out} (rows: input | editor's own output | returned, prompt {prompt!r})")


def read_prompts(path: str, key: str | None = None):
    """A YAML prompt file: the list under ``key``, or the style -> prompts mapping."""
    if not Path(path).is_file():
        raise SystemExit(f"{path}: no such prompt file")
    with open(path) as handle:
        data = yaml.safe_load(handle)
    if key is not None:
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise SystemExit(f"{path}: expected a list under {key!r}")
        return [str(p) for p in data[key]]
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping style -> prompts")
    return {str(style): [str(p) for p in prompts] for style, prompts in data.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", help="editor .safetensors (default: the shipped one)")
    parser.add_argument("--out-of-scope", default="tools/out_of_scope_prompts.yaml")
    parser.add_argument("--in-scope", default="tools/validation_prompts_no_style_word.yaml")
    parser.add_argument("--picture", help="PNG: input | editor | returned for the first out-of-scope prompt")
    args = parser.parse_args()
    main(args.weights, read_prompts(args.out_of_scope, "prompts"), read_prompts(args.in_scope), args.picture)
