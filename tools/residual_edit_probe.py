"""Would an editor that adds its edit to the prior's triplane do better? A probe without training.

    python tools/residual_edit_probe.py EDITOR PRIOR "NO-EDIT PROMPT"

For every test prompt of the 6 distilled styles on the benchmark's 8 held-out identities, renders
``editor(I, prompt)`` and ``prior(I) + editor(I, prompt) - editor(I, no-edit prompt)`` (the editor's edit as a
difference of triplanes, moved onto the prior's reconstruction) at the benchmark's views, and prints the mean
PSNR per view of each against the style's filter of the ground truth (the editor's row equals
``pe3d bench quality``'s "ours (every test prompt)"). Meant for an editor distilled with a no-edit prompt (the
keep anchor of docs/results/quality/visibility.md); the editor's and the prior's triplanes must match.
"""

import argparse
from collections import defaultdict

import torch

from pe3d.evaluation import PerViewScores, WorldEvalConfig, build_world_eval_set, edit_with_prompt, model_inputs, render_views
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior

STYLES = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("editor")
    parser.add_argument("prior")
    parser.add_argument("no_edit_prompt")
    args = parser.parse_args()
    editor, prior = load_editor(args.editor).eval(), load_prior(args.prior).eval()
    data = build_world_eval_set(WorldEvalConfig(identities=8, styles=STYLES, prompts_per_style=0))
    names = data.plan.scored
    images = model_inputs(data, editor.cfg.prior.encoder.image_size)
    reconstruction = prior(model_inputs(data, prior.cfg.encoder.image_size))
    unedited = edit_with_prompt(editor, images, args.no_edit_prompt)
    psnr = defaultdict(lambda: defaultdict(list))
    for case in data.cases:
        edited = edit_with_prompt(editor, images, case.prompt)
        for label, planes in (("editor", edited), ("prior + edit", reconstruction + edited - unedited)):
            scores = PerViewScores(names)
            scores.update(render_views(editor.render, planes, case.targets.views, names, data.resolution), case.targets.views)
            for name, value in scores.compute().items():
                psnr[label][name].append(value["psnr"])
    for label, views in psnr.items():
        print(f"{label:13s}", " ".join(f"{name} {sum(v) / len(v):.2f}" for name, v in views.items()))


if __name__ == "__main__":
    main()
