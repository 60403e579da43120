"""The README's resume recipe on the tiny example configs as shipped: a run killed (SIGKILL) twice and
resumed each time with `nasframe fit --config X --ckpt_path last` ends with the same export and search
state as an uninterrupted run. Only the size is shrunk, by the same overrides in every run."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from searches import PLUGIN_SEARCHES

TESTS = Path(__file__).parent
# four epochs of three batches, a checkpoint after each: the two kills fall in epochs 1 and 2
SHRINK = ["--trainer.max_epochs=4", "--trainer.limit_train_batches=3", "--data.init_args.limit_train=96",
          "--trainer.num_sanity_val_steps=0"]
STRATEGY = "--model.init_args.strategy.init_args."
CONFIGS = {
    "quickstart.yaml": ["--model.init_args.search_space.init_args.channels=4", "--data.init_args.batch_size=16"],
    **{config: overrides for config, overrides in PLUGIN_SEARCHES.values()},
}
# enough search steps for four epochs (sample-based searches stop once their budget is spent)
CONFIGS["epsinas_digits.yaml"] = CONFIGS["epsinas_digits.yaml"] + [STRATEGY + "candidates_per_step=2", "--data.init_args.batch_size=16"]
CONFIGS["seminas_digits.yaml"] = CONFIGS["seminas_digits.yaml"] + [STRATEGY + "budget=24", STRATEGY + "per_iteration=2"]


def nasframe(root: Path, config: str, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "nasframe.cli", "fit", "--config", str(ROOT / "examples" / config), *CONFIGS[config], *SHRINK,
               "--trainer.default_root_dir", str(root), "--model.init_args.export_dir", str(root / "export"), *extra]
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def killed_after(batches: int) -> str:
    return "--trainer.callbacks=" + json.dumps([{"class_path": "killer.KillAfterBatches", "init_args": {"batches": batches}}])


def assert_same(got, expected, where="state"):
    if isinstance(expected, torch.Tensor):
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6, msg=where)
    elif isinstance(expected, dict):
        assert set(got) == set(expected), where
        for key in expected:
            assert_same(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(got) == len(expected), where
        for i, (a, b) in enumerate(zip(got, expected)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-6, nan_ok=True), where
    else:
        assert got == expected, where


def without_wall_times(state: dict) -> dict:
    """The search state with the run record's clock readings blanked: every other value must match."""
    record = state.get("run_record")
    if not record:
        return state
    timed = [i for i, column in enumerate(record["columns"]) if column == "wall_time"]
    rows = [[None if i in timed else value for i, value in enumerate(row)] for row in record["rows"]]
    clean = {k: v for k, v in record.items() if k not in ("rows", "elapsed")}
    return {**state, "run_record": {**clean, "rows": rows}}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_killed_twice_and_resumed_with_the_readme_command(tmp_path, config):
    straight = nasframe(tmp_path / "straight", config)
    assert straight.returncode == 0, straight.stderr[-3000:]

    root = tmp_path / "killed"
    for kill, resume in ((4, []), (5, ["--ckpt_path", "last"])):
        run = nasframe(root, config, *resume, killed_after(kill))
        assert run.returncode == -signal.SIGKILL, run.stderr[-3000:]
        assert (root / "checkpoints" / "last.ckpt").is_file() and not (root / "export").exists()
    resumed = nasframe(root, config, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stderr + resumed.stdout

    for name in ("architecture.json", "nasframe-export.json"):
        assert json.loads((root / "export" / name).read_text()) == json.loads((tmp_path / "straight" / "export" / name).read_text())
    assert_same(load_file(root / "export" / "model.safetensors"), load_file(tmp_path / "straight" / "export" / "model.safetensors"), "weights")
    got, expected = (torch.load(r / "checkpoints" / "last.ckpt", weights_only=True) for r in (root, tmp_path / "straight"))
    assert got["epoch"] == expected["epoch"] and got["global_step"] == expected["global_step"]
    assert_same(without_wall_times(got["nasframe"]["state"]), without_wall_times(expected["nasframe"]["state"]))
    assert_same(got["state_dict"], expected["state_dict"], "state_dict")


def test_export_subcommand_takes_the_last_checkpoint(tmp_path):
    run = nasframe(tmp_path, "quickstart.yaml")
    assert run.returncode == 0, run.stderr[-3000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    export = subprocess.run([sys.executable, "-m", "nasframe.cli", "export", "--config", str(ROOT / "examples" / "quickstart.yaml"),
                             *CONFIGS["quickstart.yaml"], "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last",
                             "--export_dir", str(tmp_path / "again")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-3000:]
    assert json.loads((tmp_path / "again" / "architecture.json").read_text()) == json.loads((tmp_path / "export" / "architecture.json").read_text())
