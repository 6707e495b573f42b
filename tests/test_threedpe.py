"""The 3DPE / Live3D import, checked against data taken from the authors' code (not from pe3d).

* ``tests/data/threedpe_keys.json``: the key -> shape layout of their ``3dpe.pt`` (the
  ``state_dict()`` of their ``Live3DEditingEncoder("LT")`` and ``TriplaneRenderer``, recorded by
  ``tools/threedpe_parity.py goldens`` from EzioBy/3dpe);
* ``tests/data/threedpe_golden.safetensors``: inputs and outputs of their modules for the parts
  where their code differs from pe3d's defaults (coordinate channels, the reference
  cross-attention, E_t, E_low's ViT head, the equalised-lr decoder), run with weights from
  :func:`pe3d.threedpe.fabricate.fabricate_tensor` (seed 0), which the tests rebuild key by key.

The end-to-end tests use a reduced-width variant with the same switches and key rules
(``tests/data/threedpe_tiny.yaml``); a full-size fabricated checkpoint (171 M values) takes
about a minute to make on this CPU and is left to the parity tool (docs/threedpe_parity.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pe3d.cli import main
from pe3d.eg3d.renderer import OSGDecoder
from pe3d.models.cross_attention import PromptCrossAttention
from pe3d.models.editor import EditorCore, load_editor
from pe3d.models.layers import coordinate_channels
from pe3d.models.prior import PriorModel
from pe3d.models.prior_encoder import LowResEncoder, TriplaneViTDecoder
from pe3d.threedpe.fabricate import fabricate_state, fabricate_tensor, their_layout
from pe3d.threedpe.importer import model_config
from pe3d.threedpe.keymap import ENCODER_PART, IGNORED, RENDERER_PART, map_key, their_key

DATA = Path(__file__).resolve().parent / "data"
TINY = DATA / "threedpe_tiny.yaml"


@pytest.fixture(scope="module")
def layout() -> dict:
    return json.loads((DATA / "threedpe_keys.json").read_text())


@pytest.fixture(scope="module")
def golden() -> dict:
    return load_file(DATA / "threedpe_golden.safetensors")


@pytest.fixture(scope="module")
def cfg():
    return model_config()


def _close(ours: torch.Tensor, theirs: torch.Tensor, tol: float = 1e-5) -> None:
    assert ours.shape == theirs.shape
    scale = theirs.abs().max().item()
    diff = (ours - theirs).abs().max().item()
    assert diff <= tol * max(scale, 1.0), f"max |diff| {diff:.3g} (|theirs| max {scale:.3g})"


def _load_part(module: torch.nn.Module, layout: dict, their_prefix: str | tuple[str, ...], our_prefix: str, cfg):
    """Fill ``module`` with the fabricated tensors of their keys under ``their_prefix``; returns them and the
    module's keys left without a tensor."""
    state = {}
    for key, shape in layout[ENCODER_PART].items():
        if key.startswith(their_prefix):
            ours = map_key(ENCODER_PART, key, cfg.prior.encoder)
            assert ours.startswith(our_prefix), (key, ours)
            state[ours[len(our_prefix):]] = fabricate_tensor(ENCODER_PART, key, shape, seed=0)
    missing, unexpected = module.load_state_dict(state, strict=False)
    assert not unexpected, unexpected
    return state, missing


# --- the key map against their recorded layout --------------------------------------------------------


def test_their_layout_maps_one_to_one_onto_our_editor_and_prior(layout, cfg):
    with torch.device("meta"):
        editor = EditorCore(cfg)
        prior = PriorModel(cfg.prior)
    ours = {k: tuple(v.shape) for k, v in editor.state_dict().items()}
    mapped, ignored = {}, []
    for part, keys in layout.items():
        for key, shape in keys.items():
            target = map_key(part, key, cfg.prior.encoder)
            assert target is not None, f"{part}:{key} has no rule"
            if target == IGNORED:
                ignored.append(key)
                continue
            assert target not in mapped, f"{key} and another key both map to {target}"
            mapped[target] = tuple(shape)
            assert their_key(target, cfg.prior.encoder) == (part, key)
    assert ignored and all(k.startswith(("encoder.layer3.", "encoder.layer4.")) for k in ignored)
    assert mapped == ours  # same keys, same shapes
    live3d = {k for k in mapped if not k.startswith(("cross_attention.", "image_encoder."))}
    assert live3d == set(prior.state_dict())
    assert sum(math.prod(s) for s in layout[ENCODER_PART].values()) == 171_006_752  # their 171 M encoder


def test_unknown_keys_have_no_rule(cfg):
    enc = cfg.prior.encoder
    assert map_key(ENCODER_PART, "Final_encoder.output_net.2.weight", enc) is None  # an upsample has no weight
    assert map_key(ENCODER_PART, "encoder.layer1.3.conv1.weight", enc) is None  # ResNet-34 layer1 has 3 blocks
    assert map_key(ENCODER_PART, "Ref_encoder.proj_tail.bias", enc) is None
    assert map_key(RENDERER_PART, "backbone.mapping.fc0.weight", enc) is None
    with pytest.raises(KeyError, match="no counterpart"):
        their_key("encoder.low.vit.norm.weight", enc)


# --- golden outputs of their modules ------------------------------------------------------------------


def test_coordinate_channels_are_their_raw_pixel_indices(golden):
    x, image = golden["coords.x"], golden["coords.image"]
    assert torch.equal(x[:, :3], image)
    assert torch.equal(coordinate_channels(1, 16, 24, mode="pixels"), x[:, 3:])
    assert x[0, 3].max().item() == 15 and x[0, 4].max().item() == 23


def test_reference_cross_attention_matches_their_encoder_ref(golden, layout, cfg):
    block = PromptCrossAttention(cfg.cross_attention).eval()
    _, missing = _load_part(block, layout, ("Ref_encoder.pre_conv.", "Ref_encoder.patch_emb.", "Ref_encoder.proj_tail."),
                            "cross_attention.", cfg)
    assert not missing
    with torch.no_grad():
        out = block(golden["attn.f_high"], golden["attn.tokens"])
    _close(out, golden["attn.out"])
    assert not torch.allclose(out, golden["attn.f_high"])  # it replaces F_h rather than adding to it


def test_e_t_matches_their_final_encoder(golden, layout, cfg):
    enc = dataclasses.replace(cfg.prior.encoder, triplane_resolution=2 * golden["final.f_a"].shape[-1])
    decoder = TriplaneViTDecoder(enc, 128, 128).eval()
    _, missing = _load_part(decoder, layout, "Final_encoder.", "encoder.decoder.", cfg)
    assert not missing
    with torch.no_grad():
        planes = decoder(golden["final.f_a"], golden["final.f_g"])
    _close(planes.reshape(golden["final.out"].shape), golden["final.out"])


def test_e_low_vit_head_matches_their_encoder_f(golden, layout, cfg):
    side = golden["low_vit.out"].shape[-1]
    enc = dataclasses.replace(cfg.prior.encoder, image_size=4 * side, triplane_resolution=2 * side)
    low = LowResEncoder(enc).eval()
    _, missing = _load_part(low, layout, "F_encoder.", "encoder.low.", cfg)
    assert all(not k.startswith(("vit.", "head.")) for k in missing)
    low.stem = low.stages = low.aspp = torch.nn.Identity()  # feed the ViT stage directly, as their EncoderF
    with torch.no_grad():
        out = low(golden["low_vit.in"])
    _close(out, golden["low_vit.out"])


def test_decoder_equalised_lr_matches_their_osg_decoder(golden, layout):
    decoder = OSGDecoder(32, 64, 32)
    state = {k[len("decoder."):]: fabricate_tensor(RENDERER_PART, k, s, seed=0)
             for k, s in layout[RENDERER_PART].items() if k.startswith("decoder.")}
    decoder.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = decoder(golden["decoder.in"], None)
    _close(out.features, golden["decoder.rgb"])
    _close(out.sigma, golden["decoder.sigma"])


# --- a fabricated checkpoint in their layout, end to end ------------------------------------------------


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    cfg = model_config(TINY)
    layout = their_layout(EditorCore(cfg).state_dict(), cfg.prior.encoder)
    layout[ENCODER_PART]["encoder.layer3.0.conv1.weight"] = [32, 16, 3, 3]  # smp keeps ResNet stages it never runs
    state = fabricate_state(layout, seed=3)
    path = tmp_path_factory.mktemp("threedpe") / "3dpe.pt"
    torch.save({**state, "step": 100, "opts": {"lr": 1e-4}}, path)  # their trainer saves extras beside the weights
    return path


def _portrait(path: Path) -> Path:
    from skimage.data import astronaut

    Image.fromarray(astronaut()).save(path)
    return path


def test_import_3dpe_then_edit_a_photo(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "editor.safetensors"
    assert main(["import-3dpe", str(tiny_checkpoint), str(out), "--model", str(TINY)]) == 0
    assert "editor" in capsys.readouterr().out
    editor = load_editor(out)
    assert editor.text_encoder is None and editor.cfg.cross_attention.residual is False
    their = torch.load(tiny_checkpoint, weights_only=True)
    assert torch.equal(editor.cross_attention.out_conv.weight, their[ENCODER_PART]["Ref_encoder.proj_tail.weight"])
    assert torch.equal(editor.renderer.const, their[RENDERER_PART]["const"])

    photo, ref = _portrait(tmp_path / "photo.png"), tmp_path / "ref.png"
    Image.fromarray(np.asarray(Image.open(photo))[:, ::-1]).save(ref)
    folder = tmp_path / "edit"
    code = main(["edit", str(photo), "--weights", str(out), "--prompt-image", str(ref), "--out", str(folder),
                 "--views", "2", "--resolution", "16"])
    assert code == 0
    edited = np.asarray(Image.open(folder / "edited.png"))
    assert edited.shape == (64, 64, 3)  # the 4x super-resolved image of the tiny variant
    assert edited.std() > 0

    code = main(["edit", str(photo), "--weights", str(out), "--prompt", "a statue", "--out", str(tmp_path / "t")])
    assert code == 2
    assert "no text encoder" in capsys.readouterr().err


def test_live3d_checkpoint_imports_as_a_prior(tmp_path, capsys):
    cfg = model_config(TINY)
    layout = their_layout(PriorModel(cfg.prior).state_dict(), cfg.prior.encoder)
    path = tmp_path / "encoder_render.pt"
    torch.save(fabricate_state(layout, seed=4), path)
    out = tmp_path / "prior.safetensors"
    assert main(["import-3dpe", str(path), str(out), "--model", str(TINY)]) == 0
    assert "prior" in capsys.readouterr().out
    from pe3d.models.prior import load_prior

    prior = load_prior(out)
    with torch.no_grad():
        planes = prior(torch.rand(1, 3, 64, 64))
        render = prior.render(planes, torch.tensor([[1.0, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 2.7, 0, 0, 0, 1,
                                                      4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]]))
    assert planes.shape == (1, 3, 8, 32, 32) and render.image_sr.shape == (1, 3, 64, 64)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _bad_files(tmp: Path, good: Path) -> dict[str, tuple[Path, str]]:
    data = torch.load(good, weights_only=True)
    unknown = {**data, ENCODER_PART: {**data[ENCODER_PART], "Extra_encoder.weight": torch.zeros(1)}}
    missing = {**data, ENCODER_PART: {k: v for k, v in data[ENCODER_PART].items() if k != "EHigh_encoder.net.0.weight"}}
    shaped = {**data, RENDERER_PART: {**data[RENDERER_PART], "const": torch.zeros(1, 1, 3)}}
    cases = {
        "unknown key": (unknown, r"unknown keys \['encoder_state_dict:Extra_encoder\.weight'\]"),
        "missing key": (missing, r"missing \['encoder\.high\.net\.0\.conv\.weight'\]"),
        "wrong shape": (shaped, r"shape mismatches \['renderer\.const: \(1, 1, 3\) vs \(1, 1, 16\)'\]"),
        "not their checkpoint": ({"G": {}}, r"not a 3DPE/Live3D checkpoint \(expected \['encoder_state_dict', 'renderer_state_dict'\]"),
        "unknown entry": ({**data, "surprise": 1}, r"unknown top-level entries \['surprise'\]"),
    }
    files = {}
    for name, (obj, message) in cases.items():
        path = tmp / f"{name.replace(' ', '_')}.pt"
        torch.save(obj, path)
        files[name] = (path, message)
    cut = tmp / "truncated.pt"
    cut.write_bytes(good.read_bytes()[:4000])
    files["truncated"] = (cut, r"truncated\.pt: not a readable torch file")
    bomb = tmp / "bomb.pt"
    torch.save({"x": _RunsCode(str(tmp / "PWNED"))}, bomb)
    files["pickled code"] = (bomb, r"bomb\.pt: refused by torch\.load\(weights_only=True\).*nothing was executed")
    files["missing file"] = (tmp / "nope.pt", r"nope\.pt: file not found")
    return files


def test_bad_checkpoints_give_one_line_errors(tiny_checkpoint, tmp_path, capsys):
    for name, (path, message) in _bad_files(tmp_path, tiny_checkpoint).items():
        code = main(["import-3dpe", str(path), str(tmp_path / "out.safetensors"), "--model", str(TINY)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
        assert re.search(message, err), (name, err)
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_mini_defaults_unchanged():
    """The switches default to pe3d's own behaviour: unit coordinates, residual attention with projections."""
    from pe3d.models.cross_attention import PromptCrossAttentionConfig
    from pe3d.models.prior_encoder import PriorEncoderConfig

    enc, att = PriorEncoderConfig(), PromptCrossAttentionConfig()
    assert (enc.coordinates, enc.vit_qkv_bias, enc.vit_final_norm, enc.align_corners, enc.t_fuse_activation) == (
        "unit", True, True, False, True)
    assert (att.projections, att.prompt_norm, att.residual, att.output) == (True, True, True, "linear")
    assert pickle.dumps(enc)  # plain dataclasses


# --- alignment for their checkpoints ------------------------------------------------------------------------


def test_eg3d_square_frames_the_standard_face_like_eg3d_preprocessing():
    """EG3D: fit Deep3DFaceRecon's 5-point face (POS), scale to 300 px per unit, keep the centre 700 of 1024."""
    from pe3d.faces.align import LM3D_STD, eg3d_square, ffhq_square

    scale, centre = 200.0, np.array([400.0, 300.0])
    five = LM3D_STD[:, :2] * [1.0, -1.0] * scale + centre - 0.5  # pixel-index coordinates, y down
    landmarks = np.zeros((68, 2))
    landmarks[36:42], landmarks[42:48], landmarks[30], landmarks[48], landmarks[54] = five
    square = eg3d_square(landmarks)
    np.testing.assert_allclose(square.centre, centre, atol=1e-6)  # the face model's origin
    assert square.side == pytest.approx(700 * scale / 300)
    assert (five[1, 0] - five[0, 0]) / square.side == pytest.approx(0.2663, abs=1e-4)  # eyes 0.266 of the width
    assert square.side / ffhq_square(landmarks).side == pytest.approx(0.939, abs=1e-3)  # tighter than FFHQ


def test_imported_editor_picks_the_eg3d_framing(tiny_checkpoint, tmp_path):
    from pe3d.pipeline import EditPipeline

    out = tmp_path / "editor.safetensors"
    assert main(["import-3dpe", str(tiny_checkpoint), str(out), "--model", str(TINY)]) == 0
    pipe = EditPipeline.from_pretrained(out)
    assert pipe.framing == "eg3d"
    result = pipe(torch.rand(3, 80, 80), prompt_image=torch.rand(3, 40, 40), resolution=16)
    assert result.image.shape == (1, 3, 64, 64) and result.depth.shape == (1, 1, 64, 64)
    with pytest.raises(ValueError, match="no text encoder"):
        pipe(torch.rand(3, 64, 64), prompt="a statue")


def test_imported_editor_meshes(tiny_checkpoint, tmp_path):
    """pe3d.mesh reads the EG3D renderer's density (softplus(sigma - 1)) over its box."""
    from pe3d.mesh import density_grid
    from pe3d.threedpe.importer import load_threedpe

    editor = load_threedpe(tiny_checkpoint, TINY)
    planes = torch.randn(1, 3, 8, 32, 32)
    grid = density_grid(editor.renderer, planes, resolution=8)
    out = editor.renderer.query_field(planes, torch.zeros(1, 1, 3))
    assert grid.shape == (8, 8, 8) and (grid >= 0).all()
    assert editor.renderer.config.ray_march.box_warp == 1.0 and out.sigma.shape == (1, 1, 1)


def test_reference_images_are_resized_like_their_loader(cfg):
    """Their test loader: torchvision 0.14 ``Resize(224, bicubic)`` on a float tensor = bicubic without antialias."""
    from pe3d.models.prompt_encoders import build_prompt_encoder

    image_cfg = cfg.prompt_encoder.image
    assert image_cfg.resize_antialias is False
    tiny = dataclasses.replace(image_cfg, tiny={"img_size": 32, "patch_size": 16, "embed_dim": 32, "depth": 1, "num_heads": 2},
                               out_dim=32)
    encoder = build_prompt_encoder(tiny)
    image = torch.rand(1, 3, 70, 70)
    expected = torch.nn.functional.interpolate(image, size=(32, 32), mode="bicubic", align_corners=False, antialias=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(encoder.preprocess(image), (expected - mean) / std)


def test_web_page_service_edits_with_an_imported_editor(tiny_checkpoint, tmp_path):
    """The web page's EditService on an imported editor: EG3D framing, reference-image prompts, text refused."""
    from pe3d.pipeline import EditPipeline
    from pe3d.web.service import EditService
    from pe3d.web.settings import WebSettings

    out = tmp_path / "editor.safetensors"
    assert main(["import-3dpe", str(tiny_checkpoint), str(out), "--model", str(TINY)]) == 0
    service = EditService(WebSettings(view_yaws_deg=[30.0], resolution=16), pipe_factory=lambda: EditPipeline.from_pretrained(out))
    photo, ref = _portrait(tmp_path / "photo.png"), tmp_path / "ref.png"
    Image.fromarray(np.asarray(Image.open(photo))[:, ::-1]).save(ref)
    result = service.edit(str(photo), reference=str(ref))
    assert result.edited.shape == (64, 64, 3) and len(result.gallery) == 1
    assert "face found" in result.note
    with pytest.raises(ValueError, match="no text encoder"):
        service.edit(str(photo), prompt="a bronze statue")


# --- adaptation and the web page on an imported editor ------------------------------------------------------


@pytest.fixture(scope="module")
def imported(tiny_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny fabricated 3DPE editor and a fabricated Live3D "LT" prior of the same sizes, both imported."""
    folder = tmp_path_factory.mktemp("imported")
    cfg = model_config(TINY)
    live3d = folder / "encoder_render.pt"
    torch.save(fabricate_state(their_layout(PriorModel(cfg.prior).state_dict(), cfg.prior.encoder), seed=4), live3d)
    editor, prior = folder / "3dpe.safetensors", folder / "live3d.safetensors"
    assert main(["import-3dpe", str(tiny_checkpoint), str(editor), "--model", str(TINY)]) == 0
    assert main(["import-3dpe", str(live3d), str(prior), "--model", str(TINY)]) == 0
    return editor, prior


def _write_style(folder: Path, name: str, **extra) -> Path:
    import yaml

    spec = {"generator": "filter", "params": {"filter": "golden_statue", "source": "world"},
            "pairs": {"count": 4, "resolution": 32, "seed": 5, "image_fraction": 0.5},
            "adapt": {"num_pairs": 3, "max_steps": 2, "batch_size": 2, "lr": 0.01, "max_minutes": None},
            "prompts": {"train": ["golden statue"], "test": ["a gold figure"]}, **extra}
    (folder / name).mkdir(parents=True)
    (folder / name / "style.yaml").write_text(yaml.safe_dump(spec))
    return folder / name


def test_fit_adapt_on_an_imported_editor(imported, tmp_path, monkeypatch, capsys):
    """``pe3d fit adapt`` on the imported editor: image-prompt styles adapt (pairs made at its input size), the adapter
    loads and changes the edit, ``pe3d edit --style`` uses it; a text-only style and the mini prior are refused in one line."""
    from pe3d.pipeline import EditPipeline

    editor, prior = imported
    styles = tmp_path / "styles"
    monkeypatch.setenv("PE3D_STYLES", str(styles))
    photo = _portrait(tmp_path / "photo.png")
    _write_style(styles, "gold_pairs")  # references: other identities' edits, else the 3DPE loader's rule
    reference = _write_style(styles, "gold_ref", reference="look.png")  # one style-level reference image
    Image.fromarray((np.asarray(Image.open(photo).resize((48, 48))) * [1.0, 0.8, 0.2]).astype(np.uint8)).save(reference / "look.png")
    _write_style(styles, "gold_text", image_prompts=False)
    common = [f"base={editor}", f"prior={prior}", f"pairs_dir={tmp_path / 'pairs'}", "trainer.logger=none",
              "trainer.progress=false"]

    for style in ("gold_pairs", "gold_ref"):
        assert main(["fit", "adapt", "--style", style, *common, f"out={tmp_path / 'runs' / style}"]) == 0, capsys.readouterr().err
        assert (styles / style / "adapter.safetensors").is_file()
    pairs = tmp_path / "pairs" / "gold_pairs@64"  # made at the editor's 64^2 input, not the style's 32^2
    assert np.asarray(Image.open(pairs / "input" / "000000.png")).shape == (64, 64, 3)
    assert not (tmp_path / "pairs" / "gold_pairs").exists()

    pipe = EditPipeline.from_pretrained(editor)
    ref = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    image = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    base = pipe(image, prompt_image=ref, resolution=16).triplane
    name = pipe.load_adapter(styles / "gold_pairs")
    tensors = pipe.adapters[name].tensors
    assert any(k.startswith("image_encoder.backbone.") and "norm" in k for k in tensors)  # E_p's norms (it has no mapper)
    assert any(k.startswith("encoder.decoder.") for k in tensors)  # E_t's norms
    pipe.set_adapter(name)
    adapted = pipe(image, prompt_image=ref, resolution=16).triplane
    assert (adapted - base).abs().max() > 1e-4  # the adapter changes the edit

    out = tmp_path / "edit_ref"
    code = main(["edit", str(photo), "--weights", str(editor), "--style", "gold_ref", "--out", str(out), "--views", "1",
                 "--resolution", "16"])
    assert code == 0, capsys.readouterr().err
    assert (out / "edited.png").is_file()
    code = main(["edit", str(photo), "--weights", str(editor), "--style", "gold_pairs", "--out", str(tmp_path / "e2")])
    assert code == 2 and "give --prompt-image" in capsys.readouterr().err

    code = main(["fit", "adapt", "--style", "gold_text", *common, f"out={tmp_path / 'runs' / 'text'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "style 'gold_text' prompts with text only" in err and "has no text encoder" in err
    code = main(["fit", "adapt", "--style", "gold_pairs", f"base={editor}", f"pairs_dir={tmp_path / 'pairs'}",
                 f"out={tmp_path / 'runs' / 'mini'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "does not match the base editor" in err and "prior=live3d.safetensors" in err


def test_web_page_serves_an_edit_from_an_imported_editor(imported, tmp_path):
    """``pe3d serve --weights`` on an imported editor, over HTTP: the page's edit endpoint with a reference image."""
    pytest.importorskip("gradio", reason='the web interface is an optional extra: pip install -e ".[test]"')
    import socket

    from gradio_client import Client, handle_file

    from pe3d.web import serve
    from pe3d.web.settings import WebSettings

    editor, _ = imported
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    photo, ref = _portrait(tmp_path / "photo.png"), tmp_path / "ref.png"
    Image.fromarray(np.asarray(Image.open(photo))[:, ::-1]).save(ref)
    app = serve(WebSettings(port=port, weights=str(editor), resolution=16, view_yaws_deg=[30.0]), block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        status, edited, view, depth, gallery = client.predict(handle_file(str(photo)), "(none)", "", handle_file(str(ref)),
                                                              1.0, 20, 0, api_name="/run_edit")
        assert "pe3d-error" not in status and "face found" in status, status
        assert np.asarray(Image.open(edited)).shape == (64, 64, 3)  # 16^2 render, 4x super-resolved
        assert len(gallery) == 1
        status, *_ = client.predict(handle_file(str(photo)), "(none)", "a bronze statue", None, 1.0, 20, 0, api_name="/run_edit")
        assert "no text encoder" in status
    finally:
        app.close()


def test_web_adapt_tab_on_an_imported_editor(imported, tmp_path, monkeypatch):
    """The page's Adapt tab with ``pe3d serve --weights 3dpe prior=live3d``: uploaded photo pairs become an image-prompt
    style, adapted through fit adapt (EG3D framing, the editor's input size); editing with it asks for a reference."""
    pytest.importorskip("gradio", reason='the web interface is an optional extra: pip install -e ".[test]"')
    from pe3d.web.adapt import AdaptService
    from pe3d.web.app import PageHandlers
    from pe3d.web.service import EditService
    from pe3d.web.settings import WebSettings

    editor, prior = imported
    monkeypatch.setenv("PE3D_STYLES", str(tmp_path / "styles"))
    settings = WebSettings(weights=str(editor), prior=str(prior), resolution=16, view_yaws_deg=[30.0],
                           runs_dir=str(tmp_path / "runs"))
    editing = EditService(settings)
    handlers = PageHandlers(editing, AdaptService(settings, editing.input_size))
    photo = _portrait(tmp_path / "photo.png")
    before, after = [], []
    for i, tint in enumerate(([1.0, 0.8, 0.2], [0.9, 0.75, 0.3])):  # the photo and its mirror, tinted gold
        pixels = np.asarray(Image.open(photo))[:, ::-1 if i else 1]
        Image.fromarray(pixels).save(tmp_path / f"b{i}.png")
        Image.fromarray((pixels * np.array(tint)).astype(np.uint8)).save(tmp_path / f"a{i}.png")
        before.append(str(tmp_path / f"b{i}.png"))
        after.append(str(tmp_path / f"a{i}.png"))
    status, _ = handlers.run_adapt("gold_web", "make it golden", before, after, 2, progress=lambda *a, **k: None)
    assert "is ready" in status, status
    assert (tmp_path / "styles" / "gold_web" / "adapter.safetensors").is_file()
    pairs = tmp_path / "runs" / "gold_web" / "pairs" / "gold_web@64-eg3d"
    assert pairs.is_dir(), sorted(p.name for p in (tmp_path / "runs" / "gold_web" / "pairs").iterdir())
    status, *_ = handlers.run_edit(str(photo), "gold_web", "", None, 1.0, 20, 0)
    assert "upload a reference image" in status
    status, edited, *_ = handlers.run_edit(str(photo), "gold_web", "", str(tmp_path / "a0.png"), 1.0, 20, 0)
    assert "adapter gold_web" in status and edited.shape == (64, 64, 3)
