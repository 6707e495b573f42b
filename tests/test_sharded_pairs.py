"""Sharded pair generation: 2 CPU processes (Lightning Fabric, gloo), resume, merge, manual shards."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from pe3d.cli import main
from pe3d.data.pairs import MANIFEST_FILE, ManifestError, PairDataset, read_manifest, write_pairs
from pe3d.data.sharding import SHARDS_DIR, merge_shards, shard_ids, shard_name, write_shard
from pe3d.recipes.editing import ensure_pairs
from pe3d.styles import load_style, unregister_generator

from style_helpers import PLUGIN, TEST, TRAIN  # noqa: E402

COUNT = 10


@pytest.fixture
def styles(tmp_path, monkeypatch):
    """A styles folder (on $PE3D_STYLE_PATH) with the fast plugin style ``tiny``; yields (folder, spec)."""
    gname = f"tiny-{uuid.uuid4().hex[:8]}"
    root = tmp_path / "styles"
    folder = root / "tiny"
    folder.mkdir(parents=True)
    data = {"generator": gname, "params": {"shift": 0.5}, "prompts": {"train": TRAIN, "test": TEST},
            "pairs": {"count": COUNT, "resolution": 16, "image_fraction": 0.5}}
    (folder / "style.yaml").write_text(yaml.safe_dump(data))
    (folder / "generator.py").write_text(PLUGIN.replace("{gname}", gname))
    monkeypatch.setenv("PE3D_STYLE_PATH", str(root))
    yield root, load_style(folder)
    unregister_generator(gname)


def pixels_by_id(folder: Path) -> dict[int, tuple[bytes, ...]]:
    return {r.id: tuple((folder / p).read_bytes() for p in r.files()) for r in read_manifest(folder / MANIFEST_FILE)}


def test_shard_ids_partition_the_ids():
    parts = [shard_ids(COUNT, r, 3) for r in range(3)]
    assert sorted(i for part in parts for i in part) == list(range(COUNT))
    with pytest.raises(ValueError, match="rank"):
        shard_name(3, 3)


def test_two_processes_write_exactly_n_unique_pairs_and_resume(styles, tmp_path):
    root, spec = styles
    out = tmp_path / "sharded"
    # resume state: rank 1 of 2 was killed after ids 1 and 3 (torn last line, temp file left) ...
    rank1 = out / SHARDS_DIR / shard_name(1, 2)
    write_pairs(spec, rank1, count=COUNT, ids=[1, 3], progress=False)
    with open(rank1 / MANIFEST_FILE, "a") as handle:
        handle.write('{"id": 5, "inp')
    (rank1 / "input" / ".000005.png.abc.tmp").write_bytes(b"half")
    kept = {p: p.stat().st_mtime_ns for p in rank1.rglob("*.png")}
    # ... and an earlier 3-process run had made id 5 (its shard 2 of 3)
    write_pairs(spec, out / SHARDS_DIR / shard_name(2, 3), count=COUNT, ids=[5], progress=False)

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pe3d.cli", "pairs", "--style", "tiny", "--out", str(out), "--count", str(COUNT),
               "--devices", "2", "--accelerator", "cpu"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    records = read_manifest(out / MANIFEST_FILE)
    assert sorted(r.id for r in records) == list(range(COUNT))  # exactly N, each once
    by_id = {r.id: r for r in records}
    assert by_id[5].input.startswith(f"{SHARDS_DIR}/{shard_name(2, 3)}/")  # not made again
    for rank in (0, 1):
        shard = out / SHARDS_DIR / shard_name(rank, 2)
        ids = sorted(r.id for r in read_manifest(shard / MANIFEST_FILE))
        assert ids == [i for i in range(rank, COUNT, 2) if i != 5]
        assert all(by_id[i].input.startswith(f"{SHARDS_DIR}/{shard.name}/") for i in ids)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # the finished pairs were not rewritten
    assert not list(out.rglob("*.tmp"))
    assert len(PairDataset(out)) == COUNT

    # the same pixels as one uninterrupted single-process run
    single = tmp_path / "single"
    write_pairs(spec, single, count=COUNT, progress=False)
    assert pixels_by_id(out) == pixels_by_id(single)

    # merging again changes nothing
    before = (out / MANIFEST_FILE).read_bytes()
    merge_shards(spec, out, COUNT)
    assert (out / MANIFEST_FILE).read_bytes() == before


def test_manual_shards_then_merge_from_the_cli(styles, tmp_path, capsys):
    _, spec = styles
    out = tmp_path / "manual"
    base = ["pairs", "--style", "tiny", "--out", str(out), "--count", str(COUNT)]
    assert main([*base, "--shard", "0/2"]) == 0
    assert main([*base, "--merge"]) == 2  # shard 1 is missing
    assert "5 of 10 pairs missing" in capsys.readouterr().err
    assert main([*base, "--shard", "1/2"]) == 0
    assert main([*base, "--merge"]) == 0
    assert sorted(r.id for r in read_manifest(out / MANIFEST_FILE)) == list(range(COUNT))
    assert main([*base, "--shard", "2/2"]) == 2
    # a shard made with other settings is refused, naming the difference
    other = load_style(spec.path, overrides=["params.shift=0.1"])
    with pytest.raises(ManifestError, match=r"params\.shift"):
        write_shard(other, out, 0, 2, COUNT)


def test_ensure_pairs_reads_a_complete_set_without_taking_the_lock(styles, tmp_path):
    """Every rank of a DDP training launch calls ensure_pairs at once: a complete set must not need the lock."""
    pairs_dir = tmp_path / "pairs"
    folder = ensure_pairs("tiny", str(pairs_dir), 4)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process "is writing"
        assert ensure_pairs("tiny", str(pairs_dir), 4) == folder
        with pytest.raises(ManifestError, match="another process"):
            ensure_pairs("tiny", str(pairs_dir), 5)  # incomplete: needs the lock
