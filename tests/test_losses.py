"""Loss terms: the paper's objective and the LPIPS loader (real weights from local files, or a clear refusal)."""

import pytest
import torch

from pe3d.losses import EditLossConfig, EditObjective, ImageLoss, ImageLossConfig
from pe3d.perceptual import PerceptualWeightsNotFound, build_lpips


def test_lpips_without_local_weights_is_refused_naming_the_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(PerceptualWeightsNotFound, match=r"alexnet-owt-7be5be79\.pth.*" + str(tmp_path / "torch")):
        ImageLoss(ImageLossConfig(perceptual="lpips"))
    ImageLoss(ImageLossConfig(perceptual="ssim"))  # another term needs no weights


def test_lpips_loads_torchvision_backbone_weights_from_a_local_file(tmp_path):
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.alexnet(weights=None).state_dict()
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(state, path)
    model = build_lpips("alex", str(path))
    assert torch.equal(model.net.slice1.state_dict()["0.weight"], state["features.0.weight"])
    assert torch.equal(model.net.slice5.state_dict()["10.bias"], state["features.10.bias"])
    x = torch.rand(2, 3, 32, 32)
    same = model(x, x, normalize=True).mean()
    other = model(x, torch.rand(2, 3, 32, 32), normalize=True).mean()
    assert same.item() == pytest.approx(0.0, abs=1e-6) and other.item() > 0


def test_edit_objective_terms_and_ablation_weights():
    from types import SimpleNamespace

    torch.manual_seed(0)
    image, edited = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    planes, teacher = torch.rand(2, 3, 4, 8, 8), torch.rand(2, 3, 4, 8, 8)
    views = SimpleNamespace(image=torch.rand(2, 3, 8, 8), depth=torch.rand(2, 1, 8, 8) + 2.5, weights=torch.ones(2, 1, 8, 8))
    teacher_views = SimpleNamespace(image=torch.rand(2, 3, 8, 8), depth=torch.rand(2, 1, 8, 8) + 2.5, weights=torch.ones(2, 1, 8, 8))
    full = EditObjective(EditLossConfig(image_3d=ImageLossConfig(perceptual="none")))
    terms = full(image, edited, planes, teacher, views, teacher_views)
    expected_2d = (image - edited).abs().mean()
    expected_3d = ((views.image - teacher_views.image) ** 2).mean() + (planes - teacher).abs().mean() + (views.depth - teacher_views.depth).abs().mean()
    assert torch.allclose(terms["l2d"], expected_2d) and torch.allclose(terms["l3d"], expected_3d)
    assert torch.allclose(terms["loss"], expected_2d + expected_3d)
    no_3d = EditObjective(EditLossConfig(lambda_3d=0.0, image_3d=ImageLossConfig(perceptual="none")))
    assert not no_3d.needs_teacher
    assert torch.allclose(no_3d(image, edited, planes)["loss"], expected_2d)


def test_depth_term_follows_the_geometry_views_when_given():
    from types import SimpleNamespace

    torch.manual_seed(1)
    image, edited = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    planes = torch.rand(1, 3, 4, 8, 8)
    views = SimpleNamespace(image=torch.rand(1, 3, 8, 8), depth=torch.rand(1, 1, 8, 8) + 2.5, weights=torch.ones(1, 1, 8, 8))
    teacher_views = SimpleNamespace(image=torch.rand(1, 3, 8, 8), depth=torch.rand(1, 1, 8, 8) + 2.5, weights=torch.ones(1, 1, 8, 8))
    # the geometry views see only the left half as foreground: the depth term averages over it alone
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0
    geometry = SimpleNamespace(image=torch.rand(1, 3, 8, 8), depth=torch.rand(1, 1, 8, 8) + 2.5, weights=mask)
    objective = EditObjective(EditLossConfig(image_3d=ImageLossConfig(perceptual="none"), depth_source="input"))
    terms = objective(image, edited, planes, planes, views, teacher_views, geometry)
    expected = (views.depth - geometry.depth)[..., :4].abs().mean()
    assert torch.allclose(terms["l3d_depth"], expected)
    assert not torch.allclose(terms["l3d_depth"], (views.depth - teacher_views.depth).abs().mean())


def test_unknown_depth_source_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"depth_source.*'shape'"):
        EditObjective(EditLossConfig(depth_source="shape"))
