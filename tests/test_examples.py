"""Every example config parses; the tiny ones (embedded data) give the same architecture twice."""

import json
import runpy

import pytest

from conftest import ROOT
from nasframe.cli import main

CONFIGS = sorted((ROOT / "examples").glob("*.yaml"))
TINY = [c for c in CONFIGS if c.stem == "quickstart" or c.stem.endswith("_digits")]


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


def test_programmatic_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = runpy.run_path(str(ROOT / "examples" / "programmatic.py"))
    module["main"](export_dir=str(tmp_path / "export"), max_epochs=1)
    assert (tmp_path / "export" / "model.safetensors").is_file()
