"""One-off parity of pe3d's import of the 3DPE / Live3D checkpoints against the authors' own code.

Their code is never copied into pe3d: fetch it (EzioBy/3dpe, Dong142857/Live3DPortrait) into a
folder outside the repository, install ``segmentation_models_pytorch==0.3.3`` (+ its deps
``pretrainedmodels``, ``efficientnet_pytorch``, ``six``, ``munch``) and ``einops`` somewhere on
``PYTHONPATH``, then (one CPU thread is enough; docs/threedpe_parity.md has the numbers)::

    python tools/threedpe_parity.py theirs /tmp/theirs/3dpe 3dpe /tmp/parity     # their model, their layout
    python tools/threedpe_parity.py ours 3dpe /tmp/parity                        # pe3d import + compare
    python tools/threedpe_parity.py theirs /tmp/theirs/live3d live3d /tmp/parity
    python tools/threedpe_parity.py ours live3d /tmp/parity
    python tools/threedpe_parity.py goldens /tmp/theirs/3dpe tests/data          # small goldens for CI

``theirs`` builds their ``Live3DEditingEncoder`` / ``EG3DInvEncoder`` ("LT") and ``TriplaneRenderer``
on CPU, fills them with :func:`pe3d.threedpe.fabricate.fabricate_state` weights (every key
distinct from its init), writes the checkpoint in their layout and their outputs on a real
portrait (skimage's astronaut) and a real FFHQ camera. ``ours`` imports that checkpoint with
:func:`pe3d.threedpe.importer.load_threedpe` and compares triplanes, renders (same sampling
seed), the decoder and the super-resolution.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time

import torch

CAMERA = [0.8452497124671936, 0.028885385021567345, -0.5335903167724609, 1.3744339756005164, -0.03056236356496811,
          -0.9942903518676758, -0.10223815590143204, 0.27722038701208845, -0.5334968566894531, 0.10272454470396042,
          -0.8395407795906067, 2.307396824072493, 0.0, 0.0, 0.0, 1.0, 4.2647, 0.0, 0.5, 0.0, 4.2647, 0.5, 0.0, 0.0, 1.0]
"""A real FFHQ camera label (cam2world + normalized intrinsics), as printed in Live3D's model.py."""
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _their_modules(repo: str):
    """Import their model code from ``repo`` on CPU, with smp's DeepLabV3 built without an ImageNet download."""
    sys.path.insert(0, repo)
    os.chdir(repo)
    from segmentation_models_pytorch.decoders.deeplabv3 import DeepLabV3

    import models.model as mm

    mm.DeepLabV3 = functools.partial(DeepLabV3, encoder_weights=None)
    mr = None
    if os.path.exists(os.path.join(repo, "models", "model_ref.py")):
        import models.model_ref as mr

        mr.DeepLabV3 = mm.DeepLabV3
    return mm, mr


def _inputs():
    from skimage import data

    img = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255.0  # a real 512^2 portrait
    ref = torch.nn.functional.interpolate(torch.flip(img, dims=[3]), size=(224, 224), mode="area")
    return img.contiguous(), ref.contiguous()


def _fill(module, state):
    """Load ``state`` into one of their modules (every key) and switch it to eval mode."""
    module.load_state_dict(state, strict=True)
    return module.eval()


def theirs(repo: str, kind: str, out: str) -> None:
    from safetensors.torch import save_file

    from pe3d.threedpe.fabricate import fabricate_state

    torch.set_num_threads(1)
    mm, mr = _their_modules(repo)
    t0 = time.time()
    if kind == "3dpe":
        encoder = mr.Live3DEditingEncoder(in_channels=5, mode="LT", encoder_name="resnet34", encoder_depth=3, use_bn=False)
    else:
        encoder = mm.EG3DInvEncoder(in_channels=5, encoder_name="resnet34", encoder_depth=3, mode="LT", use_bn=False)
    renderer = mm.TriplaneRenderer(img_resolution=512, img_channels=3, rendering_kwargs=mm.config_option())
    layout = {"encoder_state_dict": {k: list(v.shape) for k, v in encoder.state_dict().items()},
              "renderer_state_dict": {k: list(v.shape) for k, v in renderer.state_dict().items()}}
    state = fabricate_state(layout, seed=0)
    _fill(encoder, state["encoder_state_dict"])
    _fill(renderer, state["renderer_state_dict"])
    print(f"built {time.time() - t0:.1f}s, encoder {sum(v.numel() for v in state['encoder_state_dict'].values())} tensors' values")
    torch.save(state, f"{out}/theirs_{kind}.pt")
    with open(f"{out}/theirs_{kind}_keys.json", "w") as f:
        json.dump(layout, f, indent=0, sort_keys=True)
    img, ref = _inputs()
    io = {"image01": img, "ref01": ref, "camera": torch.tensor([CAMERA])}
    with torch.no_grad():
        t = time.time()
        planes = encoder(img * 2 - 1, (ref - MEAN) / STD) if kind == "3dpe" else encoder(img * 2 - 1)
        print(f"their encoder {time.time() - t:.1f}s")
        io["triplane"] = planes.contiguous()
        torch.manual_seed(123)
        t = time.time()
        r = renderer(planes, io["camera"])
        print(f"their render {time.time() - t:.1f}s")
        for key in ("image", "image_raw", "image_depth", "feature_image"):
            io[f"render.{key}"] = r[key].clone().contiguous()
        gen = torch.Generator().manual_seed(1)
        feats = torch.randn(1, 3, 4096, 32, generator=gen)
        d = renderer.decoder(feats, None)
        io.update({"decoder.in": feats, "decoder.rgb": d["rgb"].contiguous(), "decoder.sigma": d["sigma"].contiguous()})
        io["sr.out"] = renderer.superresolution(r["image_raw"], r["feature_image"], renderer.const.repeat([1, 1, 1]),
                                                noise_mode="none").contiguous()
    save_file(io, f"{out}/theirs_{kind}_io.safetensors")
    print(f"done {time.time() - t0:.1f}s")


def ours(kind: str, out: str) -> None:
    from safetensors.torch import load_file

    from pe3d.models.editor import Prompts
    from pe3d.threedpe.importer import load_threedpe

    torch.set_num_threads(1)
    io = load_file(f"{out}/theirs_{kind}_io.safetensors")
    t = time.time()
    model = load_threedpe(f"{out}/theirs_{kind}.pt")
    print(f"import {time.time() - t:.1f}s")
    results = {}

    def compare(tag, mine, ref):
        mine, ref = mine.double(), ref.double()
        diff = (mine - ref).abs().max().item()
        rel = ((mine - ref).norm() / ref.norm().clamp_min(1e-30)).item()
        results[tag] = {"max_abs": diff, "rel_l2": rel, "ref_max_abs": ref.abs().max().item(), "shape": list(ref.shape)}
        print(f"| {tag} | {list(ref.shape)} | {ref.abs().max().item():.3g} | {diff:.2e} | {rel:.2e} |")

    with torch.no_grad():
        t = time.time()
        planes = model(io["image01"], Prompts(images=io["ref01"])) if kind == "3dpe" else model(io["image01"])
        print(f"our encoder {time.time() - t:.1f}s")
        print("| output | shape | max abs (theirs) | max abs diff | relative L2 |\n|---|---|---|---|---|")
        compare("triplane", planes.reshape(io["triplane"].shape), io["triplane"])
        their_planes = io["triplane"].view(1, 3, 32, 256, 256)
        torch.manual_seed(123)
        t = time.time()
        r = model.renderer.render_eg3d(their_planes, io["camera"])
        seconds = time.time() - t
        compare("image (super-resolved)", r.image, io["render.image"])
        compare("image_raw", r.image_raw, io["render.image_raw"])
        compare("depth", r.image_depth, io["render.image_depth"])
        compare("feature image", r.features, io["render.feature_image"])
        dec = model.renderer.decoder(io["decoder.in"], None)
        compare("decoder rgb", dec.features, io["decoder.rgb"])
        compare("decoder sigma", dec.sigma, io["decoder.sigma"])
        sr = model.renderer.superresolution(io["render.image_raw"], io["render.feature_image"],
                                            model.renderer.const.repeat(1, 1, 1), noise_mode="none")
        compare("super-resolution", sr, io["sr.out"])
        print(f"our render {seconds:.1f}s")
    with open(f"{out}/parity_{kind}.json", "w") as f:
        json.dump(results, f, indent=1)


def goldens(repo: str, out_dir: str) -> None:
    """Small input/output pairs from their code for the parts where it differs from pe3d's defaults."""
    from safetensors.torch import save_file

    from pe3d.threedpe.fabricate import fabricate_state

    torch.set_num_threads(1)
    mm, mr = _their_modules(repo)
    gen = torch.Generator().manual_seed(7)
    g: dict[str, torch.Tensor] = {}
    encoder = mr.Live3DEditingEncoder(in_channels=5, mode="LT", encoder_name="resnet34", encoder_depth=3, use_bn=False)
    layout = {"encoder_state_dict": {k: list(v.shape) for k, v in encoder.state_dict().items()}}
    renderer = mm.TriplaneRenderer(img_resolution=512, img_channels=3, rendering_kwargs=mm.config_option())
    layout["renderer_state_dict"] = {k: list(v.shape) for k, v in renderer.state_dict().items()}
    with open(os.path.join(out_dir, "threedpe_keys.json"), "w") as f:
        json.dump(layout, f, indent=0, sort_keys=True)
    used = ("Ref_encoder.pre_conv.", "Ref_encoder.patch_emb.", "Ref_encoder.proj_tail.", "Final_encoder.", "F_encoder.", "decoder.")
    subset = {part: {k: s for k, s in keys.items() if k.startswith(used)} for part, keys in layout.items()}
    state = fabricate_state(subset, seed=0)  # the same tensors fabricate_state(layout) would give these keys
    encoder.load_state_dict(state["encoder_state_dict"], strict=False)
    renderer.load_state_dict(state["renderer_state_dict"], strict=False)
    encoder.eval()
    renderer.eval()
    with torch.no_grad():
        # 1. coordinate channels: the 5-channel input their forward builds for a 3-channel image
        captured = {}

        class Stop(Exception):
            pass

        def grab(module, args):
            captured["x"] = args[0].detach().clone()
            raise Stop

        handle = encoder.encoder.register_forward_pre_hook(grab)
        image = torch.rand(1, 3, 16, 24, generator=gen) * 2 - 1
        try:
            encoder(image, None)
        except Stop:
            pass
        handle.remove()
        g["coords.image"], g["coords.x"] = image, captured["x"]
        # 2. the attention block (EncoderRef) on given MAE tokens
        ref = encoder.Ref_encoder
        tokens = torch.randn(1, 7, 768, generator=gen)
        ref.mae_encoder.forward = lambda _img: tokens  # their EncoderRef on given MAE tokens
        f_high = torch.randn(1, 128, 8, 8, generator=gen)
        g["attn.f_high"], g["attn.tokens"], g["attn.out"] = f_high, tokens, ref(f_high, None).contiguous()
        del ref.mae_encoder.forward
        # 3. E_t (EncoderFinal "LT"): fuse conv without activation, ViT without final norm, align_corners upsample
        x, f = torch.randn(1, 128, 4, 4, generator=gen), torch.randn(1, 128, 4, 4, generator=gen)
        g["final.f_a"], g["final.f_g"], g["final.out"] = x, f, encoder.Final_encoder(x, f).contiguous()
        # 4. E_low's ViT + head (EncoderF "LT")
        low = torch.randn(1, 256, 4, 4, generator=gen)
        g["low_vit.in"], g["low_vit.out"] = low, encoder.F_encoder(low).contiguous()
        # 5. the renderer's decoder (equalised-lr layers)
        feats = torch.randn(1, 3, 64, 32, generator=gen)
        d = renderer.decoder(feats, None)
        g["decoder.in"], g["decoder.rgb"], g["decoder.sigma"] = feats, d["rgb"].contiguous(), d["sigma"].contiguous()
    save_file({k: v.contiguous() for k, v in g.items()}, os.path.join(out_dir, "threedpe_golden.safetensors"),
              metadata={"produced_by": "EzioBy/3dpe models/model_ref.py + models/model.py (LT) on CPU, "
                                       "weights: pe3d.threedpe.fabricate.fabricate_state(seed=0); tools/threedpe_parity.py goldens"})
    print({k: list(v.shape) for k, v in g.items()})


if __name__ == "__main__":
    command = sys.argv[1]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, here)
    if command == "theirs":
        theirs(sys.argv[2], sys.argv[3], os.path.abspath(sys.argv[4]))
    elif command == "ours":
        ours(sys.argv[2], os.path.abspath(sys.argv[3]))
    elif command == "goldens":
        goldens(sys.argv[2], os.path.abspath(sys.argv[3]))
    else:
        raise SystemExit(f"unknown command {command!r}: theirs | ours | goldens")
