"""A search killed with SIGKILL and resumed from its last checkpoint ends exactly where an uninterrupted run ends."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).with_name("resume_search.py"))


def run(kind, out, *extra):
    return subprocess.run([sys.executable, SCRIPT, kind, str(out), *extra], capture_output=True, text=True)


@pytest.mark.parametrize("kind, kill_at", [("single_path", 14), ("differentiable", 11), ("sample_based", 14)])
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, kind, kill_at):
    straight = run(kind, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = run(kind, tmp_path / "crashed", "--kill-at", str(kill_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "crashed" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "crashed" / "result.json").exists()

    resumed = run(kind, tmp_path / "crashed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "straight" / "result.json").read_text())
    got = json.loads((tmp_path / "crashed" / "result.json").read_text())
    assert got["final"] == expected["final"]
    assert got["state"] == expected["state"] and got["generator"] == expected["generator"]
    assert got["parameters"] == pytest.approx(expected["parameters"], rel=1e-6, abs=1e-6)
