"""Shared test settings: offline hubs, 2 threads, a private cache folder, a free-disk check before the run."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # no OpenMP busy-waiting: 2 shared cores

import tempfile

import pytest
import torch

from disk_space import TEST_RUN_NEEDS_BYTES, free_disk_problem

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_sessionstart(session):
    """Stop before the first test, with one clear message, when the temp folders' disk is nearly full
    (``PE3D_TESTS_NEED_FREE_BYTES`` overrides the 1 GiB asked for)."""
    needed = int(os.environ.get("PE3D_TESTS_NEED_FREE_BYTES", TEST_RUN_NEEDS_BYTES))
    problem = free_disk_problem(session.config.option.basetemp or tempfile.gettempdir(), needed)
    if problem:
        pytest.exit(problem, returncode=1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """World-view banks are cached per test session, never in the user's cache."""
    monkeypatch.setenv("PE3D_CACHE", str(tmp_path_factory.getbasetemp() / "pe3d-cache"))
