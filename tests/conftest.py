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
