"""What test-time detail refinement (:mod:`pe3d.refinement`) does on held-out world identities.

    python tools/refine_study.py [--steps 0 25 50 100] [--identities 8] [--editor FILE] [--prior FILE]
        [--lr 0.04] [--residual-weight 0.1] [--ray-fraction 0.25] [--hull-threshold 0.3] [--hull-dilation 2] [--hull-softness 0] [--empty-weight 10]
        [--skip-teacher] [--per-style] [--transfer colour luminance] [--picture runs/refine_study.png]
        [--picture-style bronze_statue] [--strengths 0.5 1.0] [--offset 0]

For each number of refinement steps: the prior's reconstruction plus the residual fitted to the input
(PSNR against the unedited ground truth at the input view, yaw -30/+30 and pitch -15/+15), the shipped
editor's edits plus the same residual for the 6 distilled styles (the bench's train and test prompt of
each; PSNR against the style filter applied to the ground truth at each camera), the two-stage teacher
(filter, then the prior) plus the residual fitted to *its* input (the filtered image), and the seconds per
image the fit took. Everything is scored as ``pe3d bench quality`` scores it (same identities, cameras,
targets, prompts).
"""

from __future__ import annotations

import argparse
import time

import torch

from pe3d.bench.config import QualityBenchmark
from pe3d.bench.evaluation import filter_edit
from pe3d.bench.quality import world_config
from pe3d.evaluation.world import PerViewScores, build_world_eval_set, edit_with_prompt, model_inputs, render_views, style_prompts
from pe3d.models.editor import load_editor
from pe3d.models.prior import load_prior
from pe3d.refinement import RefineConfig, fit_detail_residual
from pe3d.styles.discovery import load_named_style
from pe3d.weights import resolve_weights


def psnr_per_view(render, planes, views, names, resolution) -> dict[str, float]:
    scores = PerViewScores(names)
    scores.update(render_views(render, planes, views, names, resolution), views)
    return {name: values["psnr"] for name, values in scores.compute().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs="+", default=[0, 25, 50, 100])
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--editor", default="")
    parser.add_argument("--prior", default="")
    parser.add_argument("--lr", type=float, default=RefineConfig.lr)
    parser.add_argument("--residual-weight", type=float, default=RefineConfig.residual_weight)
    parser.add_argument("--planes", default=RefineConfig.planes, help="planes the residual may change: all or front")
    parser.add_argument("--ray-fraction", type=float, default=RefineConfig.ray_fraction,
                        help="share of the rays each step renders (1 = every ray, the setting before 2026-12-06)")
    parser.add_argument("--hull-threshold", type=float, default=RefineConfig.hull_threshold,
                        help="keep the residual to the reconstruction's visual hull (an opacity; 0 = off)")
    parser.add_argument("--hull-dilation", type=int, default=RefineConfig.hull_dilation)
    parser.add_argument("--hull-softness", type=int, default=RefineConfig.hull_softness,
                        help="cells (odd) over which the hull's mask falls to 0 (0 = a hard edge)")
    parser.add_argument("--empty-weight", type=float, default=RefineConfig.empty_weight,
                        help="weight of the term keeping the reconstruction's empty space empty (0 = off)")
    parser.add_argument("--per-style", action="store_true", help="also a row per style for the test prompts")
    parser.add_argument("--strengths", type=float, nargs="*", default=[],
                        help="also a row per style for the test prompts with the residual scaled by each of these")
    parser.add_argument("--offset", type=int, default=0,
                        help="first held-out identity (1,000,000 + offset): choose settings on one set, report on another")
    parser.add_argument("--transfer", nargs="*", default=[], choices=["colour", "luminance"],
                        help="also rows for a residual fitted on each edit to the edit's render plus the detail the "
                             "reconstruction misses (the input minus its render; 'luminance': its channel mean)")
    parser.add_argument("--skip-teacher", action="store_true", help="leave out the refined two-stage teacher's rows (the slow part)")
    parser.add_argument("--picture", default="", help="write a grid (target | feed-forward | refined at each view) of --picture-style")
    parser.add_argument("--picture-style", default="bronze_statue", help="the style the picture shows")
    args = parser.parse_args()

    bench = QualityBenchmark(identities=args.identities)
    styles = list(bench.styles)
    world = world_config(bench, styles)
    world.offset = args.offset
    data = build_world_eval_set(world)
    names = data.plan.scored
    editor = load_editor(resolve_weights(args.editor, "editor_mini")).eval()
    prior = load_prior(resolve_weights(args.prior, "prior_mini")).eval()
    inputs = model_inputs(data, editor.cfg.prior.encoder.image_size)
    target = data.rgb
    with torch.no_grad():
        reconstruction = prior(inputs)
        edits, filtered, teacher = {}, {}, {}
        for style in styles:
            case = next(c for c in data.cases if c.style == style)
            train = style_prompts(load_named_style(style), split="train")[0]
            edits[style] = {"train": edit_with_prompt(editor, inputs, train), "test": edit_with_prompt(editor, inputs, case.prompt)}
            filtered[style] = filter_edit(case.filter_name, data.parts, inputs)
            teacher[style] = prior(filtered[style])

    def row(label, values):
        print(f"| {label} | " + " | ".join(f"{values[n]:.2f}" for n in names) + " |")

    def mean(per_style):
        return {n: sum(v[n] for v in per_style) / len(per_style) for n in names}

    print("| row | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    pictures = {}
    for steps in args.steps:
        cfg = RefineConfig(steps=steps, lr=args.lr, residual_weight=args.residual_weight, planes=args.planes,
                           ray_fraction=args.ray_fraction, hull_threshold=args.hull_threshold, hull_dilation=args.hull_dilation,
                           hull_softness=args.hull_softness,
                           empty_weight=args.empty_weight)
        start = time.perf_counter()
        residual = fit_detail_residual(editor.render, reconstruction, target, data.labels, cfg, frozen=editor,
                                       resolution=data.resolution, renderer=editor.renderer)
        seconds = (time.perf_counter() - start) / target.shape[0]
        row(f"prior + {steps}-step residual ({seconds:.2f} s/image)", psnr_per_view(editor.render, reconstruction + residual,
                                                                               data.truth.views, names, data.resolution))
        for split in ("train", "test"):
            per_style = []
            for style in styles:
                case = next(c for c in data.cases if c.style == style)
                per_style.append(psnr_per_view(editor.render, edits[style][split] + residual, case.targets.views, names,
                                               data.resolution))
            row(f"ours, {split} prompts, + {steps}-step residual (mean of 6 styles)", mean(per_style))
            if args.per_style and split == "test":
                for style, values in zip(styles, per_style):
                    row(f"{style}, test prompt, + {steps}-step residual", values)
            if split == "test":
                for strength in args.strengths:
                    for style in styles:
                        case = next(c for c in data.cases if c.style == style)
                        row(f"{style}, test prompt, + {strength:g} x {steps}-step residual",
                            psnr_per_view(editor.render, edits[style][split] + strength * residual, case.targets.views, names,
                                          data.resolution))
        pictures[steps] = residual
        for mode in args.transfer:
            per_style = transferred_detail(editor, reconstruction, target, data, edits, styles, cfg, mode, names)
            row(f"ours, test prompts, {steps}-step fit of the edit to its render + the {mode} missing detail (mean of 6 styles)",
                mean(per_style))
            if args.per_style:
                for style, values in zip(styles, per_style):
                    row(f"{style}, test prompt, {steps}-step fit of the edit, {mode} detail", values)
        if args.skip_teacher:
            continue
        per_style = []
        for style in styles:
            case = next(c for c in data.cases if c.style == style)
            own = fit_detail_residual(prior.render, teacher[style], filtered[style], data.labels, cfg, frozen=prior,
                                      resolution=data.resolution, renderer=prior.renderer)
            per_style.append(psnr_per_view(prior.render, teacher[style] + own, case.targets.views, names, data.resolution))
        row(f"two-stage teacher + {steps}-step residual of its own input (mean of 6 styles)", mean(per_style))
    if args.picture:
        from pe3d.bench.plots import GridRow, image_grid

        case = next(c for c in data.cases if c.style == args.picture_style)
        rows = []
        for i in range(2):
            rows.append(GridRow(f"id {i}: target", [case.targets.views[n].image[i] for n in names]))
            for steps, residual in pictures.items():
                if steps not in (min(pictures), max(pictures)):
                    continue
                renders = render_views(editor.render, edits[args.picture_style]["test"][i : i + 1] + residual[i : i + 1],
                                       {n: _one(case.targets.views[n], i) for n in names}, names, data.resolution)
                rows.append(GridRow(f"id {i}: ours + {steps}", [renders[n].image[0].clamp(0, 1) for n in names]))
                for strength in args.strengths if steps == max(pictures) else ():
                    planes = edits[args.picture_style]["test"][i : i + 1] + strength * residual[i : i + 1]
                    renders = render_views(editor.render, planes, {n: _one(case.targets.views[n], i) for n in names}, names,
                                           data.resolution)
                    rows.append(GridRow(f"id {i}: + {strength:g} x {steps}", [renders[n].image[0].clamp(0, 1) for n in names]))
        print("picture:", image_grid(rows, names, args.picture, cell=80, title=f"{args.picture_style}, test prompt: refinement steps"))




def transferred_detail(editor, reconstruction, target, data, edits, styles, cfg, mode, names) -> list[dict]:
    """Per style, the PSNR per view of each test-prompt edit plus a residual fitted on *the edit* to the edit's own
    render plus the detail its reconstruction misses at the input view (``target`` minus the reconstruction's render;
    ``mode`` "luminance": that difference's mean over the colour channels, so that the detail carries no colour)."""
    with torch.no_grad():
        missing = target - editor.render(reconstruction, data.labels, resolution=data.resolution).image
        if mode == "luminance":
            missing = missing.mean(dim=1, keepdim=True).expand_as(missing)
    per_style = []
    for style in styles:
        case = next(c for c in data.cases if c.style == style)
        edit = edits[style]["test"]
        with torch.no_grad():
            goal = (editor.render(edit, data.labels, resolution=data.resolution).image + missing).clamp(0, 1)
        own = fit_detail_residual(editor.render, edit, goal, data.labels, cfg, frozen=editor, resolution=data.resolution,
                                  renderer=editor.renderer)
        per_style.append(psnr_per_view(editor.render, edit + own, case.targets.views, names, data.resolution))
    return per_style


def _one(view, i):
    from dataclasses import replace

    return replace(view, labels=view.labels[i : i + 1])


if __name__ == "__main__":
    main()
