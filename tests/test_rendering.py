"""Analytic checks of the triplane rendering room (``pe3d.rendering``)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pe3d.geometry import label_from_yaw_pitch, sample_rays
from pe3d.rendering import (
    RayMarchOptions,
    RendererConfig,
    SuperResolution,
    SuperResolutionConfig,
    TriplaneDecoder,
    TriplaneDecoderConfig,
    TriplaneRenderer,
    march_rays,
    march_union,
    plane_gather_table,
    project_onto_planes,
    render_rays,
    sample_from_planes,
    sample_importance,
    sample_mean_from_planes,
    sample_mean_from_table,
    sample_pdf,
    sample_stratified,
)

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- planes


def test_project_onto_planes_matches_eg3d_pairs() -> None:
    point = torch.tensor([[[1.0, 2.0, 3.0]]])
    projected = project_onto_planes(point)
    assert projected.shape == (1, 3, 1, 2)
    # EG3D: (x, y), (x, z), (z, x)
    torch.testing.assert_close(projected[0, :, 0], torch.tensor([[1.0, 2.0], [1.0, 3.0], [3.0, 1.0]]))


def _ramp_planes(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Planes holding ``a_p * u + b_p * v + c_p`` (channel 0) and its negation (channel 1)."""
    centres = (2.0 * torch.arange(size) + 1.0) / size - 1.0  # normalized pixel centres, align_corners=False
    v, u = torch.meshgrid(centres, centres, indexing="ij")  # v indexes H, u indexes W
    coeffs = torch.tensor([[1.0, 2.0, 0.5], [-3.0, 0.5, 0.0], [0.25, -1.0, 1.0]])
    planes = torch.stack([a * u + b * v + c for a, b, c in coeffs])  # [3, H, W]
    planes = torch.stack((planes, -planes), dim=1)[None]  # [1, 3, 2, H, W]
    return planes, coeffs


@pytest.mark.parametrize("box_warp", [1.0, 2.0])
def test_sample_from_planes_linear_ramp(box_warp: float) -> None:
    planes, coeffs = _ramp_planes(16)
    generator = torch.Generator().manual_seed(0)
    coords = (torch.rand(1, 50, 3, generator=generator) * 1.8 - 0.9) * (box_warp / 2)  # inside the pixel-centre hull
    sampled = sample_from_planes(planes, coords, box_warp=box_warp)
    assert sampled.shape == (1, 3, 50, 2)
    x, y, z = (coords[0] * 2.0 / box_warp).unbind(-1)
    for p, (u, v) in enumerate([(x, y), (x, z), (z, x)]):
        a, b, c = coeffs[p]
        torch.testing.assert_close(sampled[0, p, :, 0], a * u + b * v + c, atol=1e-5, rtol=0)
        torch.testing.assert_close(sampled[0, p, :, 1], -(a * u + b * v + c), atol=1e-5, rtol=0)


def test_sample_from_planes_zero_outside_box() -> None:
    planes = torch.ones(1, 3, 4, 8, 8)
    far = torch.tensor([[[5.0, 5.0, 5.0]]])
    assert sample_from_planes(planes, far).abs().max() == 0


@pytest.mark.parametrize("shape", [(2, 3, 5, 16, 16), (1, 3, 4, 10, 14)])
def test_gather_table_sampling_equals_grid_sample(shape: tuple[int, ...]) -> None:
    """The inference path's weighted gather reads what ``grid_sample`` reads: inside the box, across its
    faces (corners on the zero padding) and far outside; batched and non-square planes."""
    generator = torch.Generator().manual_seed(0)
    planes = torch.randn(*shape, generator=generator)
    box_warp = 0.8
    table = plane_gather_table(planes)
    for reach in (0.45, 0.55, 3.0):  # inside, straddling the faces, far outside (in units of box_warp)
        coords = (torch.rand(shape[0], 400, 3, generator=generator) * 2 - 1) * reach * box_warp
        expected = sample_from_planes(planes, coords, box_warp=box_warp).mean(dim=1)
        torch.testing.assert_close(sample_mean_from_table(table, coords, box_warp), expected, atol=2e-6, rtol=1e-5)
        torch.testing.assert_close(sample_mean_from_planes(planes, coords, box_warp), expected, atol=2e-6, rtol=1e-5)
    assert sample_mean_from_table(table, torch.zeros(shape[0], 0, 3), box_warp).shape == (shape[0], 0, shape[2])
    with pytest.raises(ValueError, match="coords must have shape"):
        sample_mean_from_table(table, torch.zeros(shape[0] + 1, 5, 3), box_warp)


def test_renderer_field_query_without_autograd_equals_the_autograd_path() -> None:
    torch.manual_seed(0)
    renderer = _tiny_renderer()
    planes = torch.randn(2, 3, 8, 16, 16)
    coords = torch.rand(2, 20_000, 3) * 1.4 - 0.7  # more than one inference chunk, some outside the box
    trained = renderer.query_field(planes, coords)
    with torch.no_grad():
        inferred = renderer.query_field(planes, coords)
    torch.testing.assert_close(inferred.features, trained.features.detach(), atol=2e-6, rtol=1e-5)
    torch.testing.assert_close(inferred.sigma, trained.sigma.detach(), atol=2e-5, rtol=1e-5)


# ----------------------------------------------------------------------------- decoder


def test_decoder_shapes_ranges_and_plane_mean() -> None:
    torch.manual_seed(0)
    decoder = TriplaneDecoder(in_channels=8, hidden_dim=16, out_features=5)
    sampled = torch.randn(2, 3, 7, 8) * 10
    out = decoder(sampled)
    assert out.features.shape == (2, 7, 5) and out.sigma.shape == (2, 7, 1)
    assert out.features.min() >= -0.001 and out.features.max() <= 1.001
    # features are averaged over the planes: permuting planes changes nothing
    permuted = decoder(sampled[:, [2, 0, 1]])
    torch.testing.assert_close(permuted.features, out.features)
    # sigma is the raw first output of the MLP
    raw = decoder.net(sampled.mean(1))
    torch.testing.assert_close(out.sigma, raw[..., :1])
    with pytest.raises(ValueError):
        TriplaneDecoderConfig(out_features=2)


# ----------------------------------------------------------------------------- sampling


def test_sample_stratified_deterministic_and_jittered() -> None:
    origins = torch.zeros(2, 3, 3)
    directions = torch.zeros(2, 3, 3)
    depths = sample_stratified(origins, directions, 1.0, 2.0, 5, perturb=False)
    assert depths.shape == (2, 3, 5, 1)
    torch.testing.assert_close(depths[1, 2, :, 0], torch.linspace(1.0, 2.0, 5))
    gen = torch.Generator().manual_seed(0)
    jittered = sample_stratified(origins, directions, 1.0, 2.0, 5, perturb=True, generator=gen)
    offset = jittered - depths
    assert (offset >= 0).all() and (offset < 0.25).all() and offset.std() > 0


def test_sample_pdf_concentrates_in_heavy_bin() -> None:
    bins = torch.linspace(0.0, 4.0, 5).expand(3, 5)
    weights = torch.tensor([0.0, 0.0, 1.0, 0.0]).expand(3, 4)
    gen = torch.Generator().manual_seed(0)
    samples = sample_pdf(bins, weights, 64, deterministic=False, generator=gen)
    assert samples.shape == (3, 64)
    assert ((samples >= 2.0) & (samples <= 3.0)).float().mean() > 0.99
    quantiles = sample_pdf(bins, torch.ones(3, 4), 5, deterministic=True)
    torch.testing.assert_close(quantiles, torch.linspace(0.0, 4.0, 5).expand(3, 5), atol=1e-4, rtol=0)


def test_sample_importance_follows_weights() -> None:
    depths = torch.linspace(2.0, 3.0, 11).reshape(1, 1, 11, 1)
    weights = torch.zeros(1, 1, 10, 1)
    weights[..., 6, :] = 1.0  # interval [2.6, 2.7]
    fine = sample_importance(depths, weights, 32, deterministic=True)
    assert fine.shape == (1, 1, 32, 1)
    assert ((fine >= 2.5) & (fine <= 2.8)).float().mean() > 0.8  # smoothing spreads to neighbours


# ----------------------------------------------------------------------------- marching


def test_march_rays_constant_slab_is_analytic() -> None:
    sigma, near, far = 1.5, 1.0, 2.0
    # slab boundaries fall halfway between samples, so midpoint quadrature is exact up to O(delta^2)
    depths = ((torch.arange(400, dtype=torch.float64) + 0.5) * 0.01).reshape(1, 1, -1, 1)
    densities = torch.where((depths > near) & (depths < far), sigma, 0.0)
    colors = torch.full((1, 1, 400, 3), 0.3, dtype=torch.float64)
    out = march_rays(colors, densities, depths, density_activation="identity")
    opacity = 1.0 - math.exp(-sigma * (far - near))
    expected_depth = near + 1.0 / sigma - (far - near) * math.exp(-sigma * (far - near)) / opacity
    assert out.weights.shape == (1, 1, 399, 1)
    assert out.weights.sum().item() == pytest.approx(opacity, abs=1e-4)
    assert out.depth.item() == pytest.approx(expected_depth, abs=1e-3)
    torch.testing.assert_close(out.rgb, torch.full((1, 1, 3), 0.3 * opacity, dtype=torch.float64))
    ramp = march_rays(depths.expand(-1, -1, -1, 2) / 4.0, densities, depths, density_activation="identity")
    assert ramp.rgb[0, 0, 0].item() == pytest.approx(opacity * expected_depth / 4.0, abs=2e-4)  # colour ~ depth
    white = march_rays(colors, densities, depths, density_activation="identity", background=1.0)
    torch.testing.assert_close(white.rgb, out.rgb + (1.0 - opacity), atol=1e-4, rtol=0)


def test_march_union_equals_march_rays_on_sorted_union() -> None:
    gen = torch.Generator().manual_seed(0)
    depths = [torch.rand(2, 5, n, 1, generator=gen) * 2 + 1 for n in (7, 4)]
    colors = [torch.rand(2, 5, n, 3, generator=gen, dtype=torch.float64).requires_grad_() for n in (7, 4)]
    densities = [torch.randn(2, 5, n, 1, generator=gen, dtype=torch.float64) * 3 for n in (7, 4)]
    depths = [d.double() for d in depths]
    rgb, depth, weights_sum = march_union(colors, densities, depths, "softplus_shift", background=0.5)
    all_depths, order = torch.sort(torch.cat(depths, dim=-2), dim=-2)
    reference = march_rays(
        torch.cat(colors, dim=-2).gather(-2, order.expand(-1, -1, -1, 3)),
        torch.cat(densities, dim=-2).gather(-2, order),
        all_depths,
        background=0.5,
    )
    torch.testing.assert_close(rgb, reference.rgb)
    torch.testing.assert_close(depth, reference.depth)
    torch.testing.assert_close(weights_sum, reference.weights.sum(-2))
    grads = torch.autograd.grad(rgb.sum(), colors)
    reference_grads = torch.autograd.grad(reference.rgb.sum(), colors)
    for grad, expected in zip(grads, reference_grads):
        torch.testing.assert_close(grad, expected)


def test_march_rays_empty_ray_depth_is_far_and_finite_grad() -> None:
    depths = torch.linspace(2.0, 3.0, 8).reshape(1, 1, 8, 1)
    densities = torch.zeros(1, 1, 8, 1, requires_grad=True)
    out = march_rays(torch.ones(1, 1, 8, 3), densities, depths, density_activation="identity")
    assert out.depth.item() == pytest.approx(3.0)
    (out.depth.sum() + out.rgb.sum()).backward()
    assert torch.isfinite(densities.grad).all()


def test_softplus_shift_is_eg3d_activation() -> None:
    depths = torch.tensor([0.0, 0.5]).reshape(1, 1, 2, 1)
    raw = torch.tensor([2.0, 2.0]).reshape(1, 1, 2, 1)
    out = march_rays(torch.ones(1, 1, 2, 1), raw, depths)
    expected = 1.0 - math.exp(-math.log1p(math.exp(1.0)) * 0.5)
    assert out.weights.sum().item() == pytest.approx(expected, abs=1e-6)


# ----------------------------------------------------------------------------- sphere


SPHERE_RADIUS = 0.25


def _sphere_field(coords: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inside = (coords.norm(dim=-1, keepdim=True) < SPHERE_RADIUS).to(coords.dtype)
    return torch.ones_like(coords), inside * 1000.0 - 10.0 * (1.0 - inside)


def _sphere_hits(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray-sphere intersection: (discriminant [B, N], first hit distance [B, N])."""
    b = (origins * directions).sum(-1)
    disc = b * b - ((origins * origins).sum(-1) - SPHERE_RADIUS**2)
    return disc, -b - disc.clamp_min(0).sqrt()


def test_render_rays_sphere_depth_and_silhouette() -> None:
    origins, directions = sample_rays(label_from_yaw_pitch(0.0, 0.0), 16)
    disc, hit_depth = _sphere_hits(origins, directions)
    inside, outside = disc > 0.01, disc < -0.01
    assert inside.sum() > 40 and outside.sum() > 40

    errors = {}
    for importance in (0, 12):
        options = RayMarchOptions(depth_resolution=12, depth_resolution_importance=importance, perturb=False)
        result = render_rays(_sphere_field, origins, directions, options)
        assert result.rgb.shape == (1, 256, 3) and result.depth.shape == (1, 256, 1)
        opacity = result.weights_sum[..., 0]
        assert (opacity[inside] > 0.99).all() and (opacity[outside] < 1e-3).all()
        errors[importance] = (result.depth[..., 0] - hit_depth)[inside].abs().mean().item()
    assert errors[12] < 0.01
    assert errors[12] < 0.5 * errors[0]

    centre = render_rays(
        _sphere_field,
        torch.tensor([[[0.0, 0.0, 2.7]]]),
        torch.tensor([[[0.0, 0.0, -1.0]]]),
        RayMarchOptions(depth_resolution=24, depth_resolution_importance=24, perturb=False),
    )
    assert centre.depth.item() == pytest.approx(2.7 - SPHERE_RADIUS, abs=5e-3)


def test_render_rays_perturbed_is_seeded_and_near_truth() -> None:
    origins, directions = sample_rays(label_from_yaw_pitch(0.2, -0.1), 8)
    disc, hit_depth = _sphere_hits(origins, directions)
    options = RayMarchOptions(depth_resolution=16, depth_resolution_importance=16, perturb=True, density_noise=0.1)
    first = render_rays(_sphere_field, origins, directions, options, torch.Generator().manual_seed(3))
    second = render_rays(_sphere_field, origins, directions, options, torch.Generator().manual_seed(3))
    torch.testing.assert_close(first.depth, second.depth)
    inside = disc > 0.01
    assert (first.depth[..., 0] - hit_depth)[inside].abs().mean() < 0.02


def test_decoder_inference_path_matches_the_autograd_path() -> None:
    torch.manual_seed(0)
    decoder = TriplaneDecoder(in_channels=8, hidden_dim=32, out_features=6)
    samples = torch.randn(2, 3, 500, 8) * 30.0  # hidden pre-activations far beyond softplus' +-20 switch
    trained = decoder(samples)
    with torch.no_grad():
        copy = samples.clone()
        inferred = decoder(samples)
    assert torch.equal(samples, copy)
    torch.testing.assert_close(inferred.features, trained.features.detach(), atol=2e-6, rtol=1e-6)
    torch.testing.assert_close(inferred.sigma, trained.sigma.detach(), atol=2e-5, rtol=1e-6)


def test_decoder_feature_channels_decode_the_same_first_channels() -> None:
    torch.manual_seed(0)
    decoder = TriplaneDecoder(in_channels=8, hidden_dim=32, out_features=6)
    samples = torch.randn(2, 500, 8) * 3.0
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            full, rgb = decoder(samples), decoder(samples, feature_channels=3)
        assert rgb.features.shape == (2, 500, 3)
        torch.testing.assert_close(rgb.features, full.features[..., :3], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(rgb.sigma, full.sigma)
    for bad in (0, 7):
        with pytest.raises(ValueError, match=f"feature_channels must be in \\[1, 6\\], got {bad}"):
            decoder(samples, feature_channels=bad)


def test_images_only_render_equals_the_full_render_and_decodes_rgb_alone() -> None:
    torch.manual_seed(0)
    renderer = _tiny_renderer().eval()
    planes = torch.randn(2, 3, 8, 16, 16)
    label = label_from_yaw_pitch(torch.tensor([0.0, 0.3]), torch.tensor([0.0, -0.1]))
    widths = []
    forward = renderer.decoder.forward

    def spy(samples, directions=None, feature_channels=None):
        out = forward(samples, directions, feature_channels)
        widths.append(out.features.shape[-1])
        return out

    renderer.decoder.forward = spy
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            full = renderer(planes, label)
            widths.clear()
            quick = renderer(planes, label, images_only=True)
        assert set(widths) == {3}  # no decoded channel beyond RGB
        assert quick.features.shape == (2, 3, 8, 8) and full.features.shape == (2, 6, 8, 8)
        for name in ("image", "depth", "weights"):
            torch.testing.assert_close(getattr(quick, name), getattr(full, name), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(quick.features, quick.image)

    with_head = _tiny_renderer(superres=True).eval()
    with torch.no_grad():
        full, quick = with_head(planes, label), with_head(planes, label, images_only=True)
    assert quick.features.shape == full.features.shape == (2, 6, 8, 8)  # the head reads every channel
    torch.testing.assert_close(quick.image_sr, full.image_sr)


def test_empty_ray_shortcut_matches_the_full_render_with_fewer_field_queries() -> None:
    """Deterministic renders skip the fine pass of (nearly) empty rays; images of a batch with
    different numbers of busy rays come out as the full render does, in fewer field queries."""
    origins, directions = sample_rays(label_from_yaw_pitch([0.0, 0.4], [0.0, 0.1]), 16)
    radius = torch.tensor([0.12, 0.25]).reshape(2, 1, 1)  # image 1 has far more busy rays than image 0
    queried: list[int] = []

    def field(coords: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queried.append(coords.shape[0] * coords.shape[1])
        inside = (coords.norm(dim=-1, keepdim=True) < radius).to(coords.dtype)
        return torch.sigmoid(3.0 * coords), inside * 1000.0 - 10.0 * (1.0 - inside)

    background = torch.rand(2, 256, 3, generator=torch.Generator().manual_seed(0))
    renders, counts = {}, {}
    for opacity in (0.0, 1e-4):
        options = RayMarchOptions(depth_resolution=12, depth_resolution_importance=12, perturb=False,
                                  empty_ray_opacity=opacity)
        queried.clear()
        renders[opacity] = render_rays(field, origins, directions, options, background_fn=lambda o, d: background)
        counts[opacity] = sum(queried)
    full, fast = renders[0.0], renders[1e-4]
    assert counts[1e-4] < 0.85 * counts[0.0]
    torch.testing.assert_close(fast.rgb, full.rgb, atol=3e-3, rtol=0)
    torch.testing.assert_close(fast.weights_sum, full.weights_sum, atol=3e-3, rtol=0)
    solid = full.weights_sum > 0.01
    torch.testing.assert_close(fast.depth[solid], full.depth[solid])
    assert (full.weights_sum[0] > 0.5).sum() < (full.weights_sum[1] > 0.5).sum() - 20

    jittered = [render_rays(field, origins, directions,
                            RayMarchOptions(depth_resolution=12, depth_resolution_importance=12, perturb=True,
                                            empty_ray_opacity=opacity), torch.Generator().manual_seed(1))
                for opacity in (0.0, 1e-4)]
    torch.testing.assert_close(jittered[0].rgb, jittered[1].rgb, atol=0, rtol=0)  # training never skips
    with pytest.raises(ValueError, match="empty_ray_opacity"):
        RayMarchOptions(empty_ray_opacity=1.0)

    def nothing(coords: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.sigmoid(coords), torch.full_like(coords[..., :1], -50.0)  # not one busy ray

    empty = [render_rays(nothing, origins, directions, RayMarchOptions(depth_resolution=6, depth_resolution_importance=6,
                                                                       perturb=False, empty_ray_opacity=opacity))
             for opacity in (0.0, 1e-4)]
    torch.testing.assert_close(empty[1].rgb, empty[0].rgb)


def _counting_field(shape_fn, queried: list[int]):
    """A field that is solid where ``shape_fn(coords)`` is true, counting the points it is asked about."""

    def field(coords: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        queried.append(coords.shape[0] * coords.shape[1])
        inside = shape_fn(coords).unsqueeze(-1).to(coords.dtype)
        return torch.sigmoid(3.0 * coords), inside * 1000.0 - 10.0 * (1.0 - inside)

    return field


def _probe_vs_full(field, origins, directions, size, queried):
    options = RayMarchOptions(depth_resolution=12, depth_resolution_importance=12, perturb=False)
    background = torch.rand(origins.shape[0], size * size, 3, generator=torch.Generator().manual_seed(0))
    renders, counts = {}, {}
    with torch.no_grad():
        for image_size in (None, size):  # None: the rays are not known to form an image, no probes
            queried.clear()
            renders[image_size] = render_rays(field, origins, directions, options,
                                              background_fn=lambda o, d: background, image_size=image_size)
            counts[image_size] = sum(queried)
    return renders[None], renders[size], counts[None], counts[size]


@pytest.mark.parametrize("size", [24, 25])
def test_empty_ray_probes_match_the_full_render_with_fewer_field_queries(size: int) -> None:
    """Rendering an image, the coarse pass probes every 2nd ray of every 2nd row first and skips rays with no busy
    probe near them: the image, opacity and depth come out as without probes, in fewer field queries."""
    origins, directions = sample_rays(label_from_yaw_pitch([0.0, 0.4], [0.0, 0.1]), size)
    queried: list[int] = []
    field = _counting_field(lambda c: c.norm(dim=-1) < 0.12, queried)
    full, probed, full_count, probed_count = _probe_vs_full(field, origins, directions, size, queried)
    assert probed_count < 0.8 * full_count
    torch.testing.assert_close(probed.rgb, full.rgb, atol=3e-3, rtol=0)
    torch.testing.assert_close(probed.weights_sum, full.weights_sum, atol=3e-3, rtol=0)
    solid = full.weights_sum > 0.01
    assert solid.sum() > 20
    torch.testing.assert_close(probed.depth[solid], full.depth[solid])
    with pytest.raises(ValueError, match="empty_ray_probe_stride"):
        RayMarchOptions(empty_ray_probe_stride=-1)


def test_empty_ray_probes_do_not_miss_a_body_that_enters_at_the_last_image_row() -> None:
    """A solid that only the image's last row sees (a shirt cut by the frame) lies past the last probe row: it
    must still be rendered (it was not, before the border rows were queried unconditionally)."""
    size = 16
    origins, directions = sample_rays(label_from_yaw_pitch([0.0], [0.0]), size)
    centre_column = (origins + 2.7 * directions).reshape(size, size, 3)[:, size // 2, 1]  # world y of each row
    last, before = float(centre_column[-1]), float(centre_column[-2])
    edge = before + 0.75 * (last - before)  # beyond this y only the last row's rays pass

    def shape(c: torch.Tensor) -> torch.Tensor:
        return ((c[..., 1] - edge) * math.copysign(1.0, last - before) > 0) & (c[..., 2].abs() < 0.2)

    queried: list[int] = []
    full, probed, _, _ = _probe_vs_full(_counting_field(shape, queried), origins, directions, size, queried)
    rows = full.weights_sum.reshape(size, size)
    assert rows[-1].min() > 0.5 and rows[:-1].max() < 1e-4  # only the last row is solid
    torch.testing.assert_close(probed.rgb, full.rgb, atol=3e-3, rtol=0)
    torch.testing.assert_close(probed.weights_sum, full.weights_sum, atol=3e-3, rtol=0)


# ----------------------------------------------------------------------------- renderer


def _tiny_renderer(superres: bool = False) -> TriplaneRenderer:
    config = RendererConfig(
        decoder=TriplaneDecoderConfig(in_channels=8, hidden_dim=16, out_features=6),
        ray_march=RayMarchOptions(depth_resolution=6, depth_resolution_importance=6, perturb=False),
        neural_rendering_resolution=8,
        superres=SuperResolutionConfig(enabled=superres, out_resolution=16, channels=8),
    )
    return TriplaneRenderer(config)


def test_triplane_renderer_shapes_subset_and_gradients() -> None:
    torch.manual_seed(0)
    renderer = _tiny_renderer()
    planes = torch.randn(2, 3, 8, 16, 16, requires_grad=True)
    label = label_from_yaw_pitch(torch.tensor([0.0, 0.3]), torch.tensor([0.0, -0.1]))
    full = renderer(planes, label)
    assert full.image.shape == (2, 3, 8, 8) and full.features.shape == (2, 6, 8, 8)
    assert full.depth.shape == (2, 1, 8, 8) and full.weights.shape == (2, 1, 8, 8)
    assert full.image_sr is None
    torch.testing.assert_close(full.image, full.features[:, :3])
    assert full.image.min() >= -0.001 and full.image.max() <= 1.001
    assert (full.depth >= 2.25 - 1e-5).all() and (full.depth <= 3.3 + 1e-5).all()

    indices = torch.randperm(64)[:10].expand(2, 10).clone()
    indices[1] = torch.randperm(64)[:10]
    subset = renderer(planes, label, ray_indices=indices)
    assert subset.image.shape == (2, 3, 10) and subset.depth.shape == (2, 1, 10)
    for name in ("image", "features", "depth", "weights"):
        expected = getattr(full, name).flatten(2).gather(2, indices[:, None].expand(-1, getattr(subset, name).shape[1], -1))
        torch.testing.assert_close(getattr(subset, name), expected, atol=1e-5, rtol=1e-5)

    (full.image.mean() + full.depth.mean() + subset.features.mean()).backward()
    assert planes.grad is not None and planes.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in renderer.decoder.parameters())


def test_triplane_renderer_perturbs_only_in_training() -> None:
    torch.manual_seed(0)
    renderer = _tiny_renderer()
    renderer.config.ray_march.perturb = True
    planes, label = torch.randn(1, 3, 8, 16, 16), label_from_yaw_pitch(0.1)
    seeded = [renderer(planes, label, generator=torch.Generator().manual_seed(s)).depth for s in (1, 1, 2)]
    torch.testing.assert_close(seeded[0], seeded[1])
    assert not torch.allclose(seeded[0], seeded[2])
    renderer.eval()
    first = renderer(planes, label, generator=torch.Generator().manual_seed(1)).depth
    torch.testing.assert_close(first, renderer(planes, label, generator=torch.Generator().manual_seed(2)).depth)


def test_triplane_renderer_resolution_override() -> None:
    renderer = _tiny_renderer()
    out = renderer(torch.randn(1, 3, 8, 16, 16), label_from_yaw_pitch(0.0), resolution=4)
    assert out.image.shape == (1, 3, 4, 4)


def test_superres_shape_and_identity_at_init() -> None:
    torch.manual_seed(0)
    renderer = _tiny_renderer(superres=True)
    out = renderer(torch.randn(2, 3, 8, 16, 16), label_from_yaw_pitch([0.0, 0.1]))
    assert out.image_sr is not None and out.image_sr.shape == (2, 3, 16, 16)
    upsampled = F.interpolate(out.image, size=(16, 16), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out.image_sr, upsampled)  # zero-initialised residual

    head = SuperResolution(in_channels=6, in_resolution=8, out_resolution=24, channels=4)
    assert head(torch.rand(1, 3, 8, 8), torch.rand(1, 6, 8, 8)).shape == (1, 3, 24, 24)
    assert head(torch.rand(1, 3, 12, 12), torch.rand(1, 6, 12, 12)).shape == (1, 3, 24, 24)


def test_configs_are_omegaconf_structured() -> None:
    from omegaconf import OmegaConf

    config = OmegaConf.structured(RendererConfig)
    merged = OmegaConf.merge(config, {"ray_march": {"depth_resolution": 12, "background": 1.0}})
    built = OmegaConf.to_object(merged)
    assert isinstance(built, RendererConfig) and built.ray_march.depth_resolution == 12
    with pytest.raises(ValueError):
        RayMarchOptions(density_activation="relu")
