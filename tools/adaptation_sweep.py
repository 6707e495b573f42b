"""``pe3d fit adapt`` on the adaptation test's styles with recipe overrides or a wider trainable set.

    python tools/adaptation_sweep.py STYLE [--trainable norms|e_t|editor] [--identities N] [--seen] [--per-view] [--picture PNG] [OVERRIDE ...]

STYLE is one of the styles of ``tests/test_adaptation_quality.py``: the fixtures ``green_mono`` and
``green_mono_bg`` (``tests/fixtures/styles``, found through ``PE3D_STYLE_PATH``, which this tool sets)
or the shipped ``golden_statue``; also ``keep`` (``configs/distill/anchor_styles``: the "edit" is the input
itself, so the teacher is the prior's reconstruction and the gap is how far the adapted editor's own
reconstruction stays below the prior's). OVERRIDEs are :class:`~pe3d.recipes.editing.AdaptFitConfig` keys,
e.g. ``lr=0.012``, ``trainer.max_steps=160``, ``num_pairs=20``, ``base=runs/distill/editor.safetensors``,
``decoder_lr_scale=0.1`` (the renderer's decoder adapts too). Each run
adapts the (shipped) base editor with the style's defaults plus the overrides (without the style's
wall-clock guard, ``trainer.max_minutes=0``, so a busy machine cuts no run short), then scores the base
and the adapted editor and the two-stage teacher exactly as the test does (its helpers are imported:
mean PSNR over held-out identities at the input and yaw +-30 views against the style's edit of the
ground truth, background included), and prints one line:

    green_mono [defaults]: base 13.79 adapted 21.42 teacher 21.79 gap 0.37 dB, 0.41 min

``--identities N`` scores N identities instead of the test's 8 (``--identities 24``: gap 0.41 dB);
``--picture PNG`` saves the first 4 held-out heads' targets, teacher renders and adapted renders side by side;
``--seen`` scores the identities the style's pairs were made from (training indices ``0 .. N-1``, the
fixtures' ``pairs.identity_offset``; frontal inputs, where the pairs have random cameras) instead of
held-out ones, to separate fitting from generalisation; ``--per-view`` adds one line per view.

``--trainable e_t`` trains every parameter of E_t (and E_p's mapper) instead of E_t's norms, to ask
whether the number of adaptable values is what limits an adaptation; ``--trainable editor`` trains the
whole editor but its prompt backbone (E_low, E_high, the cross-attention, E_t; E_low / E_high features are
then recomputed at every step instead of cached), to ask whether the branches that read the unedited
image limit it. Both widen
:meth:`~pe3d.models.editor.EditorCore.adaptation_parameters` in this process only: the adapter it
writes carries those parameters and loads only here: an experiment, not an adapter format.
"""

import argparse
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ["PE3D_STYLE_PATH"] = os.pathsep.join(str(ROOT / d) for d in ("tests/fixtures/styles", "configs/distill/anchor_styles"))
sys.path.insert(0, str(ROOT / "tests"))

from test_adaptation_quality import adapt_and_score  # noqa: E402  (the test's run and scoring, not a copy)

from pe3d.models.editor import EditorCore  # noqa: E402
from pe3d.world import WorldSplit  # noqa: E402

TRAINABLE = ("norms", "e_t", "editor")


def _e_t_and_mapper(editor: EditorCore):
    """Every parameter of E_t plus E_p's mapper (the norm-only set's superset)."""
    for encoder in editor.prompt_encoders():
        yield from encoder.mapper.parameters()
    yield from editor.encoder.decoder.parameters()


def _whole_editor(editor: EditorCore):
    """E_p's mapper, E_low, E_high, the cross-attention and E_t."""
    for encoder in editor.prompt_encoders():
        yield from encoder.mapper.parameters()
    yield from editor.encoder.parameters()
    yield from editor.cross_attention.parameters()


@contextmanager
def trainable(scope: str):
    """Within the block, adaptation trains ``scope``: ``norms`` (the framework's), ``e_t`` or ``editor``."""
    original = EditorCore.adaptation_parameters
    if scope != "norms":
        EditorCore.adaptation_parameters = {"e_t": _e_t_and_mapper, "editor": _whole_editor}[scope]
    try:
        yield
    finally:
        EditorCore.adaptation_parameters = original


@contextmanager
def scored_identities(seen: bool):
    """Within the block, the held-out set is the pairs' training identities when ``seen`` (else unchanged)."""
    original = WorldSplit.heldout_indices
    if seen:
        WorldSplit.heldout_indices = lambda split, n, offset=0: split.train_indices(n, offset)
    try:
        yield
    finally:
        WorldSplit.heldout_indices = original


def save_picture(style: str, editor, prior, out: Path, heads: int = 4) -> None:
    """``out``: for the first ``heads`` scored identities (rows), at the input and yaw -+30 views, the style's
    target, the two-stage teacher (``prior``) and the adapted ``editor`` side by side (the test's renders)."""
    import torch
    from test_adaptation_quality import renders
    from torchvision.utils import save_image

    targets, names, ours, teacher = renders(style, editor, prior, heads)
    tiles = [t for i in range(heads) for n in names
             for t in (targets.views[n].image[i], teacher[n].image[i].clamp(0, 1), ours[n].image[i].clamp(0, 1))]
    save_image(torch.stack(tiles), str(out), nrow=3 * len(names), padding=1)


def run(style: str, scope: str, overrides: list[str], identities: int = 8, seen: bool = False, per_view: bool = False,
        picture: str = "") -> str:
    """One adaptation and its scores, as printable lines (and, with ``picture``, :func:`save_picture` there)."""
    inspect = (lambda editor, prior: save_picture(style, editor, prior, Path(picture))) if picture else None
    with tempfile.TemporaryDirectory(prefix=f"adapt-{style}-") as work, trainable(scope), scored_identities(seen):
        before, after, minutes = adapt_and_score(style, Path(work), ["trainer.max_minutes=0", *overrides], identities,
                                                 inspect)
    label = " ".join([*([f"trainable={scope}"] if scope != "norms" else []), *([f"identities={identities}"] if identities != 8 else []),
                      *(["seen"] if seen else []), *overrides])
    lines = [f"{style} [{label or 'defaults'}]: base {before['ours']:.2f} adapted {after['ours']:.2f} teacher {after['teacher']:.2f} "
             f"gap {after['teacher'] - after['ours']:.2f} dB, {minutes:.2f} min"]
    if per_view:
        lines += [f"  {name}: adapted {v['ours']:.2f} teacher {v['teacher']:.2f} gap {v['teacher'] - v['ours']:.2f}"
                  for name, v in after["views"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("style", help="green_mono, green_mono_bg, golden_statue or keep")
    parser.add_argument("--trainable", choices=TRAINABLE, default="norms",
                        help="what adapts: E_t's norms (the framework's default), all of E_t, or the whole editor")
    parser.add_argument("--identities", type=int, default=8, help="identities scored (the test's 8)")
    parser.add_argument("--seen", action="store_true", help="score the pairs' own (training) identities, not held-out ones")
    parser.add_argument("--per-view", action="store_true", help="one line per view")
    parser.add_argument("--picture", default="", help="also save target | teacher | adapted at the input and yaw -+30 views of 4 held-out heads (PNG)")
    parser.add_argument("overrides", nargs="*", help="AdaptFitConfig overrides, e.g. lr=0.012 trainer.max_steps=160")
    args = parser.parse_intermixed_args()
    print(run(args.style, args.trainable, args.overrides, args.identities, args.seen, args.per_view, args.picture), flush=True)


if __name__ == "__main__":
    main()
