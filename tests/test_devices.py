"""Device and dtype names of the configs (pe3d.devices)."""

import pytest
import torch

from pe3d.devices import DTYPES, resolve_device, resolve_dtype


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
