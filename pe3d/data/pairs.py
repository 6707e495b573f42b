"""Pseudo-label pair sets on disk, and their dataset / ``LightningDataModule``.

Layout of a pair set (one style)::

    out_dir/
        pairs.json        # settings that determine the content (checked on resume)
        manifest.jsonl    # one JSON object per pair (see PairRecord)
        input/000000.png  # portrait I
        edited/000000.png # pseudo label I_gt
        reference/000000.png  # image prompt (image-prompt pairs only)

Crash safety: every PNG is written to a temporary file and renamed; a manifest line is
appended (one ``write`` of a whole line, then ``fsync``) only after its PNGs exist. A kill
can therefore leave at most a torn *last* line, which the writer detects and drops; pairs
are deterministic per id, so re-running :func:`write_pairs` continues at the missing ids and
ends with exactly the same files as an uninterrupted run. A lock file stops two writers
sharing a folder.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from pe3d.data.prompt_augment import PromptAugmentConfig, augment_prompt, names_style, no_edit_prompt
from pe3d.errors import InvalidInput
from pe3d.geometry import mirror_camera_labels
from pe3d.images import quantize_uint8
from pe3d.io import atomic_write, atomic_write_text, remove_stale_temp_files

__all__ = [
    "MANIFEST_FILE",
    "META_FILE",
    "PROMPT_SOURCES",
    "ManifestError",
    "check_or_write_meta",
    "complete_records",
    "locked_pair_set",
    "pair_set_complete",
    "resolve_pair_count",
    "PairDataConfig",
    "PairDataset",
    "PairRecord",
    "collate_pairs",
    "load_png",
    "pair_set_meta",
    "read_manifest",
    "read_meta",
    "split_ids",
    "write_pairs",
]

MANIFEST_FILE = "manifest.jsonl"
"""The JSONL manifest of a pair set."""
META_FILE = "pairs.json"
"""Settings of a pair set (style, generator, params, pair settings, prompts)."""
LOCK_FILE = ".lock"
IMAGE_DIRS = ("input", "edited", "reference")
PROMPT_SOURCES = ("stored", "image")
"""Values of :attr:`PairDataConfig.prompt_source` (see :class:`PairDataset`)."""
FORMAT_VERSION = 1


class ManifestError(InvalidInput):
    """A manifest or pair-set folder is malformed; the message names the file (and line)."""


@dataclass
class PairRecord:
    """One manifest line. Paths are relative to the pair-set folder.

    ``prompt_kind`` is ``image`` when ``reference`` is set, else ``text``; ``identity`` is
    the world identity index (``-1`` when not from the world).
    """

    id: int
    input: str
    edited: str
    reference: str | None
    camera: list[float]
    prompt: str
    prompt_kind: str
    seed: int
    style: str
    identity: int = -1

    def to_json(self) -> str:
        """One compact JSON line (no trailing newline)."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_obj(cls, obj: Any, where: str) -> "PairRecord":
        """Validate a parsed JSON object; ``ManifestError`` names ``where`` and the field."""
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        expected = {f for f in cls.__dataclass_fields__}
        missing = sorted(expected - set(obj) - {"identity"})
        if missing:
            raise ManifestError(f"{where}: missing field '{missing[0]}'")
        unknown = sorted(set(obj) - expected)
        if unknown:
            raise ManifestError(f"{where}: unknown field '{unknown[0]}'")

        def check(name: str, ok: bool, want: str) -> None:
            if not ok:
                raise ManifestError(f"{where}: field '{name}': expected {want}, got {obj.get(name)!r}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        check("id", is_int(obj["id"]) and obj["id"] >= 0, "a non-negative integer")
        for name in ("input", "edited", "prompt", "style"):
            check(name, isinstance(obj[name], str) and bool(obj[name]), "a non-empty string")
        check("reference", obj["reference"] is None or (isinstance(obj["reference"], str) and bool(obj["reference"])), "a path or null")
        camera = obj["camera"]
        check(
            "camera",
            isinstance(camera, list) and len(camera) == 25 and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in camera),
            "a list of 25 finite numbers",
        )
        check("prompt_kind", obj["prompt_kind"] in ("text", "image"), "'text' or 'image'")
        check("prompt_kind", (obj["prompt_kind"] == "image") == (obj["reference"] is not None), "'image' exactly when 'reference' is set")
        check("seed", is_int(obj["seed"]), "an integer")
        check("identity", is_int(obj.get("identity", -1)), "an integer")
        for name in ("input", "edited", "reference"):
            value = obj[name]
            if value is not None and (os.path.isabs(value) or ".." in Path(value).parts):
                raise ManifestError(f"{where}: field '{name}': path {value!r} must stay inside the pair folder")
        return cls(**{**obj, "camera": [float(v) for v in camera]})

    def files(self) -> list[str]:
        """Relative paths of the record's images."""
        return [p for p in (self.input, self.edited, self.reference) if p is not None]


def _split_lines(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete lines and the torn remainder (bytes after the last newline)."""
    *lines, tail = data.split(b"\n")
    return lines, tail


def read_manifest(path: str | Path, drop_torn_tail: bool = False) -> list[PairRecord]:
    """Parse ``manifest.jsonl`` into records (file order).

    Args:
        path: the manifest, or its pair-set folder.
        drop_torn_tail: ignore an unterminated last line (an interrupted write) instead of
            raising.

    Raises:
        ManifestError: naming the file and line of the first bad line, a torn last line
            (unless dropped) or a duplicated id.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    data = path.read_bytes()
    lines, tail = _split_lines(data)
    if tail.strip() and not drop_torn_tail:
        raise ManifestError(
            f"{path}:{len(lines) + 1}: truncated last line (interrupted write?); run write_pairs again to resume"
        )
    records: list[PairRecord] = []
    seen: dict[int, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise ManifestError(f"{where}: not valid JSON: {error}") from None
        record = PairRecord.from_obj(obj, where)
        if record.id in seen:
            raise ManifestError(f"{where}: duplicate id {record.id} (first on line {seen[record.id]})")
        seen[record.id] = number
        records.append(record)
    return records


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The ``pairs.json`` settings of a pair set (ManifestError when missing or malformed)."""
    path = Path(folder) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{path}: pair-set settings not found (not a write_pairs folder?)") from None
    except (OSError, ValueError) as error:
        raise ManifestError(f"{path}: cannot read: {error}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise ManifestError(f"{path}: unsupported pair-set format {meta.get('format') if isinstance(meta, dict) else meta!r}")
    return meta


def pair_set_meta(spec: Any) -> dict[str, Any]:
    """The settings that determine a pair set's content (written to ``pairs.json``)."""
    pairs = asdict(spec.pairs)
    pairs.pop("count", None)
    return {
        "format": FORMAT_VERSION,
        "style": spec.name,
        "generator": spec.generator,
        "params": dict(spec.params),
        "image_prompts": bool(spec.image_prompts),
        "pairs": pairs,
        "prompts": {"train": list(spec.prompts.train), "test": list(spec.prompts.test)},
    }


def _diff(old: Any, new: Any, prefix: str = "") -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = _diff(old.get(key), new.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if old == new else f"{prefix[:-1]}: {old!r} on disk, {new!r} now"


@contextmanager
def locked_pair_set(folder: Path) -> Iterator[None]:
    """Hold the pair-set folder's writer lock (``ManifestError`` when another process holds it)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ManifestError(f"{folder}: another process is writing pairs here") from None
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _save_png(path: Path, image: Tensor) -> None:
    array = quantize_uint8(image).permute(1, 2, 0).contiguous()
    pil = Image.fromarray(array.numpy(), mode="RGB")
    atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def load_png(path: str | Path) -> Tensor:
    """Read an RGB image as ``[3, H, W]`` float in ``[0, 1]``."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        w, h = rgb.size
        data = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).reshape(h, w, 3)
    return data.permute(2, 0, 1).float() / 255.0


def _append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _clean_temp_files(folder: Path) -> None:
    for sub in (folder, *(folder / name for name in IMAGE_DIRS)):
        remove_stale_temp_files(sub)


def _recover(folder: Path, manifest: Path) -> dict[int, PairRecord]:
    """Existing complete records; rewrite the manifest without torn / orphaned lines."""
    if not manifest.is_file():
        return {}
    raw = manifest.read_bytes()
    records = read_manifest(manifest, drop_torn_tail=True)
    kept = [r for r in records if all((folder / p).is_file() for p in r.files())]
    if len(kept) != len(records) or not raw.endswith(b"\n") and raw:
        atomic_write_text(manifest, "".join(r.to_json() + "\n" for r in kept))
    return {r.id: r for r in kept}


def _write_one(folder: Path, manifest: Path, style: str, index: int, pair: Any) -> PairRecord:
    """Write one pair's PNGs (atomically), then append its manifest line."""
    pair.check()
    name = f"{index:06d}.png"
    record = PairRecord(
        id=index,
        input=f"input/{name}",
        edited=f"edited/{name}",
        reference=None if pair.reference is None else f"reference/{name}",
        camera=[float(v) for v in pair.camera.detach().cpu().reshape(-1).tolist()],
        prompt=pair.prompt,
        prompt_kind=pair.prompt_kind,
        seed=int(pair.seed),
        style=style,
        identity=int(pair.identity),
    )
    _save_png(folder / record.input, pair.input)
    _save_png(folder / record.edited, pair.edited)
    if pair.reference is not None:
        _save_png(folder / record.reference, pair.reference)  # type: ignore[operator]
    _append_line(manifest, record.to_json())
    return record


def resolve_pair_count(spec: Any, generator: Any, count: int | None) -> int:
    """``count``, or by default ``spec.pairs.count`` capped to what ``generator`` can make.

    Raises:
        ValueError: ``count`` is negative or exceeds what the generator can make.
    """
    limit = generator.max_pairs()
    if count is None:
        count = spec.pairs.count if limit is None else min(spec.pairs.count, limit)
    if count < 0:
        raise InvalidInput(f"count must be >= 0, got {count}")
    if limit is not None and count > limit:
        raise InvalidInput(f"style {spec.name!r}: generator {spec.generator!r} can make only {limit} pairs, asked for {count}")
    return count


def complete_records(folder: str | Path) -> dict[int, PairRecord]:
    """Read-only: the records of ``folder``'s manifest whose image files all exist, by id
    (a torn last line is ignored; ``{}`` when there is no manifest)."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return {}
    records = read_manifest(folder / MANIFEST_FILE, drop_torn_tail=True)
    return {r.id: r for r in records if all((folder / p).is_file() for p in r.files())}


def check_or_write_meta(spec: Any, folder: str | Path) -> None:
    """Write ``pairs.json`` for ``spec``, or check that the one on disk has the same settings.

    Raises:
        ManifestError: the folder holds pairs made with other settings (the first difference named).
    """
    folder = Path(folder)
    meta = json.loads(json.dumps(pair_set_meta(spec)))
    meta_path = folder / META_FILE
    if meta_path.is_file():
        difference = _diff(read_meta(folder), meta)
        if difference:
            raise ManifestError(f"{meta_path}: pairs here were made with other settings ({difference}); use a new folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")


def pair_set_complete(spec: Any, folder: str | Path, count: int) -> bool:
    """Read-only check: ``folder`` holds pairs ``0 .. count-1`` of ``spec`` (same settings, files present).

    Takes no lock and writes nothing, so any number of processes (e.g. the ranks of a
    distributed training launch) may call it at once.
    """
    folder = Path(folder)
    try:
        if not (folder / META_FILE).is_file() or _diff(read_meta(folder), json.loads(json.dumps(pair_set_meta(spec)))):
            return False
        done = complete_records(folder)
    except ManifestError:
        return False
    return all(i in done for i in range(count))


def write_pairs(
    spec: Any,
    out_dir: str | Path,
    count: int | None = None,
    progress: bool = True,
    batch_size: int = 8,
    ids: Sequence[int] | None = None,
) -> Path:
    """Generate ``count`` pairs of a style into ``out_dir`` (resumable); return the manifest path.

    Args:
        spec: a :class:`~pe3d.styles.spec.StyleSpec`.
        out_dir: the pair-set folder (created).
        count: number of pairs, ids ``0 .. count-1``; default ``spec.pairs.count`` capped to
            what the generator can make.
        progress: show a tqdm bar.
        batch_size: pairs generated per generator call.
        ids: write only these ids (each below ``count``), e.g. one shard of a sharded run
            (:mod:`pe3d.data.sharding`); default all of ``0 .. count-1``.

    Raises:
        ManifestError: the folder holds pairs made with other settings, is being written by
            another process, or its manifest is corrupt before the last line.
        ValueError: ``count`` exceeds what the generator can make.
    """
    from pe3d.styles.registry import build_generator

    folder = Path(out_dir)
    manifest = folder / MANIFEST_FILE
    generator = build_generator(spec)
    count = resolve_pair_count(spec, generator, count)
    wanted = list(range(count)) if ids is None else sorted(set(int(i) for i in ids))
    if wanted and not 0 <= wanted[0] <= wanted[-1] < count:
        raise ValueError(f"ids must lie in [0, {count}), got {wanted[0]} .. {wanted[-1]}")
    with locked_pair_set(folder):
        check_or_write_meta(spec, folder)
        _clean_temp_files(folder)
        done = _recover(folder, manifest)
        todo = [i for i in wanted if i not in done]
        total = len(wanted)
        bar = tqdm(total=total, initial=total - len(todo), desc=f"pairs {spec.name}", unit="pair", disable=not progress)
        try:
            step = max(1, batch_size)
            for start in range(0, len(todo), step):
                batch = todo[start : start + step]
                pairs = generator.generate(batch)
                if len(pairs) != len(batch):
                    raise RuntimeError(f"generator {spec.generator!r} returned {len(pairs)} pairs for {len(batch)} ids")
                for index, pair in zip(batch, pairs):
                    _write_one(folder, manifest, spec.name, index, pair)
                    bar.update(1)
        finally:
            bar.close()
    return manifest


# ----------------------------------------------------------------------------- dataset


class PairDataset(Dataset):
    """The pairs of one pair-set folder.

    Items are dicts: ``id`` (int), ``input_image`` / ``edited_image`` (``[3, H, W]`` float in
    ``[0, 1]``), ``label`` (``[25]`` camera), ``prompt`` (str), ``prompt_kind`` (``text`` or
    ``image``), ``reference`` (``[3, H, W]`` or ``None``), ``has_reference`` (bool), ``style``
    (str), ``identity`` (int). Batch them with :func:`collate_pairs`.

    Prompts: with ``resample_prompts`` a *text* pair gets a random train prompt of its style
    at every load (the paper trains on 8 prompts per style; the stored prompt is one draw),
    taken from ``prompts`` or else the train prompts recorded in ``pairs.json``. Image-prompt
    pairs always keep their stored prompt (the instruction the edit was made with). Without
    ``resample_prompts`` every pair keeps its stored prompt (deterministic). ``prompt_augment``
    then perturbs text prompts (:func:`~pe3d.data.prompt_augment.augment_prompt`); with its
    ``no_edit`` share and ``shared_words`` (words of several styles' prompts), a text pair becomes a
    *no-edit* pair: a prompt of shared words only, the input as the edited image, and the style
    ``"<style>:no-edit"`` (so caches keyed by style and id keep the two apart); with its
    ``no_edit_without_style_word`` and ``style_words`` (this style's words that tell it from the others,
    :func:`~pe3d.data.prompt_augment.style_words`), an augmented prompt left with none of them becomes such
    a no-edit pair too, keeping its words. ``unknown_vocabulary``:
    the words augmentation inserts as unknown ones (``unknown_word_source: vocabulary``; empty: random
    letter strings).

    ``prompt_source`` (one of :data:`PROMPT_SOURCES`): ``stored`` keeps each pair's own prompt;
    ``image`` prompts *every* pair with an image, for editors that read reference images only
    (the imported 3DPE release): a pair's stored reference when it has one, else the edited image
    of a pair of this set drawn at random at every load, the rule of the 3DPE authors' training
    loader (``datasets/dataset_editing.py``: the reference is a random edited image of the same
    style). ``reference`` (``[3, H, W]``), when given, is every pair's image prompt instead (a
    style's own reference image, :attr:`~pe3d.styles.spec.StyleSpec.reference`).

    ``mirror``: the probability that an item is its left/right mirror image: input and edited image
    flipped horizontally, the camera mirrored with them (:func:`~pe3d.geometry.mirror_camera_labels`), the
    reference image kept, and the style ``"<style>:mirrored"`` (a second pair for caches keyed by style
    and id). A pair set of N identities then trains like one of 2N, for styles that treat left and right alike.
    """

    def __init__(
        self,
        folder: str | Path,
        prompts: Sequence[str] | None = None,
        resample_prompts: bool = False,
        ids: Sequence[int] | None = None,
        prompt_augment: PromptAugmentConfig | None = None,
        prompt_source: str = "stored",
        reference: Tensor | None = None,
        shared_words: Sequence[str] = (),
        mirror: float = 0.0,
        unknown_vocabulary: Sequence[str] = (),
        style_words: Iterable[str] = (),
    ) -> None:
        if not 0.0 <= mirror <= 1.0:
            raise InvalidInput(f"mirror: a probability in [0, 1], got {mirror}")
        self.mirror = mirror
        if prompt_source not in PROMPT_SOURCES:
            raise InvalidInput(f"prompt_source must be one of {list(PROMPT_SOURCES)}, got {prompt_source!r}")
        self.prompt_source = prompt_source
        self.reference = reference
        self.folder = Path(folder)
        records = sorted(read_manifest(self.folder / MANIFEST_FILE), key=lambda r: r.id)
        if ids is not None:
            wanted = set(int(i) for i in ids)
            records = [r for r in records if r.id in wanted]
        self.records = records
        self.resample_prompts = resample_prompts
        if prompts is None and resample_prompts:
            meta = read_meta(self.folder) if (self.folder / META_FILE).is_file() else {}
            prompts = meta.get("prompts", {}).get("train") or None
        self.prompts = list(prompts) if prompts else []
        self.prompt_augment = prompt_augment
        self.shared_words = list(shared_words)
        self.unknown_vocabulary = list(unknown_vocabulary)
        self.style_words = frozenset(style_words)

    def __len__(self) -> int:
        return len(self.records)

    def _image(self, relative: str) -> Tensor:
        path = self.folder / relative
        try:
            return load_png(path)
        except (OSError, ValueError) as error:
            raise ManifestError(f"{path}: cannot read image: {error}") from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        prompt = record.prompt
        if self.resample_prompts and self.prompts and record.prompt_kind == "text":
            prompt = self.prompts[int(torch.randint(len(self.prompts), (1,)))]
        no_edit = False
        if self.prompt_augment is not None and record.prompt_kind == "text":
            augment = self.prompt_augment
            text_prompted = self.prompt_source == "stored" and self.reference is None  # no image replaces the text
            no_edit = (bool(self.shared_words) and augment.no_edit > 0 and text_prompted
                       and float(torch.rand(())) < augment.no_edit)
            if no_edit:
                prompt = no_edit_prompt(self.shared_words, augment, vocabulary=self.unknown_vocabulary)
            else:
                written = prompt
                prompt = augment_prompt(prompt, augment, pool=self.prompts, vocabulary=self.unknown_vocabulary)
                no_edit = (augment.no_edit_without_style_word and bool(self.style_words) and prompt != written
                           and text_prompted and not names_style(prompt, self.style_words))
        reference = None if record.reference is None else self._image(record.reference)
        if self.reference is not None:
            reference = self.reference
        elif reference is None and self.prompt_source == "image":
            other = self.records[int(torch.randint(len(self.records), (1,)))]
            reference = self._image(other.edited)
        image = self._image(record.input)
        if reference is not None and reference.shape[-2:] != image.shape[-2:]:
            reference = torch.nn.functional.interpolate(reference[None], size=tuple(image.shape[-2:]), mode="bilinear",
                                                        antialias=True, align_corners=False)[0].clamp(0, 1)
        item = {
            "id": record.id,
            "input_image": image,
            "edited_image": image if no_edit else self._image(record.edited),
            "label": torch.tensor(record.camera, dtype=torch.float32),
            "prompt": prompt,
            "prompt_kind": "image" if reference is not None else record.prompt_kind,
            "reference": reference,
            "has_reference": reference is not None,
            "style": f"{record.style}:no-edit" if no_edit else record.style,
            "identity": record.identity,
        }
        if self.mirror > 0 and float(torch.rand(())) < self.mirror:
            item.update(input_image=item["input_image"].flip(-1), edited_image=item["edited_image"].flip(-1),
                        label=mirror_camera_labels(item["label"][None])[0], style=f"{item['style']}:mirrored")
        return item


def collate_pairs(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch :class:`PairDataset` items.

    Returns:
        ``input_image``, ``edited_image``, ``reference`` ``[B, 3, H, W]`` (zeros where a pair
        has no reference), ``has_reference`` bool ``[B]``, ``label`` ``[B, 25]``, ``id`` and
        ``identity`` int64 ``[B]``, and lists of str ``prompt``, ``prompt_kind``, ``style``.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    inputs = torch.stack([item["input_image"] for item in items])
    shapes = {tuple(item["input_image"].shape) for item in items}
    if len(shapes) > 1:
        raise ValueError(f"pairs of different image sizes in one batch: {sorted(shapes)}")
    reference = torch.zeros_like(inputs)
    for k, item in enumerate(items):
        if item["reference"] is not None:
            reference[k] = item["reference"]
    return {
        "id": torch.tensor([item["id"] for item in items], dtype=torch.int64),
        "input_image": inputs,
        "edited_image": torch.stack([item["edited_image"] for item in items]),
        "label": torch.stack([item["label"] for item in items]),
        "prompt": [item["prompt"] for item in items],
        "prompt_kind": [item["prompt_kind"] for item in items],
        "reference": reference,
        "has_reference": torch.tensor([bool(item["has_reference"]) for item in items], dtype=torch.bool),
        "style": [item["style"] for item in items],
        "identity": torch.tensor([item["identity"] for item in items], dtype=torch.int64),
    }


@dataclass
class PairDataConfig:
    """Settings of :class:`PairDataModule`.

    ``dirs``: pair-set folders (one per style; all at the same resolution); ``limit``: use
    at most this many pairs per folder, lowest ids first (e.g. 10 for fast adaptation);
    ``val_fraction``: share of each folder held out for validation (a seeded permutation);
    ``resample_prompts``, ``prompt_source``: see :class:`PairDataset`; ``reference_image``: an image
    file that prompts every pair (``""``: none; see :class:`PairDataset`).
    """

    dirs: list[str] = field(default_factory=list)
    batch_size: int = 8
    num_workers: int = 0
    val_fraction: float = 0.1
    limit: int | None = None
    resample_prompts: bool = True
    prompt_augment: PromptAugmentConfig = field(default_factory=PromptAugmentConfig)
    """Training-time word dropout / unknown words for text prompts (off by default)."""
    seed: int = 0
    drop_last: bool = False
    prompt_source: str = "stored"
    reference_image: str = ""
    mirror: float = 0.0
    """Probability that a training item is its left/right mirror image (see :class:`PairDataset`; 0 = never).
    On the world's adaptation fixtures (``python tools/adaptation_sweep.py STYLE data.mirror=0.5``) it moved the
    adapted editors by -0.08 / +0.02 / +0.08 dB: the world's key light stands on one side, so a mirrored head
    is lit from the wrong side; photos, mirrored by EG3D's FFHQ training too, are the case it is meant for."""
    style_repeats: dict[str, int] = field(default_factory=dict)
    """Style (a pair folder's name) -> how many times its training pairs appear in an epoch (default 1), so a
    style the editor follows worse is seen more often among the others (e.g. ``{zombie: 3}``)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.mirror <= 1.0:
            raise ValueError(f"data.mirror={self.mirror}: a probability in [0, 1]")
        for style, repeats in dict(self.style_repeats).items():
            if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
                raise ValueError(f"data.style_repeats.{style}={repeats!r}: a whole number of at least 1")


def split_ids(ids: Sequence[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``ids`` into ``(train, val)``; val gets ``round(n * val_fraction)`` ids,
    at least one when ``val_fraction > 0`` and ``n >= 2``."""
    ids = sorted(ids)
    n_val = int(round(len(ids) * val_fraction))
    if val_fraction > 0 and len(ids) >= 2:
        n_val = max(1, min(n_val, len(ids) - 1))
    perm = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)).tolist()
    val = sorted(ids[i] for i in perm[:n_val])
    chosen = set(val)
    return [i for i in ids if i not in chosen], val
