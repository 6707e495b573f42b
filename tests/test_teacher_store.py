"""The refined teacher's triplanes kept on disk across runs (pe3d.systems.teacher_store)."""

import logging
from dataclasses import replace

import torch

from pe3d.systems.editing import AdaptSystem
from pe3d.systems.teacher_store import RefinedTeacherStore, stored_fingerprints, teacher_provenance
from test_view_bank import _batch, _system


def test_store_returns_a_residual_only_for_the_images_it_was_made_from(tmp_path, caplog):
    from pe3d.io import load_tensors

    store = RefinedTeacherStore(tmp_path, "abc123")
    residual, fingerprint = torch.randn(3, 4, 8, 8) * 0.1, torch.tensor([1.5, 2.25, 0.5], dtype=torch.float64)
    assert store.load(("zombie", 7), fingerprint) is None
    kept = store.save(("zombie", 7), fingerprint, residual)
    assert store.path(("zombie", 7)) == tmp_path / "abc123" / "zombie" / "7.safetensors"
    assert load_tensors(store.path(("zombie", 7)))[0]["residual"].dtype == torch.float16  # half the disk
    assert kept.dtype == torch.float32 and torch.equal(kept, residual.half().float())
    assert 0 < (kept - residual).abs().max() <= 5e-4 * residual.abs().max()
    assert torch.equal(store.load(("zombie", 7), fingerprint), kept)  # what the writing run used
    assert store.load(("zombie", 7), fingerprint + 1e-6) is None  # other images under the same key
    assert store.load(("zombie", 8), fingerprint) is None
    assert (store.reads, store.writes) == (1, 1) and "1 read from, 1 written to" in store.summary()
    store.path(("zombie", 7)).write_bytes(b"\x00" * 5)  # a truncated file: fitted again, with a warning
    with caplog.at_level(logging.WARNING):
        assert store.load(("zombie", 7), fingerprint) is None
    assert "7.safetensors is unreadable" in caplog.text


def test_stored_fingerprints_tell_a_mirrored_image():
    image = torch.rand(2, 3, 8, 8)
    mirrored = image.flip(-1)
    assert torch.allclose(stored_fingerprints(image)[:, :2], stored_fingerprints(mirrored)[:, :2])
    assert not torch.allclose(stored_fingerprints(image)[:, 2], stored_fingerprints(mirrored)[:, 2], rtol=1e-9, atol=0)


def test_provenance_follows_the_teacher_and_the_settings():
    system = _system(view_bank=0)
    teacher = system.teacher
    base = teacher_provenance(teacher, "steps=10")
    assert base == teacher_provenance(teacher, "steps=10") and len(base) == 16
    assert base != teacher_provenance(teacher, "steps=11")
    with torch.no_grad():
        next(teacher.parameters()).add_(1e-3)
    assert base != teacher_provenance(teacher, "steps=10")


def test_a_later_run_reads_the_refined_teacher_instead_of_fitting_it(tmp_path):
    """The first system fits and writes each pair's refined triplane; a second one (a new run: empty memory
    cache) reads them without rendering the teacher, and gets the same triplanes; other refinement settings or
    other images are fitted again."""
    batch = _batch()
    edited, label = batch["edited_image"], batch["label"]
    keys = [("golden_statue", i) for i in range(edited.shape[0])]

    def run(steps: int, images: torch.Tensor):
        base = _system(view_bank=0)
        system = AdaptSystem(base.editor, base.teacher, replace(base.cfg, teacher_refine_steps=steps, teacher_store=str(tmp_path)))
        calls = []
        hook = system.teacher.renderer.register_forward_hook(lambda *_: calls.append(1))
        with torch.no_grad():
            planes = system._teacher_planes("teacher_edited", images, keys, label)
        hook.remove()
        return planes, system.teacher_store, len(calls)

    first, store, first_calls = run(3, edited)
    assert first_calls == 3 and (store.reads, store.writes) == (0, len(keys))
    second, store, second_calls = run(3, edited)
    assert second_calls == 0 and (store.reads, store.writes) == (len(keys), 0)
    assert torch.equal(first, second)
    _, other, other_calls = run(2, edited)  # other settings: another folder, fitted again
    assert other_calls == 2 and other.writes == len(keys) and other.folder != store.folder
    changed = edited.clone()
    changed[0] = changed[0].flip(-1)  # a mirrored image: the same sum and sum of squares
    _, again, _ = run(3, changed)  # one pair's image differs: only that one is fitted again
    assert (again.reads, again.writes) == (len(keys) - 1, 1)


def test_a_store_of_float32_triplanes_is_converted_instead_of_fitted_again(tmp_path):
    """A store written before the float16 residual format (its folder named without the format) is read once,
    turned into residuals against the recomputed feed-forward triplanes, and gives the same refined triplanes
    to within the float16 rounding, without rendering the teacher."""
    from pe3d.io import load_tensors, save_tensors

    batch = _batch()
    edited, label = batch["edited_image"], batch["label"]
    keys = [("golden_statue", i) for i in range(edited.shape[0])]

    def system():
        base = _system(view_bank=0)
        return AdaptSystem(base.editor, base.teacher, replace(base.cfg, teacher_refine_steps=3, teacher_store=str(tmp_path)))

    first = system()
    with torch.no_grad():
        refined = first._teacher_planes("teacher_edited", edited, keys, label)
        feed_forward = first.teacher(edited)
    store = first.teacher_store
    legacy = store.legacy_folder
    assert legacy is not None and legacy != store.folder
    for path in store.folder.rglob("*.safetensors"):  # rewrite the store as the old format held it
        key = (path.parent.name, int(path.stem))
        old = RefinedTeacherStore(tmp_path, legacy.name)
        tensors, _ = load_tensors(path)
        save_tensors(old.path(key), {"planes": refined[key[1]], "fingerprint": tensors["fingerprint"]})
        path.unlink()

    second = system()
    calls = []
    hook = second.teacher.renderer.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        converted = second._teacher_planes("teacher_edited", edited, keys, label)
    hook.remove()
    assert calls == [] and second.teacher_store.converted == len(keys) and "converted from" in second.teacher_store.summary()
    torch.testing.assert_close(converted, refined, atol=5e-4 * (refined - feed_forward).abs().max().item(), rtol=0)
    assert len(list(second.teacher_store.folder.rglob("*.safetensors"))) == len(keys)  # written in the new format
    assert len(list(legacy.rglob("*.safetensors"))) == len(keys)  # the old files are left in place
