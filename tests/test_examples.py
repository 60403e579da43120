"""Every example config parses; the tiny ones (embedded data) and the cheap ones on ../shared/data, shrunk,
give the same architecture twice."""

import json
import runpy

import pytest

from conftest import ROOT, shared_path
from nasframe.cli import main

CONFIGS = sorted((ROOT / "examples").glob("*.yaml"))
# nsga2_mbconv_digits searches the supernet that spos_mbconv_digits trains first: tests/test_optuna.py runs both
TINY = [c for c in CONFIGS if (c.stem == "quickstart" or c.stem.endswith("_digits")) and c.stem != "nsga2_mbconv_digits"]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_example_config_is_valid(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err


@pytest.mark.parametrize("config", TINY, ids=lambda c: c.name)
def test_same_seed_same_architecture(tmp_path, config, one_thread):
    chosen = []
    for run in ("first", "second"):
        export = tmp_path / run / "export"
        main(["fit", "--config", str(config), "--trainer.max_steps", "8", "--trainer.default_root_dir", str(tmp_path / run),
              "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
              "--model.init_args.export_dir", str(export)])
        chosen.append(json.loads((export / "architecture.json").read_text())["architecture"])
    assert chosen[0] == chosen[1]


def test_programmatic_example_runs(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    module = runpy.run_path(str(ROOT / "examples" / "programmatic.py"))
    module["main"](export_dir=str(tmp_path / "export"), max_epochs=1)
    assert (tmp_path / "export" / "model.safetensors").is_file()


STRATEGY = "--model.init_args.strategy.init_args."
# the configs on ../shared/data, shrunk to a few seconds (their relative data paths assume the project root as cwd)
SHARED = {
    "evolution_nb201.yaml": ("nb201/nb201_test_accuracy.csv", [STRATEGY + "budget=40"]),
    "seminas_nb201.yaml": ("nb201/nb201_test_accuracy.csv", [STRATEGY + "budget=32"]),
    # the export's evaluation on 64 validation images, not all: at full NB-201 width it is most of a run
    "epsinas_nb201.yaml": ("cifar10/cifar10_partial.npz", [STRATEGY + "num_samples=12", STRATEGY + "candidates_per_step=6",
                                                           "--data.init_args.batch_size=32", "--data.init_args.limit_val=64"]),
    "random_epsinas_nb201.yaml": ("cifar10/cifar10_partial.npz", [STRATEGY + "budget=12", STRATEGY + "candidates_per_step=6",
                                                                  "--data.init_args.batch_size=32", "--data.init_args.limit_val=64"]),
}


@pytest.mark.parametrize("config", sorted(SHARED))
def test_same_seed_same_architecture_on_shared_data(tmp_path, monkeypatch, config, one_thread):
    needs, overrides = SHARED[config]
    shared_path(needs)
    monkeypatch.chdir(ROOT)
    chosen = []
    for run in ("first", "second"):
        export = tmp_path / run / "export"
        main(["fit", "--config", str(ROOT / "examples" / config), *overrides, "--trainer.default_root_dir", str(tmp_path / run),
              "--trainer.logger", "false", "--trainer.enable_checkpointing", "false", "--model.init_args.export_dir", str(export)])
        chosen.append(json.loads((export / "architecture.json").read_text())["architecture"])
    assert chosen[0] == chosen[1]
