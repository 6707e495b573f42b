"""The EG3D generator: pure-PyTorch ops against slow references, presets against NVlabs' numbers, forwards."""

import math
import time

import pytest
import torch
import torch.nn.functional as F

from pe3d.config import ConfigError
from pe3d.eg3d import TriPlaneGenerator, load_eg3d_config
from pe3d.eg3d.config import config_to_eg3d_kwargs
from pe3d.eg3d.ops import conv2d_resample, conv2d_resample_reference, modulated_conv2d, setup_filter, upfirdn2d, upsample2d
from pe3d.eg3d.renderer import mip_ray_march, sample_importance_midpoints
from pe3d.geometry import label_from_yaw_pitch


def test_upfirdn2d_convolves_and_upsampled_convolution_matches_the_slow_path():
    taps = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 1
    out = upfirdn2d(impulse, taps, padding=1)  # a true convolution reproduces the kernel around the impulse
    assert torch.equal(out[0, 0, 2:4, 2:4], taps)
    assert torch.equal(upfirdn2d(impulse, taps, padding=1, flip_filter=True)[0, 0, 2:4, 2:4], taps.flip([0, 1]))
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and math.isclose(f.sum().item(), 1.0, rel_tol=1e-6)
    flat = upsample2d(torch.ones(1, 2, 6, 6), f)
    assert flat.shape == (1, 2, 12, 12) and torch.allclose(flat[..., 2:-2, 2:-2], torch.ones(1, 2, 8, 8))
    torch.manual_seed(0)
    x, w = torch.randn(2, 6, 8, 8), torch.randn(4, 3, 3, 3)
    for flip in (True, False):
        fast = conv2d_resample(x, w.repeat(1, 2, 1, 1), f, up=2, padding=1, flip_weight=flip)
        assert fast.shape == (2, 4, 16, 16)
        assert torch.allclose(fast, conv2d_resample_reference(x, w.repeat(1, 2, 1, 1), f, up=2, padding=1, flip_weight=flip), atol=1e-5)
    grouped = conv2d_resample(x, torch.cat([w, w]), f, up=2, padding=1, groups=2)
    assert torch.allclose(grouped[:, :4], conv2d_resample(x[:, :3], w, f, up=2, padding=1), atol=1e-5)


def test_modulated_conv_equals_per_sample_modulated_weights():
    torch.manual_seed(0)
    x, weight, styles, noise = torch.randn(3, 5, 8, 8), torch.randn(4, 5, 3, 3), torch.randn(3, 5), torch.randn(3, 1, 8, 8)
    out = modulated_conv2d(x, weight, styles, noise=noise, padding=1)
    for n in range(3):
        w = weight * styles[n].reshape(1, -1, 1, 1)
        w = w / (w.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        assert torch.allclose(out[n], F.conv2d(x[n : n + 1], w, padding=1)[0] + noise[n], atol=1e-5)
    plain = modulated_conv2d(x, weight[:, :, :1, :1], styles, demodulate=False)
    assert torch.allclose(plain, F.conv2d(x * styles[:, :, None, None], weight[:, :, :1, :1]), atol=1e-5)


# NVlabs' TriPlaneGenerator built with train.py's FFHQ 512 kwargs (--gen_pose_cond=True) has
# 30,662,136 parameters and 176 state-dict entries (counted with NVlabs' own code).
NVLABS_FFHQ512_PARAMETERS = 30_662_136
NVLABS_FFHQ512_KEYS = 176
NVLABS_FFHQ512_KWARGS = {
    "z_dim": 512, "w_dim": 512, "c_dim": 25, "img_resolution": 512, "img_channels": 3, "channel_base": 32768,
    "channel_max": 512, "num_fp16_res": 0, "conv_clamp": None, "fused_modconv_default": "inference_only",
    "sr_num_fp16_res": 4, "mapping_kwargs": {"num_layers": 2, "lr_multiplier": 0.01, "w_avg_beta": 0.998},  # EG3D defaults made explicit
    "sr_kwargs": {"channel_base": 32768, "channel_max": 512, "fused_modconv_default": "inference_only"},
    "rendering_kwargs": {
        "image_resolution": 512, "disparity_space_sampling": False, "clamp_mode": "softplus",
        "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC", "c_gen_conditioning_zero": False,
        "gpc_reg_prob": 0.5, "c_scale": 1.0, "superresolution_noise_mode": "none", "density_reg": 0.25,
        "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": 1.0, "sr_antialias": True,
        "depth_resolution": 48, "depth_resolution_importance": 48, "ray_start": 2.25, "ray_end": 3.3, "box_warp": 1.0,
        "avg_camera_radius": 2.7, "avg_camera_pivot": [0.0, 0.0, 0.2],
    },
}


@pytest.fixture(scope="module")
def ffhq512():
    torch.manual_seed(0)
    return TriPlaneGenerator(load_eg3d_config("ffhq512")).eval()


def test_ffhq512_preset_has_nvlabs_sizes_names_and_kwargs(ffhq512):
    assert sum(p.numel() for p in ffhq512.parameters()) == NVLABS_FFHQ512_PARAMETERS
    state = ffhq512.state_dict()
    assert len(state) == NVLABS_FFHQ512_KEYS
    shapes = {
        "backbone.mapping.w_avg": (512,), "backbone.mapping.embed.weight": (512, 25), "backbone.mapping.fc0.weight": (512, 1024),
        "backbone.synthesis.b4.const": (512, 4, 4), "backbone.synthesis.b4.conv1.affine.weight": (512, 512),
        "backbone.synthesis.b8.conv0.noise_const": (8, 8), "backbone.synthesis.b8.resample_filter": (4, 4),
        "backbone.synthesis.b256.torgb.weight": (96, 128, 1, 1), "superresolution.block0.conv0.weight": (256, 32, 3, 3),
        "superresolution.block1.torgb.weight": (3, 128, 1, 1), "superresolution.block1.conv1.noise_const": (512, 512),
        "decoder.net.0.weight": (64, 32), "decoder.net.2.weight": (33, 64),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    rendering = {**config_to_eg3d_kwargs(ffhq512.cfg)["rendering_kwargs"]}
    assert rendering.pop("density_noise") == 0.0 and rendering.pop("white_back") is False  # EG3D's defaults when absent
    assert {**config_to_eg3d_kwargs(ffhq512.cfg), "rendering_kwargs": rendering} == NVLABS_FFHQ512_KWARGS
    assert ffhq512.num_ws == 14 and ffhq512.neural_rendering_resolution == 128


def test_ffhq512_forward_on_cpu(ffhq512):
    """Full 512^2 backbone and SR; volume rendering at 32^2 instead of 128^2 to keep the test short."""
    label = label_from_yaw_pitch([0.3], [0.1])
    started = time.perf_counter()
    with torch.no_grad():
        out = ffhq512(torch.randn(1, 512), label, truncation_psi=0.7, neural_rendering_resolution=32, noise_mode="const")
    seconds = time.perf_counter() - started
    assert out.image.shape == (1, 3, 512, 512) and out.image_raw.shape == (1, 3, 32, 32)
    assert out.planes.shape == (1, 3, 32, 256, 256)
    assert torch.isfinite(out.image).all() and ((out.image_depth >= 2.25) & (out.image_depth <= 3.3 + 1.05 / 47)).all()
    print(f"ffhq512 forward (32^2 rays, 512^2 output) on CPU: {seconds:.1f} s")


def test_tiny_generator_is_deterministic_and_truncates_to_w_avg():
    torch.manual_seed(0)
    g = TriPlaneGenerator(load_eg3d_config("tiny")).eval()
    z, label = torch.randn(2, 32), label_from_yaw_pitch([0.2, -0.3], [0.0, 0.1])
    with torch.no_grad():
        g.backbone.mapping.w_avg.normal_()
        torch.manual_seed(1)
        first = g(z, label, noise_mode="const")
        torch.manual_seed(1)
        again = g(z, label, noise_mode="const")
        ws = g.mapping(z, label, truncation_psi=0.0)
    assert first.image.shape == (2, 3, 64, 64) and first.image_raw.shape == (2, 3, 16, 16) and first.planes.shape == (2, 3, 16, 32, 32)
    assert first.features.shape == (2, 16, 16, 16) and first.opacity.shape == (2, 1, 16, 16)
    assert torch.equal(first.image, again.image) and torch.equal(first.image_depth, again.image_depth)
    assert torch.allclose(ws, g.backbone.mapping.w_avg.expand_as(ws))
    assert first.image_raw.min() >= -1 and first.image_raw.max() <= 1


def test_tiny_generator_renders_the_same_with_and_without_autograd():
    """Without autograd on a CPU the planes are read through a gather table instead of grid_sample: same render."""
    torch.manual_seed(0)
    g = TriPlaneGenerator(load_eg3d_config("tiny")).eval()
    z, label = torch.randn(2, 32), label_from_yaw_pitch([0.2, -0.3], [0.0, 0.1])
    torch.manual_seed(1)
    with torch.enable_grad():
        traced = g(z, label, noise_mode="const")
    torch.manual_seed(1)
    with torch.no_grad():
        untraced = g(z, label, noise_mode="const")
    assert traced.image_raw.requires_grad and not untraced.image_raw.requires_grad
    for name in ("image_raw", "image_depth", "image"):
        torch.testing.assert_close(getattr(untraced, name), getattr(traced, name).detach(), atol=2e-5, rtol=1e-4)


def test_eg3d_ray_marcher_matches_constant_density_analytically():
    depths = torch.linspace(2.0, 3.0, 33).reshape(1, 1, 33, 1)
    raw = torch.full_like(depths, 1.7)
    colors = torch.full((1, 1, 33, 3), 0.25)
    out = mip_ray_march(colors, raw, depths)
    opacity = 1 - math.exp(-F.softplus(torch.tensor(0.7)).item() * 1.0)
    assert math.isclose(out.weights.sum().item(), opacity, rel_tol=1e-5)
    assert torch.allclose(out.rgb, torch.full((1, 1, 3), 0.25 * opacity * 2 - 1), atol=1e-5)
    fine = sample_importance_midpoints(depths.expand(2, 4, 33, 1), out.weights.expand(2, 4, 32, 1), 16)
    assert fine.shape == (2, 4, 16, 1) and fine.min() >= 2.0 and fine.max() <= 3.0


def test_eg3d_configs_refuse_unknown_keys_and_unsupported_modules(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("rendering: {ray_strat: 2.0}\n")
    with pytest.raises(ConfigError, match="ray_strat"):
        load_eg3d_config(bad)
    with pytest.raises(ConfigError, match="SuperresolutionHybrid4X"):
        load_eg3d_config("tiny", ["rendering.superresolution_module=training.superresolution.SuperresolutionHybrid4X"])
    with pytest.raises(FileNotFoundError, match="known"):
        load_eg3d_config("ffhq1024")
