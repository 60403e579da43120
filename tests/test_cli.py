"""The `nasframe` console script end to end, on the embedded digits data."""

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.accelerators import AcceleratorRegistry

from conftest import ROOT
from nasframe import ArchitectureError, load_model
from nasframe.errors import CheckpointError
from nasframe.cli import check_parsed_config, main

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


def fails_in_one_line(capsys, command):
    """Run ``nasframe <command>``: it must exit 1, with no traceback, its error as stderr's last
    line and only one. That line."""
    with pytest.raises(SystemExit) as exit_info:
        main(command)
    err = capsys.readouterr().err
    assert exit_info.value.code == 1, err[-2000:]
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert [line for line in lines if line.startswith("nasframe: error: ")] == lines[-1:], err[-2000:]
    return lines[-1]


def nothing_written(tmp_path):
    """No export and no checkpoint: the run failed before any training work."""
    return not (tmp_path / "export").exists() and not any(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize("option, value, needle", [
    ("max_epochs", "-5", "`max_epochs` must be a non-negative integer"),
    ("max_steps", "-5", "`max_steps` must be a non-negative integer"),
    ("check_val_every_n_epoch", "0", "trainer.check_val_every_n_epoch must be a positive integer or null, got 0"),
    ("val_check_interval", "0", "trainer.val_check_interval must be a positive number of batches"),
    ("devices", "-2", "`devices` selected with `CPUAccelerator` should be an int > 0"),
    ("accumulate_grad_batches", "0", "accumulate_grad_batches=0"),  # rejected as the fit starts
])
def test_invalid_trainer_option_is_one_line_naming_it(tmp_path, capsys, option, value, needle):
    assert needle in fails_in_one_line(capsys, ["fit", *tiny_args(tmp_path), f"--trainer.{option}", value])
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("option, value", [("channels", "-3"), ("cells_per_stage", "0")])
def test_invalid_space_argument_is_one_line_naming_it(tmp_path, capsys, option, value):
    error = fails_in_one_line(capsys, ["fit", *tiny_args(tmp_path), f"--model.init_args.search_space.init_args.{option}", value])
    assert error == f"nasframe: error: NB201Space: {option} must be a positive integer, got {value}"
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps", "tpu"])
def test_missing_accelerator_names_the_available_ones(tmp_path, capsys, accelerator):
    wanted = {"gpu": ["cuda", "mps"]}.get(accelerator, [accelerator])
    if any(AcceleratorRegistry[name]["accelerator"].is_available() for name in wanted):
        pytest.skip(f"this machine has a {accelerator} accelerator")
    error = fails_in_one_line(capsys, ["fit", *tiny_args(tmp_path), "--trainer.accelerator", accelerator])
    assert f"trainer.accelerator {accelerator!r} is not available on this machine; available: cpu" in error
    assert error.endswith(", auto")
    assert nothing_written(tmp_path)


@pytest.fixture(scope="module")
def search_checkpoint(tmp_path_factory):
    """The checkpoint of one tiny search (4 channels), shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("search")
    main(["fit", *tiny_args(root, "--trainer.enable_checkpointing", "true")])
    return next(root.rglob("*.ckpt"))


@pytest.mark.parametrize("damage", ["tampered", "truncated"])
@pytest.mark.parametrize("form", ["fit top-level", "fit nested under fit:", "export top-level"])
def test_damaged_checkpoint_named_in_yaml_fails_clearly(tmp_path, capsys, search_checkpoint, form, damage):
    checkpoint, run = tmp_path / "damaged.ckpt", tmp_path / "run"
    if damage == "tampered":
        checkpoint.write_bytes(pickle.dumps(torch.nn.Linear(1, 1)))  # must not be unpickled
    else:
        checkpoint.write_bytes(search_checkpoint.read_bytes()[:5000])
    config = tmp_path / "resume.yaml"
    if form == "fit nested under fit:":  # the root parser's --config, as LightningCLI accepts it
        config.write_text(f"fit:\n  ckpt_path: {checkpoint}\n")
        command = ["--config", str(config), "fit", *tiny_args(run)]
    else:
        config.write_text(f"ckpt_path: {checkpoint}\n")
        command = [form.split()[0], *tiny_args(run), "--config", str(config)]
        if form.startswith("export"):
            command += ["--export_dir", str(run / "out")]
    assert f"checkpoint {str(checkpoint)!r} is truncated, tampered with or not a checkpoint" in fails_in_one_line(capsys, command)
    assert nothing_written(run) and not (run / "out").exists()


@pytest.mark.parametrize("keyword", ["last", "best", "hpc", "registry", "registry:my-model:1", None])
def test_ckpt_path_keywords_are_not_read_as_files(keyword):
    from jsonargparse import Namespace

    check_parsed_config(Namespace(ckpt_path=keyword, trainer=Namespace(accelerator="cpu")))
    with pytest.raises(CheckpointError, match="checkpoint 'lastt' does not exist"):
        check_parsed_config(Namespace(ckpt_path="lastt", trainer=Namespace()))


@pytest.mark.parametrize("override, needle", ids=["channels", "space class", "objectives"], argvalues=[
    (["--model.init_args.search_space.init_args.channels", "8"],
     "was written for a different search space: channels 4 in the checkpoint, 8 in this config"),
    (["--model.init_args.search_space", json.dumps({"class_path": "nasframe.spaces.darts.DARTSSpace",
                                                    "init_args": {"cells": 1, "channels": 4, "in_channels": 1, "image_size": 8}})],
     "was written for a different search space: nasframe.spaces.nb201.NB201Space in the checkpoint, "
     "nasframe.spaces.darts.DARTSSpace in this config"),
    (["--model.init_args.objectives", json.dumps([{"class_path": "nasframe.objectives.CrossEntropy"},
                                                  {"class_path": "nasframe.objectives.SimCLR"}])],
     "does not match this configuration (another strategy, objectives or space?): missing weights objectives.1.head."),
])
def test_checkpoint_of_another_config_fails_naming_the_difference(tmp_path, capsys, search_checkpoint, override, needle):
    for command in (["fit", *tiny_args(tmp_path), "--ckpt_path", str(search_checkpoint), *override],
                    ["export", *tiny_args(tmp_path), "--ckpt_path", str(search_checkpoint), *override,
                     "--export_dir", str(tmp_path / "out")]):
        error = fails_in_one_line(capsys, command)
        assert error.startswith(f"nasframe: error: checkpoint {str(search_checkpoint)!r} ") and needle in error
    assert nothing_written(tmp_path) and not (tmp_path / "out").exists()


FOREIGN_DIGITS = {"arabic-indic": 0x0660, "full-width": 0xFF10, "devanagari": 0x0966}
SPACES = {"nb201": ("nasframe.spaces.nb201", "NB201Space", {}),
          "darts": ("nasframe.spaces.darts", "DARTSSpace", {"cells": 2}),
          "mbconv": ("nasframe.spaces.mbconv", "MBConvSpace", {}),
          "nb101": ("nasframe.spaces.nb101", "NB101Space", {})}


def with_a_foreign_digit(space_name, text, zero):
    """``text`` with one ASCII digit the parser reads replaced by the same digit of another script."""
    foreign = lambda digit: chr(zero + int(digit))  # noqa: E731
    if space_name == "nb101":  # JSON: digits of another script can only come as strings
        data = json.loads(text)
        row = next(i for i, r in enumerate(data["matrix"]) if 1 in r)
        data["matrix"][row][data["matrix"][row].index(1)] = foreign(1)
        return json.dumps(data, ensure_ascii=False)
    pattern = r"k([0-9])" if space_name == "mbconv" else r"~([0-9])"
    return re.sub(pattern, lambda m: m.group(0)[0] + foreign(m.group(1)), text, count=1)


@pytest.mark.parametrize("script", sorted(FOREIGN_DIGITS))
@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_architecture_strings_with_non_ascii_digits_are_rejected(space_name, script):
    """int() and str.isdigit() read '٠', '０' or '०' as 0, and a plain \\d regex matches them."""
    import importlib

    module, klass, args = SPACES[space_name]
    space = getattr(importlib.import_module(module), klass)(**args)
    text = space.format(space.sample(torch.Generator().manual_seed(0)))
    assert space.parse(text) is not None
    foreign = with_a_foreign_digit(space_name, text, FOREIGN_DIGITS[script])
    assert foreign != text
    with pytest.raises(ArchitectureError) as error:
        space.parse(foreign)
    assert any(chr(FOREIGN_DIGITS[script] + d) in str(error.value) for d in range(10))  # it names the offending text


def test_nb201_non_ascii_digit_names_the_string_and_the_accepted_form():
    from nasframe.spaces.nb201 import NB201Space

    text = "|nor_conv_3x3~\u0660|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(ArchitectureError, match=re.escape(f"malformed NAS-Bench-201 architecture {text!r}; expected '|op~0|+")):
        NB201Space().parse(text)


def test_ctrl_c_exits_130_after_a_clean_shutdown_without_exporting(tmp_path):
    """A real SIGINT after the first batch, in a subprocess: Lightning catches the KeyboardInterrupt,
    shuts down and calls sys.exit(1); nasframe makes that 130 and never reaches the export."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "nasframe.cli", "fit", *tiny_args(tmp_path),
                          "--trainer.callbacks+=sigint_callback.InterruptAfterFirstBatch"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 130, run.stderr[-2000:]
    assert run.stderr.rstrip().endswith("nasframe: interrupted") and "Traceback" not in run.stderr
    assert not (tmp_path / "export").exists()


def test_threads_from_the_config_set_torchs_thread_count(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # the suite runs on one thread: start elsewhere so the option must change it
        main(["fit", *tiny_args(tmp_path), "--threads", "1"])
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", *tiny_args(tmp_path / "bad"), "--threads", "0"])
        assert exit_info.value.code == 1 and "threads must be a positive integer" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
