"""pe3d as a user gets it from a wheel: built from a copy of the sources, installed non-editable into
its own folder, run from an unrelated working directory with this checkout out of reach.

The install reuses this environment's third-party packages (torch & co.) but not its ``site``
set-up (``python -S``), so the editable install's path hook never runs; the test checks that
``pe3d.__file__`` lies inside the install folder and that nothing is written there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pe3d", "configs", "styles", "benchmarks", "setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md")

RUNNER = textwrap.dedent(
    """
    import sys
    install, site_packages = sys.argv[1], sys.argv[2]
    sys.path[:] = [install, site_packages] + [p for p in sys.path if p not in ("", ".")]
    from importlib.metadata import distributions

    import pe3d
    print("PE3D_FILE", pe3d.__file__, flush=True)
    print("EDITABLE_FINDERS", [type(f).__module__ for f in sys.meta_path if "editable" in type(f).__module__], flush=True)
    dist = next(d for d in distributions(path=[install]) if d.metadata["Name"] == "pe3d")
    (script,) = [e for e in dist.entry_points if e.group == "console_scripts" and e.name == "pe3d"]
    main = script.load()
    for line in sys.stdin.read().splitlines():
        argv = line.split()
        print("RUN", " ".join(argv), flush=True)
        code = main(argv)
        print("EXIT", code, flush=True)
        if code:
            sys.exit(code)
    """
)


def _copy_sources(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "builtin", "*.egg-info")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.mark.slow
def test_wheel_installs_and_runs_styles_edit_and_adapt_from_anywhere(tmp_path):
    src, dist, install, work = (tmp_path / name for name in ("src", "dist", "install", "work"))
    for folder in (src, dist, work):
        folder.mkdir()
    _copy_sources(src)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PE3D_", "PYTHONPATH"))}
    env.update(HF_HUB_OFFLINE="1", PIP_NO_INDEX="1", PYTHONDONTWRITEBYTECODE="1", PE3D_CACHE=str(tmp_path / "cache"))

    build = subprocess.run([sys.executable, "-c", f"import setuptools.build_meta as b; print(b.build_wheel({str(dist)!r}))"],
                           cwd=src, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("pe3d-*.whl")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-deps", "--no-compile",
                          "-q", "--target", str(install), str(wheel)], env=env, capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr[-3000:]
    builtin = install / "pe3d" / "builtin"
    for shipped in ("configs/model/mini.yaml", "configs/experiment/paper.yaml", "styles/golden_statue/style.yaml",
                    "benchmarks/ci/table1.yaml"):
        assert (builtin / shipped).is_file(), f"{shipped} is not in the wheel"
    assert not list(builtin.rglob("*.safetensors")), "adapters or pair sets were packed as built-ins"
    assert not (ROOT / "pe3d" / "builtin").exists(), "the build wrote into the checkout"
    before = _snapshot(install)

    commands = [
        "styles",
        "world --out world --count 1 --resolution 64",
        "fit adapt --style golden_statue num_pairs=2 trainer.max_steps=2 system.render_resolution=8 system.num_views=1 "
        "system.image_log_every=0 system.input_ray_stride=1 system.view_ray_stride=1 trainer.progress=false trainer.logger=none",
        "styles",
        "edit world/grid.png --style golden_statue --no-align --views 2 --resolution 16 --out edited",
    ]
    run = subprocess.run([sys.executable, "-S", "-c", RUNNER, str(install), sysconfig.get_paths()["purelib"]],
                         input="\n".join(commands), cwd=work, env=env, capture_output=True, text=True, timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-4000:]

    pe3d_file = next(line.split(" ", 1)[1] for line in run.stdout.splitlines() if line.startswith("PE3D_FILE"))
    assert Path(pe3d_file).is_relative_to(install), pe3d_file
    assert "EDITABLE_FINDERS []" in run.stdout, run.stdout[:2000]
    listings = run.stdout.split("RUN styles")[1:]
    assert f"golden_statue        {builtin / 'styles' / 'golden_statue'}" in listings[0], listings[0]
    # after adapting, the user's copy of the built-in style (with its adapter) takes its place
    adapter = work / "styles" / "golden_statue" / "adapter.safetensors"
    assert adapter.is_file() and (work / "styles" / "golden_statue" / "style.yaml").is_file()
    assert f"golden_statue        {work / 'styles' / 'golden_statue'}" in listings[1], listings[1]
    assert (work / "runs" / "adapt" / "golden_statue" / "config.yaml").is_file()
    for name in ("edited.png", "depth.png", "turntable.gif"):
        assert (work / "edited" / name).is_file(), name
    assert _snapshot(install) == before, "something was written into the installed package"
