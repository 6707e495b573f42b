"""Write an editor or prior file again with config changes that change no weight (e.g. a plane border).

    python tools/relabel_weights.py editor shipped runs/border0/editor.safetensors encoder.plane_border=10
    python tools/relabel_weights.py prior shipped runs/border0/prior.safetensors encoder.plane_border=10

KIND is ``editor`` or ``prior``; SOURCE a weight file or ``shipped`` (the package's mini weights);
OVERRIDEs are model-YAML paths (``encoder.…``, ``renderer.…``). A change that adds, drops or reshapes a
weight is refused (:func:`pe3d.models.editor.with_editor_overrides`, :func:`pe3d.recipes.prior.with_model_overrides`). The tensors are written
unchanged, in the storage dtype of the source (float16 for the shipped files), with the source's
metadata (``styles``, ``train_minutes``, …) and a ``relabelled`` entry naming the source and overrides;
the state-dict hash, which adapters record as their base, stays the same (printed).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pe3d.io import load_tensors, read_metadata

KEPT_BY_SAVE = ("kind", "hash", "config", "pe3d_version")
"""Metadata keys :func:`pe3d.models.checkpoints.save_model` writes itself."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["editor", "prior"])
    parser.add_argument("source", help="weight file, or 'shipped'")
    parser.add_argument("out", type=Path)
    parser.add_argument("overrides", nargs="+", help="model-YAML key=value changes, e.g. encoder.plane_border=10")
    args = parser.parse_args()

    from pe3d.models.checkpoints import model_hash
    from pe3d.models.editor import load_editor, save_editor, with_editor_overrides
    from pe3d.models.prior import load_prior, save_prior
    from pe3d.recipes.prior import with_model_overrides
    from pe3d.weights import shipped_path

    source = shipped_path(f"{args.kind}_mini") if args.source == "shipped" else Path(args.source)
    tensors, _ = load_tensors(source)
    dtype = "float16" if any(t.dtype.is_floating_point and t.element_size() == 2 for t in tensors.values()) else "float32"
    metadata = {k: v for k, v in read_metadata(source).items() if k not in KEPT_BY_SAVE}
    label = f"shipped:{args.kind}_mini" if args.source == "shipped" else str(source)
    metadata["relabelled"] = f"{label} with {' '.join(args.overrides)}"
    if args.kind == "editor":
        model = load_editor(source)
        changed = with_editor_overrides(model, args.overrides)
        save_editor(changed, args.out, metadata, dtype=dtype)
    else:
        model = load_prior(source)
        changed = with_model_overrides(model, list(args.overrides))
        save_prior(changed, args.out, metadata, dtype=dtype)
    print(f"{args.out}: {args.kind} of {label} with {args.overrides} ({dtype}); "
          f"state-dict hash {model_hash(changed)} (source {model_hash(model)})")


if __name__ == "__main__":
    main()
