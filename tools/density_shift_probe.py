"""Is the prior's too-wide outline a matter of where its density crosses the threshold?

Renders a prior's held-out evaluation (``pe3d eval prior --count N --silhouette``: input, yaw -30 / +30, pitch
-15 / +15) with the raw density remapped before EG3D's activation, ``softplus(scale * sigma - 1 + shift)``
instead of ``softplus(sigma - 1)``, for a few (scale, shift) pairs, and prints PSNR and the outline's "too wide" /
"too narrow" shares per view. A negative shift thins every surface by the same amount of raw density; a scale
above 1 sharpens the transition. If the pixels drawn too wide held only a faint, sub-threshold haze, a shift
would remove them at little cost elsewhere::

    python tools/density_shift_probe.py pe3d/weights/prior_mini.safetensors --count 8

The remap applies to rendering only (the prior is not retrained); it is installed by replacing
:func:`pe3d.rendering.volume.activate_density` for the duration of each evaluation and restored afterwards
(:func:`density_activation_replaced`, which ``tools/density_floor_probe.py`` uses too).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

import pe3d.rendering.volume as volume
from pe3d.models.prior import load_prior
from pe3d.recipes.eval_prior import evaluate_prior

DEFAULT_REMAPS = ((1.0, 0.0), (1.0, 0.5), (1.0, -0.5), (1.0, -1.0), (1.0, -2.0), (1.5, 0.0), (2.0, 0.0))
"""(scale, shift) pairs tried by default; (1, 0) is the prior as shipped."""


@contextlib.contextmanager
def density_activation_replaced(wrap: Callable[[Callable], Callable]) -> Iterator[None]:
    """Inside the ``with`` block every render activates densities with ``wrap(original)`` instead of
    :func:`pe3d.rendering.volume.activate_density` (``original``), which is restored afterwards."""
    original = volume.activate_density
    volume.activate_density = wrap(original)
    try:
        yield
    finally:
        volume.activate_density = original


def remapped_density(scale: float, shift: float) -> contextlib.AbstractContextManager[None]:
    """Render with ``softplus(scale * sigma - 1 + shift)`` for EG3D's activation inside the ``with`` block."""
    def wrap(original: Callable) -> Callable:
        def activate(densities: torch.Tensor, activation: str = "softplus_shift") -> torch.Tensor:
            if activation != "softplus_shift":
                return original(densities, activation)
            return F.softplus(scale * densities - 1.0 + shift)
        return activate

    return density_activation_replaced(wrap)


def main() -> None:
    """Print one row per (scale, shift): PSNR per view, then too wide % and too narrow % per view."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("prior", help="a prior's weights (.safetensors)")
    parser.add_argument("--count", type=int, default=8, help="held-out identities (default 8)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_prior(args.prior).eval()
    print("scale shift | PSNR input / yaw -30 / yaw +30 / pitch -15 / pitch +15 | too wide % | too narrow %")
    for scale, shift in DEFAULT_REMAPS:
        with remapped_density(scale, shift), torch.no_grad():
            scores = evaluate_prior(model, count=args.count, silhouette=True)
        psnr = " / ".join(f"{s.psnr:.2f}" for s in scores.values())
        wide = " ".join(f"{100 * s.outline_too_wide:.2f}" for s in scores.values())
        narrow = " ".join(f"{100 * s.outline_too_narrow:.2f}" for s in scores.values())
        print(f"{scale:g} {shift:+g} | {psnr} | {wide} | {narrow}", flush=True)


if __name__ == "__main__":
    main()
