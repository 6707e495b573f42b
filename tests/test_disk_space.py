"""The free-disk check that runs before the tests (tests/disk_space.py)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from disk_space import free_disk_problem


def test_enough_space_passes(tmp_path):
    assert free_disk_problem(tmp_path, needed_bytes=1) is None


def test_too_little_space_names_the_folder_and_both_sizes(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    message = free_disk_problem(tmp_path, needed_bytes=free + (1 << 40))
    assert message is not None
    assert str(tmp_path.resolve()) in message
    assert "MiB free" in message
    assert f"{(free + (1 << 40)) / 2**20:.0f} MiB" in message


def test_a_folder_not_made_yet_is_checked_on_its_nearest_existing_parent(tmp_path):
    message = free_disk_problem(tmp_path / "not" / "yet", needed_bytes=1 << 62)
    assert message is not None and str(tmp_path.resolve()) in message
    assert "not/yet" not in message


def test_pytest_stops_before_any_test_with_the_message(tmp_path):
    """The session hook in tests/conftest.py: a run that asks for more than the disk has exits 1 at once."""
    tests = Path(__file__).parent
    env = {**os.environ, "PE3D_TESTS_NEED_FREE_BYTES": str(1 << 62)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
                          str(tmp_path / "base"), str(tests / "test_disk_space.py::test_enough_space_passes")],
                         cwd=tests.parent, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "MiB free on the disk of" in run.stdout + run.stderr
    assert "passed" not in run.stdout
