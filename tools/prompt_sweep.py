"""Every train and test prompt of the 6 distilled styles, scored for one or more editors.

    python tools/prompt_sweep.py EDITOR.safetensors [EDITOR2.safetensors ...] [--validation FILE]

Per prompt: mean PSNR over 8 held-out world identities and the input + yaw -30/+30 views (64²
renders) against the style filter applied to the ground-truth views; then each editor's mean over
train and over test (and validation) prompts. ``pe3d bench quality`` scores one prompt of each kind per style; this
sweep shows how an editor follows every paraphrase (the README's word-bag comparison). It scores
with :mod:`pe3d.evaluation`, the path of ``pe3d demo``, ``pe3d eval`` and ``pe3d bench``.

``--validation FILE`` (YAML: style name -> prompts, e.g. ``tools/validation_prompts.yaml``) also
scores a third kind of prompt, neither train nor test, for choosing between training recipes
without looking at the test prompts.
"""

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from pe3d.evaluation import WorldEvalConfig, build_world_eval_set, model_inputs
from pe3d.evaluation.world import filter_targets, prompt_psnr, style_filter_name, style_prompts
from pe3d.models.editor import load_editor
from pe3d.styles.discovery import load_named_style

STYLES = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]


@torch.no_grad()
def main(paths: list[str], validation: dict[str, list[str]] | None = None) -> None:
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=[], novel_pitches_deg=[]))
    names = data.plan.scored
    editors = {p: load_editor(p).eval() for p in paths}
    inputs = {p: model_inputs(data, editor.cfg.prior.encoder.image_size) for p, editor in editors.items()}
    splits = ("train", "test", "validation") if validation else ("train", "test")
    means = {p: {split: [] for split in splits} for p in editors}
    for style in STYLES:
        spec = load_named_style(style)
        views = filter_targets(data.truth, style_filter_name(spec)).views
        for split in splits:
            for prompt in validation[style] if split == "validation" else style_prompts(spec, split=split):
                row = []
                for path, editor in editors.items():
                    value = prompt_psnr(editor, inputs[path], prompt, views, names, data.resolution)
                    means[path][split].append(value)
                    row.append(f"{value:.2f}")
                print(style, split, " ".join(row), "|", prompt, flush=True)
    for path, by_split in means.items():
        print(path, " ".join(f"mean {k} {sum(v) / len(v):.2f}" for k, v in by_split.items()))


def read_validation(path: Path) -> dict[str, list[str]]:
    """The validation prompts of each of ``STYLES`` from a YAML mapping; names the file and style on error."""
    if not path.is_file():
        raise SystemExit(f"validation prompts: no such file {path}")
    data = OmegaConf.to_container(OmegaConf.load(path))
    missing = [s for s in STYLES if not isinstance(data, dict) or not data.get(s)]
    if missing:
        raise SystemExit(f"{path}: no validation prompts for {missing}")
    return {s: [str(p) for p in data[s]] for s in STYLES}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("editors", nargs="+", type=Path, help="editor .safetensors files")
    parser.add_argument("--validation", type=Path, help="YAML: style -> validation prompts")
    args = parser.parse_args()
    main([str(p) for p in args.editors], read_validation(args.validation) if args.validation else None)
