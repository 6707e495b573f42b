"""``generator: instruct-pix2pix`` with BLIP captions: real tiny diffusers / transformers models end to end."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from pe3d.cli import main
from pe3d.config import ConfigError
from pe3d.data.pairs import MANIFEST_FILE, load_png, read_manifest, write_pairs
from pe3d.geometry import label_from_yaw_pitch
from pe3d.styles import build_generator, load_style
from pe3d.styles.captioning import Captioner, CaptionerConfig
from pe3d.styles.ip2p import caption_to_instruction, quantize

from style_helpers import TEST, TRAIN  # noqa: E402
from tiny_hf import fake_hf_cache, save_tiny_blip, save_tiny_ip2p  # noqa: E402

RES = 32
TEMPLATE = "make it look like {caption}"
YAWS = [-0.4, -0.2, 0.0, 0.2, 0.4, 0.3]


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny models run faster on one thread (and much faster when other processes share the CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny InstructPix2Pix pipeline and a tiny BLIP, saved with ``save_pretrained`` (built once)."""
    root = tmp_path_factory.mktemp("hf")
    return save_tiny_ip2p(root / "ip2p"), save_tiny_blip(root / "blip")


@pytest.fixture(scope="module")
def portraits(tmp_path_factory):
    """Six portraits in EG3D's FFHQ layout (``00000/img*.png``) with a ``dataset.json`` of camera labels."""
    root = tmp_path_factory.mktemp("ffhq")
    labels = []
    for k, yaw in enumerate(YAWS):
        name = f"00000/img{k:08d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pixels = torch.randint(0, 256, (48, 48, 3), generator=torch.Generator().manual_seed(k), dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(root / name)
        labels.append([name, label_from_yaw_pitch(yaw, 0.0)[0].tolist()])
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


def make_style(root: Path, name: str, params: dict, **pairs) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    data = {
        "generator": "instruct-pix2pix",
        "params": {"steps": 2, "dtype": "float32", "device": "cpu", **params},
        "prompts": {"train": TRAIN, "test": TEST},
        "pairs": {"count": 6, "resolution": RES, "seed": 3, "image_fraction": 0.5, **pairs},
    }
    (folder / "style.yaml").write_text(yaml.safe_dump(data))
    return folder


def folder_params(models, portraits, **extra) -> dict:
    ip2p, blip = models
    return {"model": str(ip2p), "source": "folder", "dir": str(portraits), "instruction": TEMPLATE,
            "captioner": {"model": str(blip), "min_new_tokens": 2, "max_new_tokens": 6, "num_beams": 1, "device": "cpu"}, **extra}


@functools.lru_cache(maxsize=1)
def load_pipeline(model: Path):
    from diffusers import StableDiffusionInstructPix2PixPipeline

    pipe = StableDiffusionInstructPix2PixPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_pipeline(model: Path, image: torch.Tensor, instruction: str, seed: int) -> torch.Tensor:
    """InstructPix2Pix called directly through diffusers (not through pe3d)."""
    out = load_pipeline(model)(prompt=instruction, image=image[None], num_inference_steps=2, guidance_scale=7.5, image_guidance_scale=1.5,
               generator=torch.Generator().manual_seed(seed), output_type="pt").images
    return quantize(out[0])


def test_folder_pairs_end_to_end_with_blip_captions_as_instructions(models, portraits, tmp_path, monkeypatch):
    style_root = tmp_path / "styles"
    make_style(style_root, "ip2p_tiny", folder_params(models, portraits))
    spec = load_style(style_root / "ip2p_tiny")
    out = tmp_path / "pairs"
    write_pairs(spec, out, progress=False, batch_size=4)
    records = sorted(read_manifest(out / MANIFEST_FILE), key=lambda r: r.id)
    assert [r.id for r in records] == list(range(6))
    kinds = [r.prompt_kind for r in records]
    assert "text" in kinds and "image" in kinds, kinds
    blip = Captioner(CaptionerConfig(model=str(models[1]), min_new_tokens=2, max_new_tokens=6, num_beams=1, device="cpu"))
    for record, yaw in zip(records, YAWS):
        inp, edited = load_png(out / record.input), load_png(out / record.edited)
        assert inp.shape == edited.shape == (3, RES, RES)
        # the camera is the portrait's dataset.json label
        assert torch.allclose(torch.tensor(record.camera), label_from_yaw_pitch(yaw, 0.0)[0], atol=1e-6)
        if record.prompt_kind == "text":
            assert record.prompt in TRAIN
        else:
            caption = blip(load_png(out / record.reference)[None])[0]
            assert caption and record.prompt == caption_to_instruction(TEMPLATE, caption) != TEMPLATE
        # the pseudo label is InstructPix2Pix's edit of the stored input under the stored instruction and seed
        assert torch.equal(edited, run_pipeline(models[0], inp, record.prompt, record.seed)), record
        assert not torch.equal(edited, inp)

    # `pe3d pairs` through discovery writes the same pixels (same seed -> same pixels)
    monkeypatch.setenv("PE3D_STYLE_PATH", str(style_root))
    again = tmp_path / "again"
    assert main(["pairs", "--style", "ip2p_tiny", "--out", str(again), "--count", "3"]) == 0
    for record in records[:3]:
        for rel in record.files():
            assert (again / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_another_seed_gives_other_pixels(models, portraits, tmp_path):
    edits = []
    for seed in (3, 4):
        make_style(tmp_path / str(seed), "ip2p_seed", folder_params(models, portraits), seed=seed, image_fraction=0.0)
        generator = build_generator(load_style(tmp_path / str(seed) / "ip2p_seed"))
        edits.append(generator.generate([0])[0].edited)
    assert not torch.equal(edits[0], edits[1])


def test_reference_folder_and_world_portraits(models, portraits, tmp_path):
    refs = tmp_path / "refs"
    refs.mkdir()
    for k in range(2):
        Image.fromarray(torch.full((RES, RES, 3), 60 + 120 * k, dtype=torch.uint8).numpy()).save(refs / f"ref{k}.png")
    make_style(tmp_path, "ip2p_refs", folder_params(models, portraits, source="world", dir="", references=str(refs)),
               count=3, image_fraction=1.0, pose={"kind": "ffhq"})
    spec = load_style(tmp_path / "ip2p_refs")
    pairs = build_generator(spec).generate([0, 1])
    originals = [quantize(torch.full((3, RES, RES), (60 + 120 * k) / 255.0)) for k in range(2)]
    for pair in pairs:
        pair.check()
        assert pair.identity >= 0 and pair.prompt.startswith("make it look like ")
        assert any(torch.equal(pair.reference, ref) for ref in originals)
        assert not torch.equal(pair.camera, label_from_yaw_pitch(0.0, 0.0)[0])  # drawn from the ffhq pose distribution


def test_eg3d_samples_as_input_portraits(models, portraits, tmp_path):
    """``source: eg3d``: a tiny EG3D generator file in the format ``pe3d import-eg3d`` writes."""
    from pe3d.eg3d import TriPlaneGenerator, load_eg3d_config
    from pe3d.eg3d.importer import EG3D_KIND
    from pe3d.models.checkpoints import save_model

    torch.manual_seed(0)
    eg3d = TriPlaneGenerator(load_eg3d_config("tiny")).eval()
    weights = save_model(eg3d, eg3d.cfg, EG3D_KIND, tmp_path / "eg3d_tiny.safetensors", {}, "float32")
    make_style(tmp_path, "ip2p_eg3d", folder_params(models, portraits, source="eg3d", dir="", eg3d=str(weights)),
               image_fraction=0.0, identity_offset=5)
    generator = build_generator(load_style(tmp_path / "ip2p_eg3d"))
    first, second = generator.generate([0, 1])
    assert (first.identity, second.identity) == (5, 6) and first.input.shape == (3, RES, RES)
    assert not torch.equal(first.input, second.input) and first.input.std() > 0.01
    assert torch.equal(generator.generate([0])[0].input, first.input)  # deterministic per pair
    assert first.prompt in TRAIN


def test_hub_ids_resolve_from_the_local_cache_only(models, portraits, tmp_path):
    cache = tmp_path / "hf-cache"
    fake_hf_cache(cache, "tiny-org/instruct-pix2pix", models[0])
    fake_hf_cache(cache, "tiny-org/blip", models[1])
    params = folder_params(models, portraits, model="tiny-org/instruct-pix2pix", cache_dir=str(cache))
    params["captioner"].update(model="tiny-org/blip", cache_dir=str(cache))
    make_style(tmp_path, "ip2p_hub", params, image_fraction=1.0)
    pair = build_generator(load_style(tmp_path / "ip2p_hub")).generate([1])[0]
    assert pair.prompt_kind == "image" and pair.prompt.startswith("make it look like ")


def test_missing_model_names_the_id_and_the_places_searched(models, portraits, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    make_style(tmp_path / "styles", "ip2p_missing", folder_params(models, portraits, model="nobody/no-such-ip2p", cache_dir=str(cache)))
    spec = load_style(tmp_path / "styles" / "ip2p_missing")  # loading checks values only
    with pytest.raises(FileNotFoundError, match=r"InstructPix2Pix pipeline 'nobody/no-such-ip2p' not found locally") as info:
        build_generator(spec)
    assert str(cache) in str(info.value)
    assert "\n" not in str(info.value)
    monkeypatch.setenv("PE3D_STYLE_PATH", str(tmp_path / "styles"))
    assert main(["pairs", "--style", "ip2p_missing", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "nobody/no-such-ip2p" in err and str(cache) in err


@pytest.mark.parametrize(
    "params, pairs, key",
    [
        ({"instruction": "make it gold"}, {}, "params.instruction"),
        ({"source": "ffhq"}, {}, "params.source"),
        ({"truncation_psi": -1.0}, {}, "params.truncation_psi"),
        ({"steps": 0}, {}, "params.steps"),
        ({"dtype": "float8"}, {}, "params.dtype"),
        ({"captioner": {"num_beams": 0}}, {}, "params.captioner.num_beams"),
        ({"guidance": 2.0}, {}, "params.guidance"),
        ({}, {"resolution": 36}, "pairs.resolution"),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(tmp_path, params, pairs, key):
    make_style(tmp_path, "ip2p_bad", {"source": "world", **params}, **pairs)
    with pytest.raises(ConfigError, match=rf"style\.yaml: key '{key}"):
        load_style(tmp_path / "ip2p_bad")


def test_missing_portrait_folder_is_a_clear_error(models, tmp_path):
    make_style(tmp_path, "ip2p_nodir", {"model": str(models[0]), "source": "folder"})
    with pytest.raises(ConfigError, match=r"key 'params.dir': a folder of input portraits"):
        build_generator(load_style(tmp_path / "ip2p_nodir"))
