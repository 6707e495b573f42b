"""Pair sets on disk: atomic, resumable writing (including a real SIGKILL), manifests, DataModule."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import torch
import yaml

from pe3d.data.datamodule import PairDataModule
from pe3d.errors import InvalidInput
from pe3d.data.pairs import (
    MANIFEST_FILE,
    ManifestError,
    PairDataConfig,
    PairDataset,
    collate_pairs,
    load_png,
    read_manifest,
    write_pairs,
)
from pe3d.styles import load_named_style, load_style, unregister_generator

from style_helpers import PLUGIN, TEST, TRAIN  # noqa: E402


@pytest.fixture
def tiny_style(tmp_path):
    """A style folder with its own fast generator (32 px); yields the loaded spec."""
    gname = f"tiny-{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "styles" / "tiny"
    folder.mkdir(parents=True)
    data = {
        "generator": gname,
        "params": {"shift": 0.5},
        "prompts": {"train": TRAIN, "test": TEST},
        "pairs": {"count": 12, "resolution": 32, "image_fraction": 0.5},
    }
    (folder / "style.yaml").write_text(yaml.safe_dump(data))
    (folder / "generator.py").write_text(PLUGIN.replace("{gname}", gname))
    yield load_style(folder)
    unregister_generator(gname)


def check_pair_set(folder: Path, count: int, resolution: int) -> list:
    """Manifest parses, ids are exactly 0..count-1 once each, every PNG loads at the right size."""
    records = read_manifest(folder / MANIFEST_FILE)
    assert sorted(r.id for r in records) == list(range(count))
    for record in records:
        for rel in record.files():
            image = load_png(folder / rel)
            assert image.shape == (3, resolution, resolution)
        assert len(record.camera) == 25
        assert record.prompt_kind == ("image" if record.reference else "text")
    assert not list(folder.rglob("*.tmp")), "temporary files left behind"
    return records


def pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_write_pairs_writes_n_pairs(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    manifest = write_pairs(tiny_style, out, 10, progress=False, batch_size=3)
    assert manifest == out / MANIFEST_FILE
    records = check_pair_set(out, 10, 32)
    kinds = {r.prompt_kind for r in records}
    assert kinds == {"text", "image"}
    assert all(r.prompt in TRAIN and r.style == "tiny" for r in records)
    first = json.loads(manifest.read_text().splitlines()[0])
    assert set(first) == {"id", "input", "edited", "reference", "camera", "prompt", "prompt_kind", "seed", "style", "identity"}
    assert json.loads((out / "pairs.json").read_text())["style"] == "tiny"
    # re-running is a no-op; asking for more extends
    before = manifest.read_bytes()
    write_pairs(tiny_style, out, 10, progress=False)
    assert manifest.read_bytes() == before
    write_pairs(tiny_style, out, 12, progress=False)
    check_pair_set(out, 12, 32)


def test_resume_after_deleting_tail_and_torn_line(tiny_style, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    write_pairs(tiny_style, full, 9, progress=False)
    write_pairs(tiny_style, cut, 9, progress=False)
    manifest = cut / MANIFEST_FILE
    lines = manifest.read_text().splitlines(keepends=True)
    # delete the last 3 manifest lines and the PNGs of one of them, then tear the new last line
    for rel in json.loads(lines[-1])["input"], json.loads(lines[-1])["edited"]:
        (cut / rel).unlink()
    manifest.write_text("".join(lines[:-3]) + lines[-3][: len(lines[-3]) // 2])
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:7: truncated last line"):
        read_manifest(manifest)
    assert len(read_manifest(manifest, drop_torn_tail=True)) == 6
    # a stray temp file from a killed atomic write is cleaned up
    (cut / "input" / ".000007.png.abc.tmp").write_bytes(b"partial")
    write_pairs(tiny_style, cut, 9, progress=False)
    check_pair_set(cut, 9, 32)
    assert pngs(cut) == pngs(full)
    key = lambda text: sorted(text.splitlines())  # noqa: E731
    assert key(manifest.read_text()) == key((full / MANIFEST_FILE).read_text())


def test_orphan_manifest_lines_are_regenerated(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 6, progress=False)
    (out / "edited" / "000002.png").unlink()
    write_pairs(tiny_style, out, 6, progress=False)
    check_pair_set(out, 6, 32)


def test_sigkill_mid_run_then_resume(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    count = 60
    code = textwrap.dedent(
        f"""
        import torch
        torch.set_num_threads(1)
        from pe3d.styles import load_style
        from pe3d.data.pairs import write_pairs
        spec = load_style({tiny_style.folder!r})
        write_pairs(spec, {str(out)!r}, {count}, progress=False, batch_size=1)
        """
    )
    env = {**os.environ, "TINY_DELAY": "0.01", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    manifest = out / MANIFEST_FILE
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if manifest.is_file() and manifest.read_bytes().count(b"\n") >= 10:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"writer ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    written = manifest.read_bytes().count(b"\n")
    assert 10 <= written < count
    write_pairs(tiny_style, out, count, progress=False, batch_size=16)
    records = check_pair_set(out, count, 32)
    assert len({r.id for r in records}) == len(records) == count
    reference = tmp_path / "reference"
    write_pairs(tiny_style, reference, count, progress=False, batch_size=16)
    assert pngs(out) == pngs(reference)


def test_settings_mismatch_and_lock(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 2, progress=False)
    changed = load_style(tiny_style.folder, overrides=["pairs.seed=5"])
    with pytest.raises(ManifestError, match=r"pairs\.json: .*pairs\.seed: 0 on disk, 5 now"):
        write_pairs(changed, out, 2, progress=False)
    with open(out / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ManifestError, match="another process is writing"):
            write_pairs(tiny_style, out, 3, progress=False)


def test_read_manifest_errors_name_file_and_line(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 3, progress=False)
    manifest = out / MANIFEST_FILE
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text(lines[0] + "{not json\n" + lines[2])
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: not valid JSON"):
        read_manifest(manifest)
    bad = json.loads(lines[1])
    del bad["camera"]
    manifest.write_text(lines[0] + json.dumps(bad) + "\n")
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: missing field 'camera'"):
        read_manifest(manifest)
    bad = {**json.loads(lines[1]), "camera": [0.0] * 24}
    manifest.write_text(lines[0] + json.dumps(bad) + "\n")
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: field 'camera'"):
        read_manifest(manifest)
    manifest.write_text(lines[0] + lines[0])
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2: duplicate id 0 \(first on line 1\)"):
        read_manifest(manifest)
    bad = {**json.loads(lines[1]), "input": "../../etc/passwd"}
    manifest.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ManifestError, match="must stay inside"):
        read_manifest(manifest)


def test_datamodule_batches(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 12, progress=False)
    dm = PairDataModule(PairDataConfig(dirs=[str(out)], batch_size=4, val_fraction=0.25))
    dm.setup("fit")
    assert len(dm.train_set) == 9 and len(dm.val_set) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_image"].shape == (4, 3, 32, 32) and batch["edited_image"].shape == (4, 3, 32, 32)
    assert batch["label"].shape == (4, 25) and batch["reference"].shape == (4, 3, 32, 32)
    assert batch["has_reference"].dtype == torch.bool and batch["has_reference"].shape == (4,)
    assert batch["id"].shape == (4,) and batch["identity"].dtype == torch.int64
    assert len(batch["prompt"]) == 4 and all(p in TRAIN for p in batch["prompt"])
    assert batch["style"] == ["tiny"] * 4
    assert (batch["reference"][~batch["has_reference"]] == 0).all()
    val = list(dm.val_dataloader())
    assert sum(len(b["prompt"]) for b in val) == 3
    # a pair set holding both kinds batches together, and limit picks the lowest ids
    ds = PairDataset(out)
    items = [ds[i] for i in range(len(ds))]
    assert {item["has_reference"] for item in items} == {True, False}
    batch = collate_pairs(items)
    assert batch["has_reference"].sum() == sum(item["has_reference"] for item in items)
    dm = PairDataModule(PairDataConfig(dirs=[str(out)], batch_size=4, val_fraction=0.0, limit=5))
    dm.setup("fit")
    assert len(dm.train_set) == 5 and dm.val_dataloader() == []


def test_resampled_prompts_only_for_text_pairs(tiny_style, tmp_path):
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 12, progress=False)
    stored = {r.id: r.prompt for r in read_manifest(out)}
    fixed = PairDataset(out, resample_prompts=False)
    assert all(fixed[i]["prompt"] == stored[fixed[i]["id"]] for i in range(len(fixed)))
    custom = PairDataset(out, prompts=["only this"], resample_prompts=True)
    for i in range(len(custom)):
        item = custom[i]
        expected = "only this" if item["prompt_kind"] == "text" else stored[item["id"]]
        assert item["prompt"] == expected


def test_image_prompt_source_gives_every_pair_an_image(tiny_style, tmp_path):
    """``prompt_source=image`` (editors without a text encoder): a pair's own reference, else the edited image of a
    pair of the set (the 3DPE authors' loader); a given ``reference`` prompts every pair, resized to the pairs."""
    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 12, progress=False)
    records = {r.id: r for r in read_manifest(out)}
    assert {r.prompt_kind for r in records.values()} == {"text", "image"}
    stored, edited = PairDataset(out), PairDataset(out, prompt_source="image")
    edits = [stored[i]["edited_image"] for i in range(len(stored))]
    torch.manual_seed(0)
    for i in range(len(edited)):
        item = edited[i]
        assert item["has_reference"] and item["prompt_kind"] == "image"
        if records[item["id"]].reference is not None:
            assert torch.equal(item["reference"], stored[i]["reference"])
        else:
            assert any(torch.equal(item["reference"], e) for e in edits)
    look = torch.rand(3, 48, 48)
    fixed = PairDataset(out, reference=look)
    assert all(fixed[i]["reference"].shape == (3, 32, 32) and fixed[i]["has_reference"] for i in range(len(fixed)))
    with pytest.raises(ValueError, match="prompt_source must be one of"):
        PairDataset(out, prompt_source="text")


def test_world_filter_pairs(tmp_path):
    """The real pipeline: world renders edited by a world style filter (tiny resolution)."""
    spec = load_named_style("bronze_statue", entry_points=False, overrides=["pairs.resolution=16", "pairs.image_fraction=1.0"])
    out = tmp_path / "bronze"
    write_pairs(spec, out, 2, progress=False)
    records = check_pair_set(out, 2, 16)
    assert all(r.prompt_kind == "image" and r.identity >= 0 for r in records)
    assert len({r.identity for r in records}) == 2
    item = PairDataset(out)[0]
    assert (item["input_image"] - item["edited_image"]).abs().mean() > 0.01
    assert (item["input_image"] < 0.99).any()  # a head, not an empty white frame


def test_no_edit_pairs_pair_shared_words_with_the_unedited_input(tiny_style, tmp_path):
    from pe3d.data.prompt_augment import PromptAugmentConfig, shared_words

    assert shared_words([["make it bronze", "a bronze bust"], ["make it blue", "a blue wig"], ["pencil"]]) == ["a", "it", "make"]
    assert shared_words([["make it bronze"]]) == []  # one style: no word is known to carry nothing
    first, second = tmp_path / "a", tmp_path / "b"
    write_pairs(tiny_style, first, 6, progress=False)
    write_pairs(tiny_style, second, 6, progress=False)
    meta = json.loads((second / "pairs.json").read_text())
    meta["prompts"]["train"] = ["paint the prompt blue", "make it blue"]  # shares only "prompt" with TRAIN
    (second / "pairs.json").write_text(json.dumps(meta))
    augment = PromptAugmentConfig(no_edit=1.0, unknown_words=0)
    module = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0,
                                           prompt_augment=augment))
    module.setup("fit")
    text_items = [item for item in (module.train_set[i] for i in range(len(module.train_set)))
                  if item["prompt_kind"] == "text"]
    assert text_items
    for item in text_items:
        assert torch.equal(item["edited_image"], item["input_image"])
        assert item["style"].endswith(":no-edit")
        assert item["prompt"] == "prompt"  # the only word both styles' prompts use
    image_items = [module.train_set[i] for i in range(len(module.train_set)) if module.train_set[i]["prompt_kind"] == "image"]
    assert all(not item["style"].endswith(":no-edit") for item in image_items)
    # off (the default): every text pair keeps its edit
    plain = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0))
    plain.setup("fit")
    assert not any(plain.train_set[i]["style"].endswith(":no-edit") for i in range(len(plain.train_set)))
    edited = [plain.train_set[i] for i in range(len(plain.train_set)) if plain.train_set[i]["prompt_kind"] == "text"]
    assert any(not torch.equal(item["edited_image"], item["input_image"]) for item in edited)


def test_augmented_prompts_without_a_style_word_become_no_edit_pairs(tiny_style, tmp_path):
    """``no_edit_without_style_word``: an augmented prompt that lost every word telling its style from the other's
    keeps its words but trains towards the unedited input; one that keeps such a word keeps its edit."""
    from pe3d.data.prompt_augment import PromptAugmentConfig, names_style, style_words

    words = style_words([["make the portrait bronze", "a bronze statue"], ["make the hair blue", "a marble statue"],
                         ["turn the portrait into a sketch"]])
    # "make", "portrait", "statue": two of the three styles use each, so they tell none apart
    assert words == [{"bronze"}, {"hair", "blue", "marble"}, {"turn", "sketch"}]
    assert style_words([["make it bronze"]]) == [frozenset()]  # one style: nothing to tell apart
    assert names_style("Bronze, please", words[0]) and not names_style("make the portrait", words[0])
    first, second = tmp_path / "a", tmp_path / "b"
    write_pairs(tiny_style, first, 6, progress=False)
    write_pairs(tiny_style, second, 6, progress=False)
    for folder, prompts in ((first, ["make the portrait bronze", "bronze"]), (second, ["make the portrait blue", "blue"])):
        meta = json.loads((folder / "pairs.json").read_text())
        meta["prompts"]["train"] = prompts
        (folder / "pairs.json").write_text(json.dumps(meta))
    augment = PromptAugmentConfig(probability=1.0, word_dropout=0.5, unknown_words=0, no_edit_without_style_word=True)
    module = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0,
                                           resample_prompts=True, prompt_augment=augment))
    module.setup("fit")
    torch.manual_seed(0)
    items = [module.train_set[i] for i in range(len(module.train_set)) for _ in range(8)]
    text_items = [item for item in items if item["prompt_kind"] == "text"]
    kept = [item for item in text_items if {"bronze", "blue"} & set(item["prompt"].split())]
    lost = [item for item in text_items if not {"bronze", "blue"} & set(item["prompt"].split())]
    assert kept and lost  # word dropout at 0.5 drops the style word of some prompts and not of others
    for item in lost:
        assert item["style"].endswith(":no-edit") and torch.equal(item["edited_image"], item["input_image"])
        assert set(item["prompt"].split()) <= {"make", "the", "portrait"}  # the prompt keeps its own words
    for item in kept:
        assert not item["style"].endswith(":no-edit")
        assert not torch.equal(item["edited_image"], item["input_image"])
    # off (the default): the same augmentation keeps every edit
    plain = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0,
                                          resample_prompts=True,
                                          prompt_augment=PromptAugmentConfig(probability=1.0, word_dropout=0.5, unknown_words=0)))
    plain.setup("fit")
    assert not any(plain.train_set[i]["style"].endswith(":no-edit") for i in range(len(plain.train_set)) for _ in range(8))


def test_vocabulary_unknown_words_leave_out_every_pair_sets_training_words(tiny_style, tmp_path):
    from pe3d.data.prompt_augment import PromptAugmentConfig

    first, second = tmp_path / "a", tmp_path / "b"
    write_pairs(tiny_style, first, 4, progress=False)
    write_pairs(tiny_style, second, 4, progress=False)
    meta = json.loads((second / "pairs.json").read_text())
    meta["prompts"]["train"] = ["paint the portrait cobalt"]
    (second / "pairs.json").write_text(json.dumps(meta))
    augment = PromptAugmentConfig(probability=1.0, word_dropout=0.0, unknown_words=3, unknown_word_source="vocabulary")
    module = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0,
                                           prompt_augment=augment))
    module.setup("fit")
    vocabulary = set(module.train_set.datasets[0].unknown_vocabulary)
    assert vocabulary == set(module.train_set.datasets[1].unknown_vocabulary) and len(vocabulary) > 20000
    assert "cobalt" not in vocabulary and "paint" not in vocabulary  # the other set's training words too
    known = {w for p in list(TRAIN) + ["paint the portrait cobalt"] for w in p.lower().split()}
    assert not known & vocabulary
    prompts = [module.train_set[i]["prompt"] for i in range(len(module.train_set)) for _ in range(5)]
    extra = {w for p in prompts for w in p.split() if w not in known}
    assert extra and extra <= vocabulary
    letters = PairDataModule(PairDataConfig(dirs=[str(first)], batch_size=2, val_fraction=0.0,
                                            prompt_augment=PromptAugmentConfig(probability=1.0)))
    letters.setup("fit")
    assert letters.train_set.datasets[0].unknown_vocabulary == []


def test_mirrored_items_flip_images_and_camera(tiny_style, tmp_path):
    """``mirror``: an item becomes its left/right mirror image (images flipped, camera mirrored, style marked for
    caches), the training set only; the camera mirror itself is checked against rays in test_cameras.py."""
    from pe3d.geometry import mirror_camera_labels

    out = tmp_path / "pairs"
    write_pairs(tiny_style, out, 4, progress=False)
    plain, mirrored = PairDataset(out), PairDataset(out, mirror=1.0)
    for i in range(len(plain)):
        a, b = plain[i], mirrored[i]
        assert torch.equal(b["input_image"], a["input_image"].flip(-1))
        assert torch.equal(b["edited_image"], a["edited_image"].flip(-1))
        assert torch.allclose(b["label"], mirror_camera_labels(a["label"][None])[0])
        assert b["style"] == f"{a['style']}:mirrored" and b["id"] == a["id"]
        if a["reference"] is not None:
            assert torch.equal(b["reference"], a["reference"])
    module = PairDataModule(PairDataConfig(dirs=[str(out)], batch_size=2, val_fraction=0.5, mirror=1.0))
    module.setup("fit")
    assert all(module.train_set[i]["style"].endswith(":mirrored") for i in range(len(module.train_set)))
    assert not any(module.val_set[i]["style"].endswith(":mirrored") for i in range(len(module.val_set)))
    with pytest.raises(ValueError, match="mirror: a probability in"):
        PairDataset(out, mirror=1.5)


def test_style_repeats_show_a_style_more_often(tiny_style, tmp_path):
    """``data.style_repeats``: a style's training pairs appear that many times in an epoch (its validation pairs
    once); a name that is no pair folder of the run, or a count below 1, is refused naming the field."""
    first, second = tmp_path / "zombie", tmp_path / "pop_art"
    write_pairs(tiny_style, first, 6, progress=False)
    write_pairs(tiny_style, second, 6, progress=False)
    dm = PairDataModule(PairDataConfig(dirs=[str(first), str(second)], batch_size=2, val_fraction=0.0,
                                       style_repeats={"zombie": 3}))
    dm.setup("fit")
    assert len(dm.train_set) == 6 * 3 + 6
    seen = [str(dm.train_set.datasets[k].folder) for k in range(len(dm.train_set.datasets))]
    assert seen.count(str(first)) == 3 and seen.count(str(second)) == 1
    with pytest.raises(InvalidInput, match="style_repeats.*'marble'"):
        PairDataModule(PairDataConfig(dirs=[str(first)], style_repeats={"marble": 2})).setup("fit")
    with pytest.raises(ValueError, match="style_repeats.zombie=0"):
        PairDataConfig(dirs=[str(first)], style_repeats={"zombie": 0})
