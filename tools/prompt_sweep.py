"""Every train and test prompt of the 6 distilled styles, scored for one or more editors.

    python tools/prompt_sweep.py EDITOR.safetensors [EDITOR2.safetensors ...]

Per prompt: mean PSNR over 8 held-out world identities and the input + yaw -30/+30 views (64²
renders) against the style filter applied to the ground-truth views; then each editor's mean over
train and over test prompts. ``pe3d bench quality`` scores one prompt of each kind per style; this
sweep shows how an editor follows every paraphrase (the README's word-bag comparison). It scores
with :mod:`pe3d.evaluation`, the path of ``pe3d demo``, ``pe3d eval`` and ``pe3d bench``.
"""

import sys

import torch

from pe3d.evaluation import PerViewScores, WorldEvalConfig, build_world_eval_set, model_inputs, render_views
from pe3d.evaluation.world import edit_with_prompt, filter_targets, style_filter_name, style_prompts
from pe3d.models.editor import load_editor
from pe3d.styles.discovery import load_named_style

STYLES = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]


@torch.no_grad()
def main(paths: list[str]) -> None:
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=[], novel_pitches_deg=[]))
    names = data.plan.scored
    editors = {p: load_editor(p).eval() for p in paths}
    inputs = {p: model_inputs(data, editor.cfg.prior.encoder.image_size) for p, editor in editors.items()}
    means = {p: {"train": [], "test": []} for p in editors}
    for style in STYLES:
        spec = load_named_style(style)
        views = filter_targets(data.truth, style_filter_name(spec)).views
        for split in ("train", "test"):
            for prompt in style_prompts(spec, split=split):
                row = []
                for path, editor in editors.items():
                    planes = edit_with_prompt(editor, inputs[path], prompt)
                    scores = PerViewScores(names)
                    scores.update(render_views(editor.render, planes, views, names, data.resolution), views)
                    value = sum(v["psnr"] for v in scores.compute().values()) / len(names)
                    means[path][split].append(value)
                    row.append(f"{value:.2f}")
                print(style, split, " ".join(row), "|", prompt, flush=True)
    for path, by_split in means.items():
        print(path, " ".join(f"mean {k} {sum(v) / len(v):.2f}" for k, v in by_split.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
