"""CPU cost of the imported 3DPE editor at full size (512² input, 171 M-value encoder): one edit and one
norm-only adaptation step, on random weights in the authors' exact checkpoint layout.

    nice -n 10 env OMP_NUM_THREADS=1 python tools/threedpe_cost.py /tmp/threedpe_cost [--batch 1] [--steps 2]

Fabricates ``3dpe.pt`` and a Live3D "LT" ``encoder_render.pt`` from their recorded layout
(``tests/data/threedpe_keys.json``) unless the folder already holds them, imports both with
``pe3d import-3dpe``, then times (process CPU time and wall clock, one thread):

* an edit: ``EditorCore(image, Prompts(images=ref))`` under ``no_grad`` (E_low, E_high, the MAE
  reference encoder, the cross-attention, E_t: one triplane), as ``pe3d edit`` runs it;
* an adaptation step of ``pe3d fit adapt``'s system (:class:`pe3d.systems.editing.AdaptSystem` with the
  recipe's CPU settings: ``L2d`` at 64², ``L3d`` on 2 random views at 64² against the frozen
  Live3D teacher, EG3D renders without super-resolution): forward, backward and the AdamW step on
  ``E_p``'s LayerNorms + ``E_t``'s norms, for a batch of ``--batch`` 512² pairs.

The first step is reported apart (it allocates); the rest are averaged.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _fabricate(folder: Path) -> tuple[Path, Path]:
    from pe3d.threedpe.fabricate import fabricate_state

    layout = json.loads((ROOT / "tests" / "data" / "threedpe_keys.json").read_text())
    editor_pt, prior_pt = folder / "3dpe.pt", folder / "encoder_render.pt"
    if not editor_pt.is_file():
        torch.save(fabricate_state(layout, seed=0), editor_pt)
    if not prior_pt.is_file():
        live3d = {part: {k: v for k, v in keys.items() if not k.startswith("Ref_encoder.")} for part, keys in layout.items()}
        torch.save(fabricate_state(live3d, seed=1), prior_pt)
    return editor_pt, prior_pt


def _timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="work folder (fabricated and imported files are kept there)")
    parser.add_argument("--batch", type=int, default=1, help="pairs per adaptation step")
    parser.add_argument("--steps", type=int, default=2, help="adaptation steps to time (the first is reported apart)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)

    from pe3d.models.editor import Prompts, load_editor
    from pe3d.models.prior import load_prior
    from pe3d.recipes.editing import AdaptFitConfig, adapt_settings
    from pe3d.styles.spec import AdaptSpec
    from pe3d.systems.editing import AdaptSystem
    from pe3d.threedpe.importer import import_threedpe

    (editor_pt, prior_pt), cpu, wall = _timed(lambda: _fabricate(folder))
    print(f"fabricated in their layout: {cpu:.1f} s CPU, {wall:.1f} s wall")
    editor_st, prior_st = folder / "3dpe.safetensors", folder / "live3d.safetensors"
    for src, dst in ((editor_pt, editor_st), (prior_pt, prior_st)):
        if not dst.is_file():
            import_threedpe(src, dst)
    editor, teacher = load_editor(editor_st), load_prior(prior_st)
    n_params = sum(p.numel() for p in editor.parameters())
    print(f"editor: {n_params:,} values; teacher: {sum(p.numel() for p in teacher.parameters()):,}")

    gen = torch.Generator().manual_seed(0)
    size = editor.cfg.prior.encoder.image_size
    image, ref = torch.rand(1, 3, size, size, generator=gen), torch.rand(1, 3, size, size, generator=gen)
    editor.eval()
    with torch.no_grad():
        _timed(lambda: editor(image, Prompts(images=ref)))  # warm-up
        times = [_timed(lambda: editor(image, Prompts(images=ref)))[1:] for _ in range(2)]
    print(f"edit (one triplane, {size}^2): " + ", ".join(f"{c:.2f} s CPU / {w:.2f} s wall" for c, w in times))

    trainer_cfg, system_cfg, _ = adapt_settings(AdaptFitConfig(), AdaptSpec(), num_pairs=max(10, args.batch))
    system = AdaptSystem(editor, teacher, system_cfg)
    trainable = [p for p in system.parameters() if p.requires_grad]
    print(f"adaptation trains {sum(p.numel() for p in trainable):,} values in {len(trainable)} tensors "
          f"(lr {system_cfg.optim.lr}, render {system_cfg.render_resolution}^2, {system_cfg.num_views} views)")
    optimizer = torch.optim.AdamW(trainable, lr=system_cfg.optim.lr)
    b = args.batch
    batch = {"input_image": torch.rand(b, 3, size, size, generator=gen), "edited_image": torch.rand(b, 3, size, size, generator=gen),
             "label": torch.tensor([[1.0, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1,
                                     4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]]).repeat(b, 1),
             "prompt": ["x"] * b, "reference": torch.rand(b, 3, size, size, generator=gen),
             "has_reference": torch.ones(b, dtype=torch.bool)}
    system.train()

    def step():
        optimizer.zero_grad()
        terms, _ = system.compute_losses(batch)
        terms["loss"].backward()
        optimizer.step()
        return terms["loss"].item()

    for i in range(args.steps):
        loss, cpu, wall = _timed(step)
        print(f"adaptation step {i + 1} (batch {b}): {cpu:.2f} s CPU / {wall:.2f} s wall, loss {loss:.4f}")


if __name__ == "__main__":
    main()
