"""The `nasframe` console script end to end, on the embedded digits data."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT
from nasframe import load_model
from nasframe.cli import main

QUICKSTART = str(ROOT / "examples" / "quickstart.yaml")


def tiny_args(tmp_path, *extra):
    return ["--config", QUICKSTART, "--trainer.max_steps", "6", "--trainer.default_root_dir", str(tmp_path),
            "--model.init_args.search_space.init_args.channels", "4", "--data.init_args.limit_train", "128",
            "--model.init_args.export_dir", str(tmp_path / "export"), *extra]


def test_fit_from_yaml_ends_in_a_loadable_export(tmp_path, capsys):
    main(["fit", *tiny_args(tmp_path)])
    model = load_model(tmp_path / "export")
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_export_subcommand_rebuilds_the_same_model_from_a_checkpoint(tmp_path):
    main(["fit", *tiny_args(tmp_path, "--trainer.enable_checkpointing", "true")])
    checkpoint = next(Path(tmp_path).rglob("*.ckpt"))
    main(["export", *tiny_args(tmp_path), "--ckpt_path", str(checkpoint), "--export_dir", str(tmp_path / "again")])
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(load_model(tmp_path / "again")(x), load_model(tmp_path / "export")(x), rtol=0, atol=0)


def test_print_config_shows_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", QUICKSTART, "--print_config"])
    assert exit_info.value.code == 0
    assert "nasframe.spaces.nb201.NB201Space" in capsys.readouterr().out


@pytest.mark.parametrize("override, needle", [
    (["--model.init_args.strategy.init_args.sede", "1"], "sede"),
    (["--model.init_args.search_space.init_args.channels", "wide"], "channels"),
    (["--model.init_args.search_space.class_path", "nasframe.spaces.nb201.NoSuchSpace"], "NoSuchSpace"),
])
def test_bad_config_fails_before_work_naming_the_key(tmp_path, capsys, override, needle):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(tmp_path), *override])
    assert exit_info.value.code != 0
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "export").exists()


def test_malformed_yaml_fails(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  class_path: nasframe.NASModule\n   init_args: [\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    assert exit_info.value.code != 0 and "bad.yaml' is not valid YAML" in capsys.readouterr().err


def test_unknown_plugin_name_fails_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(tmp_path), "--model.init_args.plugins", "[not-installed]"])
    assert exit_info.value.code == 1
    assert "unknown plugin 'not-installed'; available plugins:" in capsys.readouterr().err


def test_missing_data_path_fails_clearly(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *tiny_args(tmp_path), "--data", "nasframe.data.NpzDataModule", "--data.init_args.path", str(tmp_path / "nope.npz")])
    assert exit_info.value.code == 1
    assert "nope.npz" in capsys.readouterr().err


def test_third_party_plugin_package_is_found_by_entry_point(tmp_path, monkeypatch):
    """Install examples/plugin_package for real and run its YAML: discovery is not mocked."""
    target, source = tmp_path / "site", tmp_path / "plugin_package"
    shutil.copytree(ROOT / "examples" / "plugin_package", source)  # setuptools builds in the source tree
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(target), str(source)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([sys.executable, "-m", "nasframe.cli", "fit", "--config", str(ROOT / "examples" / "plugin_package" / "example.yaml"),
                          "--trainer.max_steps", "4", "--model.init_args.export_dir", str(tmp_path / "export")],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "export" / "chosen_by.txt").read_text().startswith("SinglePathStrategy: ")
    with pytest.raises(Exception, match="cannot be imported; is its package installed"):
        load_model(tmp_path / "export")  # the space's package is not importable here yet
    monkeypatch.syspath_prepend(str(target))
    assert load_model(tmp_path / "export")(torch.randn(2, 1, 8, 8)).shape == (2, 10)

    # without the package on the path the same config fails fast, naming the missing plugin
    env.pop("PYTHONPATH")
    run = subprocess.run([sys.executable, "-m", "nasframe.cli", "fit", "--config", str(ROOT / "examples" / "plugin_package" / "example.yaml")],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode != 0 and "example" in run.stderr


@pytest.mark.parametrize("damage", ["truncate", "tamper", "foreign"])
def test_damaged_checkpoint_fails_clearly_for_fit_and_export(tmp_path, capsys, damage):
    main(["fit", *tiny_args(tmp_path, "--trainer.enable_checkpointing", "true")])
    checkpoint = next(Path(tmp_path).rglob("*.ckpt"))
    data = checkpoint.read_bytes()
    if damage == "truncate":
        checkpoint.write_bytes(data[: len(data) // 2])
    elif damage == "tamper":
        import pickle
        checkpoint.write_bytes(pickle.dumps(torch.nn.Linear(1, 1)))  # arbitrary objects must not be unpickled
    else:
        torch.save({"weights": torch.zeros(1)}, checkpoint)
    for command in (["fit", *tiny_args(tmp_path / "resume"), "--ckpt_path", str(checkpoint)],
                    ["export", *tiny_args(tmp_path), "--ckpt_path", str(checkpoint), "--export_dir", str(tmp_path / "out")]):
        with pytest.raises(SystemExit) as exit_info:
            main(command)
        assert exit_info.value.code == 1
        assert str(checkpoint) in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "resume" / "export").exists()


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0 and "--ckpt_path" in capsys.readouterr().out
