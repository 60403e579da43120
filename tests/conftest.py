"""Shared fixtures. Tests that need ../shared/data skip with a reason when it is absent (a user's clone)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def shared_path(relative: str) -> Path:
    """A file under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {path} (the offline reference data beside the project checkout)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_thread_everywhere():
    """The suite's networks are tiny: one intra-op thread is fastest, and on a 2-core CI machine two
    threads per process fight the subprocesses some tests start (they inherit OMP_NUM_THREADS)."""
    import os

    import torch

    previous = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous[1])
    if previous[0] is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = previous[0]


@pytest.fixture(autouse=True)
def _quiet_lightning(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")


@pytest.fixture
def native_cpu_kernels():
    """oneDNN spends seconds building kernels for each new small convolution shape; torch's native
    kernels suit tiny networks (restored after the test)."""
    import torch

    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    yield
    torch.backends.mkldnn.enabled = enabled


@pytest.fixture
def one_thread():
    """One intra-op thread: for tiny networks and LSTMs thread hand-offs cost more than they save."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
