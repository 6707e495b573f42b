"""``pe3d`` command line: parse, load the config, call the library.

Commands:
    pe3d world --out DIR --count N           sample renders + turntable GIF of the world
    pe3d fit prior|distill|adapt [--config YAML] [--resume] [key=value ...]
    pe3d pairs --style NAME [--count N] [--devices N] [key=value ...]   write (or resume) a style's pairs, sharded
    pe3d styles [--prompts]                  list discovered styles (and their training prompts)
    pe3d edit PHOTO|DIR --style NAME --out DIR  edited image, depth, turntable GIF/MP4 (+ mesh) of portraits
    pe3d edit-video IN.mp4 --style NAME --out OUT.mp4 [--camera fixed|orbit] [--smooth S]
    pe3d serve [--host 127.0.0.1] [--port 7860]  the gradio web interface
    pe3d demo --out DIR                      prior -> base editor -> adapt -> turntable + metrics
    pe3d eval prior --weights FILE           quality table on held-out identities
    pe3d eval editor --weights FILE --style NAME   edit fidelity on held-out identities
    pe3d import-eg3d SRC.pkl OUT.safetensors  EG3D checkpoint -> safetensors (no pickled code runs)
    pe3d import-3dpe SRC.pt OUT.safetensors   the authors' 3dpe.pt (editor) / Live3D LT encoder_render.pt (prior)
    pe3d bench CONFIG [--out DIR] [k=v ...]  run a benchmark (table1, ablation_losses, adaptation, speed)

Errors: a :class:`pe3d.errors.UserInputError` (bad file, name, key or value) prints one line and
exits 2; any other exception is a bug and keeps its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from functools import partial
from pathlib import Path

from pe3d.errors import InvalidInput


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
    from pe3d.data.sharding import LaunchConfig, generate_pairs, merge_shards, write_shard
    from pe3d.styles.discovery import load_named_style

    spec = load_named_style(args.style, overrides=args.overrides)
    out = Path(args.out) if args.out else Path("runs/pairs") / spec.name
    if args.merge:
        manifest = merge_shards(spec, out, count=args.count)
    elif args.shard:
        rank, _, world = args.shard.partition("/")
        if not (rank.isdigit() and world.isdigit() and int(rank) < int(world)):
            raise InvalidInput(f"--shard {args.shard!r}: expected RANK/WORLD_SIZE with 0 <= RANK < WORLD_SIZE, e.g. 3/8")
        folder = write_shard(spec, out, int(rank), int(world), count=args.count)
        print(f"shard {args.shard} of {spec.name!r} in {folder}; merge with `pe3d pairs --style {spec.name} --out {out} --merge`")
        return 0
    else:
        launch = LaunchConfig(devices=args.devices, num_nodes=args.num_nodes, accelerator=args.accelerator)
        manifest = generate_pairs(spec, out, count=args.count, launch=launch)
    print(f"pairs of {spec.name!r} in {manifest.parent} (manifest: {manifest.name})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pe3d.recipes.demo import run_demo

    run_demo(Path(args.out), style=args.style, train=args.train, adapt_minutes=args.adapt_minutes, eval_count=args.count,
             refine_steps=args.refine_steps)
    return 0


def _face_choice(value: str | None) -> str | int | None:
    """``--face`` value: ``largest``, an integer index, or ``None``."""
    if value is None or value == "largest":
        return value
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"--face must be 'largest' or an integer index, got {value!r}") from None


def _cmd_edit(args: argparse.Namespace) -> int:
    from pe3d.recipes.edit import edit_folder, edit_photo

    options = dict(style=args.style, prompt=args.prompt, prompt_image=args.prompt_image, views=args.views,
                   strength=args.strength, weights=args.weights, resolution=args.resolution,
                   face=_face_choice(args.face), align=not args.no_align, mesh=args.mesh, refine_steps=args.refine_steps,
                   refine_strength=args.refine_strength)
    if Path(args.photo).is_dir():
        report = edit_folder(args.photo, args.out, **options)
        print(report.summary())
        return 1 if report.failed else 0
    files = edit_photo(args.photo, args.out, **options)
    for kind, path in files.items():
        print(f"{kind}: {path}")
    return 0


def _cmd_edit_video(args: argparse.Namespace) -> int:
    from pe3d.recipes.edit_video import VideoEditConfig, edit_video
    from pe3d.video import SmoothingConfig

    cfg = VideoEditConfig(
        style=args.style, prompt=args.prompt, prompt_image=args.prompt_image, camera=args.camera,
        orbit_yaw_deg=args.orbit_yaw, orbit_period_s=args.orbit_period, strength=args.strength,
        resolution=args.resolution, max_frames=args.max_frames, face=_face_choice(args.face), weights=args.weights,
        compare=args.compare, smooth=SmoothingConfig(strength=args.smooth, adaptive=args.smooth_adaptive),
        refine_steps=args.refine_steps, refine_first_steps=args.refine_first_steps, refine_strength=args.refine_strength,
        refine_region=args.refine_region,
    )
    report = edit_video(args.video, args.out, cfg)
    print("\n".join(report.lines()))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from pe3d.config import load_structured
    from pe3d.web import WebUnavailable, require_gradio, serve
    from pe3d.web.settings import WebSettings

    try:
        require_gradio()
    except WebUnavailable as error:
        print(f"pe3d serve: error: {error}", file=sys.stderr)
        return 2
    flags = {"host": args.host, "port": args.port}
    if args.weights:
        flags["weights"] = args.weights
    settings = load_structured(WebSettings, [args.config, flags] if args.config else [flags], args.overrides)
    print(f"pe3d serve: http://{settings.host}:{settings.port} (Ctrl+C to stop)")
    serve(settings)
    return 0


def _cmd_styles(args: argparse.Namespace) -> int:
    from pe3d.styles.discovery import discover_styles
    from pe3d.styles.spec import load_style

    for name, folder in sorted(discover_styles().items()):
        print(f"{name:20s} {folder}")
        if args.prompts:  # the wording an editor without a pretrained text encoder follows
            for prompt in load_style(folder).prompts.train:
                print(f"{'':20s}   {prompt}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from pe3d.bench import run_benchmark

    run_benchmark(args.config, out=args.out, overrides=list(args.overrides))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.target == "editor":
        return _eval_editor(args)
    from pe3d.models.prior import load_prior
    from pe3d.recipes.eval_prior import evaluate_prior, format_table

    model = load_prior(args.weights)
    scores = evaluate_prior(model, count=args.count or 16, resolution=args.resolution, visibility=args.visibility,
                            silhouette=args.silhouette)
    _report_eval(args.out, "prior_quality", format_table(scores), {k: vars(v) for k, v in scores.items()})
    return 0


def _eval_editor(args: argparse.Namespace) -> int:
    from pe3d.models.editor import load_editor
    from pe3d.recipes.eval_editor import evaluate_editor, format_editor_table
    from pe3d.styles.discovery import load_named_style

    if not args.style:
        raise InvalidInput("pe3d eval editor needs --style NAME (a filter style: its ground truth is known)")
    editor = load_editor(args.weights)
    if args.adapter:
        from pe3d.styles.adapters import load_adapter_into

        load_adapter_into(editor, args.adapter)
    spec = load_named_style(args.style)
    scores = evaluate_editor(editor, spec, count=args.count or 8, resolution=args.resolution, prompts=args.prompts)
    _report_eval(args.out, "editor_quality", format_editor_table({args.style: scores}), scores.as_dict())
    return 0


def _report_eval(out: str | None, name: str, table: str, payload: dict) -> None:
    """Print ``pe3d eval``'s table; with ``--out``, also write it as ``NAME.md`` and the numbers as ``NAME.json``."""
    print(table)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.md").write_text(table + "\n")
        (folder / f"{name}.json").write_text(json.dumps(payload, indent=2))


def _cmd_import_eg3d(args: argparse.Namespace) -> int:
    from pe3d.eg3d.importer import import_eg3d

    out = import_eg3d(args.src, args.out, dtype=args.dtype)
    print(f"EG3D generator from {args.src} written to {out}")
    return 0


def _cmd_import_3dpe(args: argparse.Namespace) -> int:
    from pe3d.threedpe.importer import import_threedpe

    out, kind = import_threedpe(args.src, args.out, model=args.model, dtype=args.dtype)
    print(f"3DPE/Live3D {kind} from {args.src} written to {out}")
    return 0


def _add_prompt_arguments(parser: argparse.ArgumentParser) -> None:
    """``--style`` / ``--prompt`` / ``--prompt-image``, shared by the editing commands."""
    parser.add_argument("--style", default=None, help="style name (its adapter is used when present)")
    parser.add_argument("--prompt", default=None, help="text prompt (with the mini editor, one that names no style it knows returns the portrait unedited, with a warning)")
    parser.add_argument("--prompt-image", default=None, help="reference image prompt")


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
    pairs.add_argument("--devices", type=int, default=1, help="processes per node, sharded (GPUs; CPU processes with --accelerator cpu)")
    pairs.add_argument("--num-nodes", type=int, default=1, help="nodes of a sharded run (torchrun: taken from its environment)")
    pairs.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu", "cuda"], help="device kind of a sharded run")
    pairs.add_argument("--shard", default=None, metavar="RANK/WORLD", help="write only this shard, no process group (e.g. 3/8)")
    pairs.add_argument("--merge", action="store_true", help="merge the shards of --out into its manifest")
    pairs.add_argument("overrides", nargs="*", help="key=value style overrides, e.g. params.dir=/data/ffhq512")
    pairs.set_defaults(func=_cmd_pairs)

    demo = sub.add_parser("demo", help="the embedded pipeline end to end: prior -> base editor -> adapt -> turntable + metrics")
    demo.add_argument("--out", default="runs/demo", help="output folder")
    demo.add_argument("--style", default="golden_statue", help="built-in style to adapt to (not seen by the base editor)")
    demo.add_argument("--train", action="store_true", help="train the prior and base editor instead of using the shipped ones")
    demo.add_argument("--adapt-minutes", type=float, default=2.0,
                      help="wall-clock guard of the adaptation (its 80 steps end it first)")
    demo.add_argument("--count", type=int, default=8, help="held-out identities to evaluate")
    demo.add_argument("--refine-steps", type=int, default=200, metavar="N",
                      help="also a turntable refined to the input in N steps, as pe3d edit does (0 = none)")
    demo.set_defaults(func=_cmd_demo)

    edit = sub.add_parser("edit", help="edit a portrait photo (or a folder of them): image, depth, turntable GIF/MP4, mesh")
    edit.add_argument("photo", help="portrait image file, or a folder of them (batch mode: one subfolder each)")
    edit.add_argument("--out", required=True, help="output folder")
    _add_prompt_arguments(edit)
    edit.add_argument("--views", type=int, default=24, help="turntable frames")
    edit.add_argument("--strength", type=float, default=1.0, help="0 = reconstruction, 1 = full edit")
    edit.add_argument("--weights", default=None, help="base editor file (default: the shipped mini editor)")
    edit.add_argument("--resolution", type=int, default=64, help="render side in pixels")
    edit.add_argument("--face", default=None, help="which face when the photo has several: 'largest' or an index (largest first)")
    edit.add_argument("--no-align", action="store_true", help="skip face detection/alignment: centre square, frontal camera (for world renders)")
    edit.add_argument("--mesh", default=None, metavar="FILE.ply",
                      help="also write a mesh of the edited head (a bare name goes into the output folder)")
    edit.add_argument("--refine-steps", type=int, default=None, metavar="N",
                      help="fit the reconstruction's missing detail to the photo in N steps and add it to the edit "
                           "(0 = the one-pass edit; default: 200 with the shipped editor, aligned or not)")
    edit.add_argument("--refine-strength", type=float, default=None, metavar="S",
                      help="add S times that detail (0-2; default: the style's refine.strength, e.g. 0.5 for "
                           "marble_statue, else 1)")
    edit.set_defaults(func=_cmd_edit)

    video = sub.add_parser("edit-video", help="edit a portrait video frame by frame, with temporal smoothing (MP4 out)")
    video.add_argument("video", help="input video file")
    video.add_argument("--out", required=True, help="output MP4 file")
    _add_prompt_arguments(video)
    video.add_argument("--camera", choices=["fixed", "orbit"], default="fixed",
                       help="fixed: each frame's own camera; orbit: yaw swings +-ORBIT_YAW degrees")
    video.add_argument("--orbit-yaw", type=float, default=30.0, help="orbit amplitude in degrees")
    video.add_argument("--orbit-period", type=float, default=4.0, help="orbit period in seconds of video")
    video.add_argument("--smooth", type=float, default=0.7, help="temporal smoothing in [0, 1): 0 = off")
    video.add_argument("--smooth-adaptive", type=float, default=0.0, help="one-euro-style lag reduction (0 = plain EMA)")
    video.add_argument("--compare", action="store_true", help="also measure the flicker without smoothing")
    video.add_argument("--max-frames", type=int, default=None, help="edit only the first N frames")
    video.add_argument("--resolution", type=int, default=64, help="output side in pixels")
    video.add_argument("--strength", type=float, default=1.0, help="0 = reconstruction, 1 = full edit")
    video.add_argument("--face", default="largest", help="which face per frame: largest or an index")
    video.add_argument("--weights", default=None, help="base editor file (default: the shipped mini editor)")
    video.add_argument("--refine-steps", type=int, default=0, metavar="N",
                       help="fit each frame's missing detail in N steps, starting from the previous frame's (0 = one pass a frame)")
    video.add_argument("--refine-first-steps", type=int, default=200, metavar="N",
                       help="steps of the first frame's fit, which starts from nothing (with --refine-steps)")
    video.add_argument("--refine-strength", type=float, default=None, metavar="S",
                       help="add S times each frame's detail (0-2; default: the style's refine.strength, else 1)")
    video.add_argument("--refine-region", choices=["first", "each"], default="first",
                       help="the visual hull and empty space the fits keep to: the first frame's, kept (default), or "
                            "each frame's own")
    video.set_defaults(func=_cmd_edit_video)

    web = sub.add_parser("serve", help='the web interface (gradio; pip install "pe3d[web]")')
    web.add_argument("--host", default="127.0.0.1", help="bind address (default: this machine only)")
    web.add_argument("--port", type=int, default=7860)
    web.add_argument("--weights", default=None, help="base editor file (default: the shipped mini editor)")
    web.add_argument("--config", default=None, help="YAML of pe3d.web.settings.WebSettings (limits, views, ...)")
    web.add_argument("overrides", nargs="*", help="key=value settings, e.g. limits.max_bytes=5000000")
    web.set_defaults(func=_cmd_serve)

    styles = sub.add_parser("styles", help="list the discovered styles")
    styles.add_argument("--prompts", action="store_true", help="also list each style's training prompts")
    styles.set_defaults(func=_cmd_styles)

    evaluate = sub.add_parser("eval", help="evaluate a trained model")
    evaluate.add_argument("target", choices=["prior", "editor"])
    evaluate.add_argument("--weights", required=True, help="prior (or editor) .safetensors file")
    evaluate.add_argument("--style", default=None, help="editor: the filter style scored (its test prompts)")
    evaluate.add_argument("--adapter", default=None, help="editor: an adapter.safetensors loaded before scoring")
    evaluate.add_argument("--prompts", type=int, default=1, help="editor: test prompts per style (0 = all)")
    evaluate.add_argument("--count", type=int, default=None, help="held-out identities (default: 16 for a prior, 8 for an editor)")
    evaluate.add_argument("--resolution", type=int, default=64)
    evaluate.add_argument("--visibility", action="store_true",
                          help="prior: also PSNR on the foreground the input view shows and on the part it hides")
    evaluate.add_argument("--silhouette", action="store_true",
                          help="prior: also PSNR on the ground truth's silhouette ring (1 px each side of the outline) and off it, "
                                 "and the share of pixels its outline draws too wide / too narrow")
    evaluate.add_argument("--out", default=None, help="folder for the table (Markdown + JSON)")
    evaluate.set_defaults(func=_cmd_eval)

    bench = sub.add_parser("bench", help="run a benchmark (benchmarks/*.yaml): results.md, results.csv, plots")
    bench.add_argument("config", help="benchmark YAML, or a name under benchmarks/: table1, ablation_losses, adaptation, speed, ci/...")
    bench.add_argument("--out", default=None, help="results folder (default: runs/bench/<name>)")
    bench.add_argument("overrides", nargs="*", help="key=value config overrides, e.g. world.identities=4")
    bench.set_defaults(func=_cmd_bench)

    import_eg3d = sub.add_parser("import-eg3d", help="convert an EG3D .pkl (or 3DPE's converted .pth) to safetensors, running no pickled code")
    import_eg3d.add_argument("src", help="EG3D network pickle, e.g. ffhq512-128.pkl")
    import_eg3d.add_argument("out", help="output .safetensors file")
    import_eg3d.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32", help="storage type of the weights")
    import_eg3d.set_defaults(func=_cmd_import_eg3d)
    import_3dpe = sub.add_parser("import-3dpe", help="convert the 3DPE authors' 3dpe.pt (-> editor) or Live3D's LT "
                                 "encoder_render.pt (-> prior) to safetensors, with torch.load(weights_only=True)")
    import_3dpe.add_argument("src", help="their checkpoint (encoder_state_dict + renderer_state_dict)")
    import_3dpe.add_argument("out", help="output .safetensors file (a pe3d editor or prior)")
    import_3dpe.add_argument("--model", default="threedpe", help="model config describing their architecture (name or YAML)")
    import_3dpe.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32", help="storage type of the weights")
    import_3dpe.set_defaults(func=_cmd_import_3dpe)
    return parser


def _format_warning(command: str, default, message, category, filename, lineno, line=None) -> str:
    """pe3d's own warnings as one line for the user (``pe3d edit: warning: ...``); others as Python formats them."""
    if category.__module__.startswith("pe3d."):
        return f"pe3d {command}: warning: {message}\n"
    return default(message, category, filename, lineno, line)


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
    from pe3d.errors import UserInputError

    python_format = warnings.formatwarning
    warnings.formatwarning = partial(_format_warning, args.command, python_format)
    try:
        return int(args.func(args) or 0)
    except UserInputError as error:  # anything else is a bug or a broken environment: traceback, exit 1
        if os.environ.get("PE3D_DEBUG"):
            raise
        print(f"pe3d {args.command}: error: {error} (set PE3D_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a reader that stopped early (`pe3d styles --prompts | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    finally:
        warnings.formatwarning = python_format


if __name__ == "__main__":
    sys.exit(main())
