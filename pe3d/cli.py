"""``pe3d`` command line: parse, load the config, call the library.

Commands:
    pe3d world --out DIR --count N           sample renders + turntable GIF of the world
    pe3d fit prior|distill|adapt [--config YAML] [--resume] [key=value ...]
    pe3d pairs --style NAME [--count N]      write (or resume) a style's pairs
    pe3d styles                              list discovered styles
    pe3d edit PHOTO --style NAME --out DIR    edited image, depth and turntable of a portrait
    pe3d demo --out DIR                      prior -> base editor -> adapt -> turntable + metrics
    pe3d eval prior --weights FILE           quality table on held-out identities
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _cmd_world(args: argparse.Namespace) -> int:
    from pe3d.world.preview import write_world_preview

    paths = write_world_preview(Path(args.out), count=args.count, seed=args.seed, resolution=args.resolution, split=args.split)
    print(f"wrote {len(paths)} files to {args.out}")
    return 0


def _cmd_fit(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.system == "prior":
        from pe3d.recipes.prior import fit_prior, load_prior_fit_config

        fit_prior(load_prior_fit_config(args.config, overrides), resume=args.resume)
        return 0
    from pe3d.config import load_fit_config
    from pe3d.recipes.editing import AdaptFitConfig, DistillFitConfig, fit_adapt, fit_distill

    if args.system == "distill":
        if args.styles:
            overrides.append(f"styles=[{args.styles}]")
        fit_distill(load_fit_config(DistillFitConfig, args.config, overrides), resume=args.resume)
    else:
        if args.style:
            overrides.append(f"style={args.style}")
        fit_adapt(load_fit_config(AdaptFitConfig, args.config, overrides), resume=args.resume)
    return 0


def _cmd_pairs(args: argparse.Namespace) -> int:
    from pe3d.data.pairs import write_pairs
    from pe3d.styles.discovery import load_named_style

    spec = load_named_style(args.style)
    out = Path(args.out) if args.out else Path("runs/pairs") / spec.name
    manifest = write_pairs(spec, out, count=args.count)
    print(f"pairs of {spec.name!r} in {manifest.parent} (manifest: {manifest.name})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pe3d.recipes.demo import run_demo

    run_demo(Path(args.out), style=args.style, train=args.train, adapt_minutes=args.adapt_minutes, eval_count=args.count)
    return 0


def _cmd_edit(args: argparse.Namespace) -> int:
    from pe3d.recipes.edit import edit_photo

    files = edit_photo(args.photo, args.out, style=args.style, prompt=args.prompt, prompt_image=args.prompt_image,
                       views=args.views, strength=args.strength, weights=args.weights)
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0


def _cmd_styles(args: argparse.Namespace) -> int:
    from pe3d.styles.discovery import discover_styles

    for name, folder in sorted(discover_styles().items()):
        print(f"{name:20s} {folder}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pe3d.models.prior import load_prior
    from pe3d.recipes.eval_prior import evaluate_prior, format_table

    model = load_prior(args.weights)
    scores = evaluate_prior(model, count=args.count, resolution=args.resolution)
    table = format_table(scores)
    print(table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "prior_quality.md").write_text(table + "\n")
        (out / "prior_quality.json").write_text(json.dumps({k: vars(v) for k, v in scores.items()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every ``pe3d`` command."""
    parser = argparse.ArgumentParser(prog="pe3d", description="Real-time 3D-aware portrait editing (3DPE framework).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    world = sub.add_parser("world", help="write sample renders and a turntable GIF of the procedural world")
    world.add_argument("--out", required=True, help="output folder")
    world.add_argument("--count", type=int, default=4, help="number of identities")
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--resolution", type=int, default=128)
    world.add_argument("--split", choices=["train", "heldout"], default="train")
    world.set_defaults(func=_cmd_world)

    fit = sub.add_parser("fit", help="train a system: prior, distill (base editor) or adapt (one style)")
    fit.add_argument("system", choices=["prior", "distill", "adapt"], help="what to train")
    fit.add_argument("--config", default=None, help="YAML config merged before the overrides")
    fit.add_argument("--styles", default=None, help="distill: comma-separated style names")
    fit.add_argument("--style", default=None, help="adapt: the style to adapt to")
    fit.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.ckpt")
    fit.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. trainer.max_steps=100")
    fit.set_defaults(func=_cmd_fit)

    pairs = sub.add_parser("pairs", help="write (or resume) a style's training pairs")
    pairs.add_argument("--style", required=True, help="style name (see `pe3d styles`)")
    pairs.add_argument("--count", type=int, default=None, help="number of pairs (default: the style's pairs.count)")
    pairs.add_argument("--out", default=None, help="folder (default: runs/pairs/<style>)")
    pairs.set_defaults(func=_cmd_pairs)

    demo = sub.add_parser("demo", help="the embedded pipeline end to end: prior -> base editor -> adapt -> turntable + metrics")
    demo.add_argument("--out", default="runs/demo", help="output folder")
    demo.add_argument("--style", default="golden_statue", help="built-in style to adapt to (not seen by the base editor)")
    demo.add_argument("--train", action="store_true", help="train the prior and base editor instead of using the shipped ones")
    demo.add_argument("--adapt-minutes", type=float, default=2.0, help="time budget of the adaptation")
    demo.add_argument("--count", type=int, default=8, help="held-out identities to evaluate")
    demo.set_defaults(func=_cmd_demo)

    edit = sub.add_parser("edit", help="edit a portrait: edited image, depth and a turntable GIF")
    edit.add_argument("photo", help="portrait image file")
    edit.add_argument("--out", required=True, help="output folder")
    edit.add_argument("--style", default=None, help="style name (its adapter is used when present)")
    edit.add_argument("--prompt", default=None, help="text prompt")
    edit.add_argument("--prompt-image", default=None, help="reference image prompt")
    edit.add_argument("--views", type=int, default=24, help="turntable frames")
    edit.add_argument("--strength", type=float, default=1.0, help="0 = reconstruction, 1 = full edit")
    edit.add_argument("--weights", default=None, help="base editor file (default: the shipped mini editor)")
    edit.set_defaults(func=_cmd_edit)

    styles = sub.add_parser("styles", help="list the discovered styles")
    styles.set_defaults(func=_cmd_styles)

    evaluate = sub.add_parser("eval", help="evaluate a trained model")
    evaluate.add_argument("target", choices=["prior"])
    evaluate.add_argument("--weights", required=True, help="prior .safetensors file")
    evaluate.add_argument("--count", type=int, default=16, help="held-out identities")
    evaluate.add_argument("--resolution", type=int, default=64)
    evaluate.add_argument("--out", default=None, help="folder for the table (Markdown + JSON)")
    evaluate.set_defaults(func=_cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pe3d`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    unknown = [item for item in extra if item not in overrides]
    if unknown or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or overrides)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    from pe3d.config import ConfigError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError, KeyError, OSError) as error:
        if os.environ.get("PE3D_DEBUG"):
            raise
        print(f"pe3d {args.command}: error: {error} (set PE3D_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
