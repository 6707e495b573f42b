"""Every train and test prompt of the 6 distilled styles, scored for one or more editors.

    python tools/prompt_sweep.py EDITOR.safetensors [EDITOR2.safetensors ...]

Per prompt: mean PSNR over 8 held-out world identities and the input + yaw -30/+30 views (64²
renders) against the style filter applied to the ground-truth views; then each editor's mean over
train and over test prompts. ``pe3d bench quality`` scores one prompt of each kind per style; this
sweep shows how an editor follows every paraphrase (the README's word-bag comparison).
"""
import sys, math, torch
torch.set_num_threads(2)
from pe3d.models.editor import load_editor, Prompts
from pe3d.styles.discovery import load_named_style
from pe3d.evaluation.world import style_filter_name
from pe3d.world import WorldSplit, render_identities, sample_identity, apply_style_filter
from pe3d.geometry import label_from_yaw_pitch
from pe3d.metrics import psnr
styles = ["bronze_statue", "pencil_sketch", "zombie", "blue_hair", "pop_art", "marble_statue"]
ids = [sample_identity(0, i) for i in WorldSplit().heldout_indices(8)]
views = {n: label_from_yaw_pitch([math.radians(y)]*8, [0.0]*8) for n, y in [("in", 0), ("l", -30), ("r", 30)]}
truth = {n: render_identities(ids, l, 64) for n, l in views.items()}
editors = {p: load_editor(p).eval() for p in sys.argv[1:]}
summary = {p: {"train": [], "test": []} for p in editors}
with torch.inference_mode():
    for s in styles:
        spec = load_named_style(s); f = style_filter_name(spec)
        tgt = {n: apply_style_filter(f, t.rgb, t.parts) for n, t in truth.items()}
        for split in ("train", "test"):
            for prompt in getattr(spec.prompts, split):
                row = []
                for p, e in editors.items():
                    planes = e(truth["in"].rgb, Prompts(texts=[prompt]*8))
                    v = sum(psnr(e.render(planes, views[n], resolution=64).image.clamp(0,1), tgt[n]).mean().item() for n in views) / 3
                    summary[p][split].append(v); row.append(f"{v:.2f}")
                print(s, split, " ".join(row), "|", prompt, flush=True)
for p in editors:
    print(p, "mean train %.2f test %.2f" % (sum(summary[p]["train"])/len(summary[p]["train"]), sum(summary[p]["test"])/len(summary[p]["test"])))
