"""Pair generation split over processes, GPUs and nodes: disjoint shards, one manifest merge.

Layout inside a pair-set folder ``out/`` (the same folder :func:`~pe3d.data.pairs.write_pairs`
uses, so training reads a sharded set like any other)::

    out/pairs.json, out/manifest.jsonl        # merged by rank 0; paths point into shards/
    out/shards/rank0003-of-0008/              # one write_pairs folder per rank (its own lock,
        pairs.json, manifest.jsonl, input/ …  #   atomic PNGs and manifest lines, resume)

Rank ``r`` of ``W`` owns the ids ``i < count`` with ``i % W == r`` and writes those not yet
done into its shard with :func:`~pe3d.data.pairs.write_pairs` (``ids=``), so a killed shard
resumes exactly like a single-process run. Ids already in ``out/manifest.jsonl`` or in the
shards of an earlier run with another number of processes count as done, so a job can be
resumed on a different number of GPUs. When every rank has finished (a barrier), rank 0
merges all shard manifests into ``out/manifest.jsonl`` under the folder's lock, written
atomically; merging again changes nothing.

Launch (see :func:`generate_pairs`): ``pe3d pairs --style S --devices 8`` starts the ranks
itself through Lightning Fabric; under ``torchrun`` (or SLURM with matching ``--devices`` /
``--num-nodes``) the ranks are taken from the environment; ``--shard R/W`` runs one shard
with no process group (e.g. a SLURM array task) and ``--merge`` merges afterwards. The process
group only synchronises, so it uses gloo with a long timeout: shards may finish hours apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from pe3d.data.pairs import (
    MANIFEST_FILE,
    META_FILE,
    ManifestError,
    PairRecord,
    check_or_write_meta,
    complete_records,
    locked_pair_set,
    resolve_pair_count,
    write_pairs,
)
from pe3d.io import atomic_write_text, remove_stale_temp_files
from pe3d.errors import InvalidInput

SHARDS_DIR = "shards"
"""Sub-folder of a pair set that holds the per-rank shards."""
BARRIER_TIMEOUT = timedelta(days=7)
"""How long a finished rank waits for the others (shards of a resumed run can be very uneven)."""


def shard_name(rank: int, world_size: int) -> str:
    """Folder name of shard ``rank`` of ``world_size`` (``rank0003-of-0008``)."""
    if not 0 <= rank < world_size:
        raise InvalidInput(f"shard rank must be in [0, {world_size}), got {rank}")
    return f"rank{rank:04d}-of-{world_size:04d}"


def shard_ids(count: int, rank: int, world_size: int) -> list[int]:
    """The ids rank ``rank`` of ``world_size`` owns: ``i < count`` with ``i % world_size == rank``."""
    shard_name(rank, world_size)
    return list(range(rank, count, world_size))


def _world_size_of(folder: Path) -> int | None:
    parts = folder.name.split("-of-")
    return int(parts[1]) if len(parts) == 2 and folder.name.startswith("rank") and parts[1].isdigit() else None


def _shard_folders(out: Path) -> list[Path]:
    root = out / SHARDS_DIR
    return sorted(p for p in root.iterdir() if p.is_dir() and _world_size_of(p)) if root.is_dir() else []


def _shard_records(spec: Any, shard: Path) -> dict[int, PairRecord]:
    """Complete records of a shard, paths made relative to the pair-set folder (settings checked)."""
    if not (shard / META_FILE).is_file():
        return {}
    check_or_write_meta(spec, shard)
    prefix = f"{SHARDS_DIR}/{shard.name}/"
    return {
        i: replace(r, input=prefix + r.input, edited=prefix + r.edited, reference=None if r.reference is None else prefix + r.reference)
        for i, r in complete_records(shard).items()
    }


def _count(spec: Any, count: int | None) -> int:
    from pe3d.styles.registry import build_generator

    return resolve_pair_count(spec, build_generator(spec), count)


def write_shard(
    spec: Any, out: str | Path, rank: int, world_size: int, count: int | None = None, progress: bool = True, batch_size: int = 8
) -> Path:
    """Write (or resume) shard ``rank`` of ``world_size`` of the pair set ``out``; returns the shard folder.

    Ids found in ``out/manifest.jsonl`` or in shards of another world size are not made again.

    Raises:
        ManifestError: ``out`` or a shard holds pairs made with other settings.
    """
    out = Path(out)
    count = _count(spec, count)
    if (out / META_FILE).is_file():
        check_or_write_meta(spec, out)  # fail before hours of work, not at the merge (reads only: the file exists)
    done = set(complete_records(out))
    for shard in _shard_folders(out):
        if _world_size_of(shard) != world_size:  # same-size shards are being written right now by the other ranks
            done |= set(_shard_records(spec, shard))
    folder = out / SHARDS_DIR / shard_name(rank, world_size)
    mine = [i for i in shard_ids(count, rank, world_size) if i not in done]
    write_pairs(spec, folder, count=count, ids=mine, progress=progress, batch_size=batch_size)
    return folder


def merge_shards(spec: Any, out: str | Path, count: int | None = None) -> Path:
    """Merge every shard of ``out`` into ``out/manifest.jsonl`` (atomic, idempotent); returns its path.

    Records already in the manifest are kept; shard records add the ids it lacks. The merged
    manifest is written even when ids are missing, and then the error says how many.

    Raises:
        ManifestError: ids ``0 .. count-1`` are not all present after the merge, or a shard
            holds pairs made with other settings.
    """
    out = Path(out)
    count = _count(spec, count)
    manifest = out / MANIFEST_FILE
    with locked_pair_set(out):
        check_or_write_meta(spec, out)
        remove_stale_temp_files(out)
        merged = complete_records(out)
        before = dict(merged)
        for shard in _shard_folders(out):
            for index, record in _shard_records(spec, shard).items():
                merged.setdefault(index, record)
        if merged != before or not manifest.is_file():
            atomic_write_text(manifest, "".join(merged[i].to_json() + "\n" for i in sorted(merged)))
    missing = [i for i in range(count) if i not in merged]
    if missing:
        raise ManifestError(
            f"{out}: {len(missing)} of {count} pairs missing after merging the shards (first ids: {missing[:5]}); "
            "run the sharded generation again to resume"
        )
    return manifest


def write_pairs_sharded(
    spec: Any,
    out: str | Path,
    rank: int,
    world_size: int,
    barrier: Callable[[], None],
    count: int | None = None,
    progress: bool = True,
    batch_size: int = 8,
) -> Path:
    """One rank's part of a synchronised sharded run: its shard, a barrier, rank 0 merges, a barrier.

    Returns the merged manifest path (on every rank, once the merge is done). A merge error
    is raised on rank 0 after the final barrier, so the other ranks never wait forever.
    """
    write_shard(spec, out, rank, world_size, count, progress=progress and rank == 0, batch_size=batch_size)
    barrier()
    error: Exception | None = None
    if rank == 0:
        try:
            merge_shards(spec, out, count)
        except Exception as caught:  # re-raised below, after releasing the other ranks
            error = caught
    barrier()
    if error is not None:
        raise error
    return Path(out) / MANIFEST_FILE


@dataclass
class LaunchConfig:
    """How many processes make pairs: ``devices`` per node (GPUs, or CPU processes with
    ``accelerator: cpu``) on ``num_nodes`` nodes. Under ``torchrun`` both come from the environment."""

    devices: int = 1
    num_nodes: int = 1
    accelerator: str = "auto"

    def from_environment(self) -> "LaunchConfig":
        """The torchrun layout (``LOCAL_WORLD_SIZE`` / ``WORLD_SIZE``) when launched by torchrun, else ``self``."""
        local, world = os.environ.get("LOCAL_WORLD_SIZE"), os.environ.get("WORLD_SIZE")
        if local and world and self.devices == 1 and self.num_nodes == 1:
            return replace(self, devices=int(local), num_nodes=max(1, int(world) // int(local)))
        return self

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.devices * self.num_nodes > 1


def launch_fabric(launch: LaunchConfig) -> Any:
    """Start (or join) the ranks with Lightning Fabric: DDP with a gloo process group used only
    for barriers. The returned ``Fabric`` has set this rank's CUDA device when on GPUs."""
    from lightning.fabric import Fabric
    from lightning.fabric.strategies import DDPStrategy

    strategy = DDPStrategy(process_group_backend="gloo", timeout=BARRIER_TIMEOUT)
    fabric = Fabric(accelerator=launch.accelerator, devices=launch.devices, num_nodes=launch.num_nodes, strategy=strategy)
    fabric.launch()
    return fabric


def generate_pairs(spec: Any, out: str | Path, count: int | None = None, launch: LaunchConfig | None = None,
                   progress: bool = True) -> Path:
    """Write (or resume) a style's pair set in ``out`` on one process or, sharded, on many.

    One process (``devices * num_nodes == 1`` and not under torchrun) is plain
    :func:`~pe3d.data.pairs.write_pairs`; otherwise the ranks are launched (or joined) with
    :func:`launch_fabric` and run :func:`write_pairs_sharded`. Returns the manifest path.
    """
    launch = (launch or LaunchConfig()).from_environment()
    if not launch.distributed:
        return write_pairs(spec, out, count=count, progress=progress)
    fabric = launch_fabric(launch)
    return write_pairs_sharded(spec, out, fabric.global_rank, fabric.world_size, fabric.barrier, count, progress=progress)
