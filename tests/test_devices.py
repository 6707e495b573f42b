"""Device and dtype names of the configs (pe3d.devices)."""

import pytest
import torch

from pe3d.devices import DTYPES, inference_memory_layout, resolve_device, resolve_dtype


def test_auto_is_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_dtype("auto", resolve_device("auto")) == torch.float32


def test_auto_is_this_ranks_gpu_under_a_distributed_launch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == torch.device("cuda", 3)
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert resolve_dtype("auto", torch.device("cuda", 1)) == torch.float16


def test_explicit_names_and_clear_refusals():
    assert resolve_device("cuda:2") == torch.device("cuda", 2)
    assert [resolve_dtype(name, torch.device("cpu")) for name in DTYPES[1:]] == [torch.float32, torch.float16, torch.bfloat16]
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8", torch.device("cpu"))


def test_inference_memory_layout_keeps_values_hash_files_and_training(tmp_path):
    import copy

    from pe3d.devices import inference_memory_layout
    from pe3d.io import load_tensors, save_tensors, state_dict_hash

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3, padding=1))
    plain = copy.deepcopy(model)
    image = torch.rand(2, 3, 16, 16)
    assert inference_memory_layout(model) is model
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last) and not model[0].weight.is_contiguous()
    torch.testing.assert_close(model(image), plain(image), atol=1e-5, rtol=1e-5)
    assert state_dict_hash(model.state_dict()) == state_dict_hash(plain.state_dict())
    save_tensors(tmp_path / "m.safetensors", model.state_dict())
    loaded, _ = load_tensors(tmp_path / "m.safetensors")
    assert all(torch.equal(loaded[k], v) for k, v in plain.state_dict().items())
    model(image).square().mean().backward()
    assert model[0].weight.grad is not None and torch.isfinite(model[0].weight.grad).all()


def test_dilated_convolutions_without_autograd_run_on_onednn_with_the_same_values():
    from pe3d.models.layers import ConvAct, dilated_conv_on_onednn

    torch.manual_seed(0)
    for dilation in (1, 2, 4):
        block = ConvAct(16, 16, 3, dilation=dilation)
        image = torch.randn(1, 16, 16, 16)
        reference = torch.nn.functional.conv2d(image, block.conv.weight, block.conv.bias, padding=dilation, dilation=dilation)
        with torch.no_grad():
            direct = dilated_conv_on_onednn(block.conv, image)
            assert (direct is None) == (dilation == 1)  # undilated ones stay with the dispatcher
            if direct is not None:
                torch.testing.assert_close(direct, reference, atol=1e-5, rtol=1e-5)
            inference_memory_layout(block)
            torch.testing.assert_close(block(image), block.act(reference), atol=1e-5, rtol=1e-5)
        assert dilated_conv_on_onednn(block.conv, image) is None  # with autograd: the module's own path
        block(image).sum().backward()
        assert block.conv.weight.grad is not None


def test_cat_channels_keeps_the_majority_layout_and_the_values():
    from pe3d.models.layers import cat_channels

    big = torch.randn(1, 12, 8, 8).contiguous(memory_format=torch.channels_last)
    small = torch.randn(1, 2, 8, 8)
    joined = cat_channels([big, small])
    torch.testing.assert_close(joined, torch.cat([big, small], dim=1), rtol=0, atol=0)
    assert joined.is_contiguous(memory_format=torch.channels_last) and not joined.is_contiguous()
    plain = cat_channels([big.contiguous(), small])  # channels-first majority: torch.cat's own layout
    assert plain.is_contiguous()
    torch.testing.assert_close(plain, joined, rtol=0, atol=0)
