"""Shared test settings: offline hubs, 2 threads, a private cache folder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP busy-waiting: 2 shared cores

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """World-view banks are cached per test session, never in the user's cache."""
    monkeypatch.setenv("PE3D_CACHE", str(tmp_path_factory.getbasetemp() / "pe3d-cache"))
