"""Time the mini edit + render of this checkout against an earlier commit, side by side.

    python tools/speed_vs_commit.py a2ff6aa --rounds 3 --calls 20

The earlier commit is checked out into a temporary git worktree; the two versions run in
separate processes that take turns (old, new, old, new, ...), each timing ``--calls`` calls of
``pe3d bench speed``'s mini pipelines (ours and two-stage, shipped weights) after two warm-up
calls, so a load that changes on a shared machine hits both alike. Prints each process's median
milliseconds and, at the end, the median over rounds and the ratio old / new.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TIMER = r"""
import json, statistics, sys, time, torch
from pe3d.bench import speed
from pe3d.bench.config import SpeedSetting
setting = SpeedSetting(name="mini")
models = speed.build_models(setting, torch.device("cpu"))
calls = speed.pipelines(models, setting)
times = {name: [] for name in calls}
with torch.no_grad():
    for fn in calls.values():
        fn(); fn()
    for _ in range(int(sys.argv[1])):
        for name, fn in calls.items():
            start = time.perf_counter(); fn(); times[name].append(1000 * (time.perf_counter() - start))
print(json.dumps({name: statistics.median(values) for name, values in times.items()}))
"""


def time_checkout(source: Path, calls: int) -> dict[str, float]:
    """Median ms per pipeline of the pe3d package under ``source`` (a fresh process)."""
    env = dict(os.environ, PYTHONPATH=str(source))
    out = subprocess.run([sys.executable, "-c", TIMER, str(calls)], cwd=source, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", help="the earlier commit to compare with (e.g. a2ff6aa)")
    parser.add_argument("--rounds", type=int, default=3, help="old/new process pairs (default 3)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per pipeline and process (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.commit], check=True)
        try:
            results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                for label, source in (("old", old), ("new", ROOT)):
                    results[label].append(time_checkout(source, args.calls))
                    print(f"round {round_ + 1} {label}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in results[label][-1].items()), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    for name in results["new"][0]:
        old_ms = statistics.median(r[name] for r in results["old"])
        new_ms = statistics.median(r[name] for r in results["new"])
        print(f"{name}: {args.commit} {old_ms:.1f} ms, this checkout {new_ms:.1f} ms "
              f"({1000 / new_ms:.1f} images/s), {old_ms / new_ms:.2f}x faster")


if __name__ == "__main__":
    main()
