"""Two real CPU processes under Trainer(strategy="ddp"): the ranks must agree on everything,
for each strategy kind and for each method plugin's example config (tests/searches.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from searches import KINDS  # noqa: E402

SCRIPT = str(Path(__file__).with_name("ddp_search.py"))


@pytest.mark.parametrize("kind", KINDS)
def test_ranks_agree_and_export_once(tmp_path, kind):
    run = subprocess.run([sys.executable, SCRIPT, kind, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for key in ("final", "state", "generator", "proposed", "parameters", "buffers"):
        assert rank0[key] == rank1[key], f"ranks disagree on {key}"
    if kind == "single_path":
        assert len(rank0["proposed"]) >= 4, "every step's sampled path is the same on both ranks"
    if kind == "sample_based":
        shares = rank0["scored_here"], rank1["scored_here"]
        assert min(shares) > 0 and sum(shares) == len(rank0["state"]["history"]), f"evaluations split between ranks: {shares}"
    assert sorted(p.name for p in tmp_path.iterdir() if "export" in p.name) == ["export"], "one export, no partial copies"
    exported = sorted(p.name for p in (tmp_path / "export").iterdir())
    assert "architecture.json" in exported and "model.safetensors" in exported
