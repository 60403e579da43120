"""Two real CPU processes under Trainer(strategy="ddp"): the ranks must agree on everything."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).with_name("ddp_search.py"))


@pytest.mark.parametrize("kind", ["single_path", "differentiable", "sample_based"])
def test_ranks_agree_and_export_once(tmp_path, kind):
    run = subprocess.run([sys.executable, SCRIPT, kind, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for key in ("final", "proposed", "history", "parameters", "supernet_checksum"):
        assert rank0[key] == rank1[key], f"ranks disagree on {key}"
    if kind == "single_path":
        assert len(rank0["proposed"]) >= 4, "every step's sampled path is the same on both ranks"
    assert sorted(p.name for p in tmp_path.iterdir() if "export" in p.name) == ["export"], "one export, no partial copies"
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["architecture.json", "model.safetensors"]
