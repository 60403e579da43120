"""Exports never destroy what nasframe did not write, never look complete when they are not, and
``load_model`` refuses an inconsistent one."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import CountConvolutions, tiny_data, tiny_space, tiny_trainer
from nasframe import NASModule, load_model
from nasframe.errors import CheckpointError, ExportError
from nasframe.export import MANIFEST_FILE, export_model
from nasframe.hookspecs import hookimpl
from nasframe.strategies import RandomSearch, SinglePathStrategy


def write_export(directory, overwrite=False, extra_plugins=(), seed=0, **guard):
    space = tiny_space()
    nas = NASModule(space, RandomSearch(CountConvolutions(), budget=3), plugins=list(extra_plugins))
    architecture = space.sample(torch.Generator().manual_seed(seed))
    return export_model(nas.hook, space, architecture, space.build(architecture), None, directory, overwrite, **guard)


def test_an_export_carries_a_manifest_and_overwrite_replaces_only_exports(tmp_path):
    target = write_export(tmp_path / "e", seed=0)
    manifest = json.loads((target / MANIFEST_FILE).read_text())
    assert manifest["files"] == ["architecture.json", "model.safetensors"]
    first = (target / "architecture.json").read_text()
    write_export(tmp_path / "e", overwrite=True, seed=1)
    assert (target / "architecture.json").read_text() != first, "a nasframe export is replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"], "no staging or retired copy is left behind"


@pytest.mark.parametrize("content", ["a user's directory", "an export with a user's file added"])
def test_overwrite_refuses_what_nasframe_did_not_write(tmp_path, content):
    target = tmp_path / "e"
    if content == "a user's directory":
        target.mkdir()
    else:
        write_export(target)
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"refuses to replace '.*/e'"):
        write_export(target, overwrite=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_export_dir_may_not_overlap_the_run(tmp_path, monkeypatch):
    run, checkpoints = tmp_path / "run", tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    guard = dict(protected=[checkpoints], enclosing=[run])
    for bad in (run, checkpoints, checkpoints / "export", tmp_path):
        with pytest.raises(ExportError, match="export_dir"):
            write_export(bad, overwrite=True, **guard)
    monkeypatch.chdir(run)
    with pytest.raises(ExportError, match="working or the home directory"):
        write_export(run, overwrite=True)
    assert checkpoints.is_dir()
    assert write_export(run / "export", **guard).is_dir(), "beside the checkpoints, inside the run's root, is fine"


def test_export_parent_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file, not a directory"):
        write_export(tmp_path / "file" / "sub" / "export")
    with pytest.raises(ExportError, match="exists and is not a directory"):
        write_export(tmp_path / "file", overwrite=True)


def test_a_failed_export_leaves_nothing_and_a_killed_one_is_cleaned_up_next_time(tmp_path):
    class Interrupted:
        @hookimpl
        def nasframe_export(self, architecture, network, search_space, directory, example_input):
            (directory / "half.bin").write_bytes(b"x")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_export(tmp_path / "e", extra_plugins=[Interrupted()])
    assert list(tmp_path.iterdir()) == []

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".e.partial-{dead}-abc"  # what a SIGKILLed export leaves behind
    alive = tmp_path / f".e.partial-{os.getppid()}-abc"  # another process's export in progress
    for directory in (stale, alive):
        directory.mkdir()
        (directory / "architecture.json").write_text("{}")
    (tmp_path / ".e.partial-notes").mkdir()  # not nasframe's name pattern
    write_export(tmp_path / "e")
    assert not stale.exists() and alive.exists() and (tmp_path / ".e.partial-notes").exists()


def test_load_model_refuses_an_inconsistent_export(tmp_path):
    target = write_export(tmp_path / "e")
    model = load_model(target)
    description = json.loads((target / "architecture.json").read_text())
    description["architecture_string"] = description["architecture_string"].replace("~0|", "~1|", 1)
    (target / "architecture.json").write_text(json.dumps(description))
    with pytest.raises(ExportError, match="architecture_string .* does not match its choices"):
        load_model(target)

    target = write_export(tmp_path / "f")
    weights = load_file(target / "model.safetensors")
    name = next(n for n, t in weights.items() if t.is_floating_point() and t.numel() > 1)
    weights[name][0] = float("nan")
    save_file(weights, target / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"non-finite values .*{name}"):
        load_model(target)
    assert isinstance(model, torch.nn.Module)


def test_an_export_dir_over_the_run_fails_before_any_work(tmp_path):
    nas = NASModule(tiny_space(), SinglePathStrategy(), export_dir=str(tmp_path), overwrite_export=True)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="export_dir"):
        tiny_trainer(tmp_path, enable_checkpointing=True).fit(nas, datamodule=tiny_data())
    assert nas.strategy.last_architecture is None and (tmp_path / "keep.txt").read_text() == "mine"
