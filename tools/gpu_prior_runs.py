"""Train several prior variants side by side on one GPU within a time budget; each run's step count is
chosen on the machine so that its cosine schedule ends in time, and written out as a plain ``pe3d fit prior``
command that reproduces the run on any machine (a CPU too, only slower).

    PE3D_CACHE=/tmp/pe3d-cache python tools/gpu_prior_runs.py --out DIR --minutes 7.5 [--runs narrow,wide,vit]

1. renders the world banks of the prior config once, in ``--workers`` processes, into the cache;
2. calibrates: every run trains ``--calibration-steps`` steps, all side by side, timing its steps after the
   first few (:class:`StepTimer`);
3. gives each run the steps that fit the time left at the slowest of those rates, less a margin;
4. trains them side by side (``python -m pe3d.cli fit prior ...``, ``trainer.max_minutes`` as a guard);
5. writes ``DIR/summary.json`` (each run's command, steps, minutes, last validation loss) and copies each
   export to ``DIR/NAME.safetensors``.

``--smoke`` shrinks everything (16 identities, batch 2, 16x16 ray patches) to check the script on a CPU.
The runs: ``narrow`` continues the shipped mini prior (same design); ``wide`` is the 1.8 M-parameter design
of docs/results/quality/prior_capacity.md from scratch; ``vit`` widens the head and deepens both ViTs
(3.5 M parameters) from scratch. All train at the 12 + 12 ray samples the shipped prior renders with, on
full 64x64 views (``system.ray_stride=1``), batch 32, with the fifth stage's random part colours and walls.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES_12 = "renderer.ray_march.depth_resolution=12,renderer.ray_march.depth_resolution_importance=12"
WIDE = ('"encoder.high_widths=[64,64,64]","encoder.t_fuse_widths=[96]","encoder.t_head_widths=[96,96]",'
        "encoder.t_vit_dim=192,encoder.t_refine_blocks=2,encoder.t_refine_width=96,cross_attention.feature_channels=64")
VIT = ('"encoder.high_widths=[64,64,64]","encoder.t_fuse_widths=[96]","encoder.t_head_widths=[96,96]",'
       "encoder.t_vit_dim=256,encoder.t_vit_depth=3,encoder.low_vit_dim=192,encoder.low_vit_depth=3,"
       "cross_attention.feature_channels=64")
COMMON = ["batch_size=32", "system.ray_stride=1", "recolour_probability=0.5", "background_texture=0.5",
          "export_dtype=float16", "trainer.matmul_precision=high", "trainer.max_minutes=0"]
RUNS = {
    "narrow": ["init=pe3d/weights/prior_mini.safetensors", f"model_overrides=[{SAMPLES_12}]",
               "system.optim.lr=0.00025", "system.optim.warmup_steps=50"],
    "wide": [f"model_overrides=[{SAMPLES_12},{WIDE}]", "system.optim.lr=0.0015", "system.optim.warmup_steps=200"],
    "vit": [f"model_overrides=[{SAMPLES_12},{VIT}]", "system.optim.lr=0.0015", "system.optim.warmup_steps=200"],
    "vit-cont": ["init=runs/prior-vit/prior.safetensors", "system.optim.lr=0.0005", "system.optim.warmup_steps=50"],
}
"""Run name -> its overrides of ``configs/prior/mini.yaml`` (besides :data:`COMMON` and the step count)."""
MACHINE = ["trainer.progress=false", "trainer.logger=csv", "trainer.log_every_n_steps=50",
           "trainer.val_every_n_steps=500", "trainer.checkpoint_every_n_steps=500"]
"""Settings of this machine's runs that do not change the weights (logging, checkpoints)."""
SMOKE = ["data.count=16", "batch_size=2", "system.ray_stride=4", "trainer.val_every_n_steps=4"]


def run_overrides(name: str, smoke: bool) -> list[str]:
    """Every override of run ``name`` but its step count."""
    return [*COMMON, *RUNS[name], *(SMOKE if smoke else [])]


def calibrate(name: str, steps: int, workers: int, smoke: bool) -> float:
    """Seconds per training step of run ``name`` (after the first few), from a short ``fit_prior`` in this process."""
    import lightning as L

    from pe3d.recipes.prior import fit_prior, load_prior_fit_config

    class StepTimer(L.Callback):
        """Wall time between the end of step ``skip`` and the end of the last step."""

        def __init__(self, skip: int) -> None:
            self.skip, self.start, self.end, self.count = skip, 0.0, 0.0, 0

        def on_train_batch_end(self, trainer, *args) -> None:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            if trainer.global_step == self.skip:
                self.start = time.perf_counter()
            elif trainer.global_step > self.skip:
                self.end, self.count = time.perf_counter(), trainer.global_step - self.skip

    with tempfile.TemporaryDirectory() as out:
        cfg = load_prior_fit_config(None, [*run_overrides(name, smoke), *MACHINE, f"trainer.max_steps={steps}",
                                           f"trainer.num_workers={workers}", "trainer.val_every_n_steps=0",
                                           "trainer.logger=none", f"out={out}"])
        timer = StepTimer(skip=min(5, steps // 3))
        fit_prior(cfg, callbacks=[timer])
    return (timer.end - timer.start) / max(1, timer.count)


def last_validation_loss(run_dir: Path) -> float | None:
    """The last ``val/loss`` in the run's CSV log, if any."""
    path = run_dir / "logs" / "metrics.csv"
    if not path.is_file():
        return None
    value = None
    with path.open() as handle:
        for row in csv.DictReader(handle):
            for key, cell in row.items():
                if key == "val/loss" and cell:
                    value = float(cell)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="summary, logs and exports")
    parser.add_argument("--work-dir", type=Path, help="the runs' folders (checkpoints, logs); default OUT/runs")
    parser.add_argument("--minutes", type=float, required=True, help="wall-clock budget of the whole script")
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes that render the banks")
    parser.add_argument("--loader-workers", type=int, default=3, help="data-loader workers per run")
    parser.add_argument("--calibration-steps", type=int, default=40)
    parser.add_argument("--margin", type=float, default=0.85, help="share of the rate-limited steps to use")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--calibrate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.calibrate:
        print(json.dumps({"s_per_step": calibrate(args.calibrate, args.calibration_steps, args.loader_workers, args.smoke)}))
        return
    started = time.perf_counter()
    deadline = started + args.minutes * 60
    names = args.runs.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"--runs: unknown {unknown}; known {list(RUNS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    from pe3d.data.world_views import load_or_render_bank
    from pe3d.io import read_metadata
    from pe3d.recipes.prior import load_prior_fit_config

    cfg = load_prior_fit_config(None, run_overrides(names[0], args.smoke))
    load_or_render_bank(cfg.data, workers=args.workers)
    load_or_render_bank(cfg.val_data)
    print(f"banks ready at {time.perf_counter() - started:.0f} s", flush=True)

    me = [sys.executable, __file__, "--out", str(args.out), "--minutes", "0", "--calibration-steps",
          str(args.calibration_steps), "--loader-workers", str(args.loader_workers), *(["--smoke"] if args.smoke else [])]
    procs = {n: subprocess.Popen([*me, "--calibrate", n], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in names}
    rates = {}
    for name, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0:  # the other runs go on
            print(f"calibration of {name} failed (rc {proc.returncode}):\n{err[-3000:]}", flush=True)
            continue
        rates[name] = json.loads(out.strip().splitlines()[-1])["s_per_step"]
    names = list(rates)
    if not names:
        raise SystemExit("every calibration failed")
    left = deadline - time.perf_counter() - 45  # start-up, validation, export
    steps = {n: max(10, int(left / rates[n] * args.margin) // 10 * 10) for n in names}
    print(f"calibrated at {time.perf_counter() - started:.0f} s: s/step {rates}; {left:.0f} s left; steps {steps}", flush=True)

    runs_dir = args.work_dir or args.out / "runs"
    procs, commands = {}, {}
    for name in names:
        overrides = [*run_overrides(name, args.smoke), f"trainer.max_steps={steps[name]}"]
        commands[name] = "pe3d fit prior " + " ".join(f"'{o}'" if "[" in o else o for o in overrides)
        guard = max(0.2, (deadline - time.perf_counter() - 20) / 60)
        machine = [*MACHINE, f"trainer.num_workers={args.loader_workers}", f"out={runs_dir / name}",
                   f"trainer.max_minutes={guard:.2f}", *(["trainer.val_every_n_steps=4"] if args.smoke else [])]
        with (args.out / f"{name}.log").open("w") as log:  # the child keeps its own handle
            procs[name] = subprocess.Popen([sys.executable, "-m", "pe3d.cli", "fit", "prior", *overrides, *machine],
                                           stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    summary = {"rates_s_per_step": rates, "runs": {}}
    for name, proc in procs.items():
        proc.wait()
        run_dir = runs_dir / name
        weights = run_dir / "prior.safetensors"
        meta = {}
        if weights.is_file():
            shutil.copyfile(weights, args.out / f"{name}.safetensors")
            meta = read_metadata(weights)
        summary["runs"][name] = {"rc": proc.returncode, "command": commands[name], "planned_steps": steps[name],
                                 "steps": meta.get("steps"), "train_minutes": meta.get("train_minutes"),
                                 "val_loss": last_validation_loss(run_dir)}
    summary["minutes"] = round((time.perf_counter() - started) / 60, 2)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
