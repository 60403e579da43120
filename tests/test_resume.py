"""A search killed with SIGKILL and resumed from its last checkpoint ends exactly where an uninterrupted run ends,
for each strategy kind, built programmatically (tests/searches.py). The method plugins' example configs are
killed and resumed through the CLI in test_resume_examples.py."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).with_name("resume_search.py"))
# the batch after which the run kills itself: past the first checkpoint (3 batches an epoch), before the end
KILL_AT = {"single_path": 7, "differentiable": 5, "sample_based": 7}


def run(kind, out, *extra):
    return subprocess.run([sys.executable, SCRIPT, kind, str(out), *extra], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("kind", list(KILL_AT))
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, kind):
    straight = run(kind, tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = run(kind, tmp_path / "crashed", "--kill-at", str(KILL_AT[kind]))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (tmp_path / "crashed" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "crashed" / "result.json").exists()

    resumed = run(kind, tmp_path / "crashed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = json.loads((tmp_path / "straight" / "result.json").read_text())
    got = json.loads((tmp_path / "crashed" / "result.json").read_text())
    assert got["final"] == expected["final"]
    assert got["state"] == expected["state"] and got["generator"] == expected["generator"]
    assert got["parameters"] == pytest.approx(expected["parameters"], rel=1e-6, abs=1e-6)
    assert got["buffers"] == pytest.approx(expected["buffers"], rel=1e-6, abs=1e-6)
