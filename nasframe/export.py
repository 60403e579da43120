"""Export of the searched model, and ``load_model`` to get it back with no supernet in memory.

An export directory holds ``architecture.json`` (the architecture, its string form and the search
space's ``class_path``/``init_args``), ``model.safetensors`` (the standalone network's weights) and
whatever other exporters wrote (``model.pt2`` from ``torch.export``, ``model.onnx``). It is written
into a temporary sibling directory and renamed into place, so an interrupted export never leaves a
directory that looks complete.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_into, save_model
from torch import nn

from nasframe.errors import CheckpointError, ExportError
from nasframe.hookspecs import hookimpl
from nasframe.plugins import make_plugin_manager
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace

FORMAT = "nasframe-export/1"
ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "model.safetensors"


class Exporter(ABC):
    """Writes files for the final model through the ``nasframe_export`` hook."""

    @hookimpl(specname="nasframe_export")
    @abstractmethod
    def export(self, architecture: Architecture, network: nn.Module, search_space: SearchSpace, directory: Path,
               example_input: torch.Tensor | None) -> list[str]:
        """Write files into ``directory`` and return their names."""


class SafetensorsExporter(Exporter):
    """``architecture.json`` + ``model.safetensors``: what ``nasframe.load_model`` reads."""

    def export(self, architecture, network, search_space, directory, example_input) -> list[str]:
        description = {
            "format": FORMAT,
            "architecture": architecture.to_dict(),
            "architecture_string": search_space.format(architecture),
            "search_space": search_space.config(),
            "parameters": sum(p.numel() for p in network.parameters()),
        }
        (directory / ARCHITECTURE_FILE).write_text(json.dumps(description, indent=2) + "\n")
        save_model(network, str(directory / WEIGHTS_FILE))
        return [ARCHITECTURE_FILE, WEIGHTS_FILE]


class TorchExportExporter(Exporter):
    """``model.pt2``: a ``torch.export`` program of the network, loadable with ``torch.export.load``."""

    def export(self, architecture, network, search_space, directory, example_input) -> list[str]:
        if example_input is None:
            raise ExportError("torch.export needs an example input: the search saw no batch and the space has no input_shape")
        # batch size stays free; an example of 2 keeps torch.export from specialising on 1
        example = example_input.expand(2, *example_input.shape[1:]).contiguous()
        program = torch.export.export(network, (example,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
        torch.export.save(program, str(directory / "model.pt2"))
        return ["model.pt2"]


class OnnxExporter(Exporter):
    """``model.onnx`` through ``torch.onnx.export`` (needs the ``onnx`` and ``onnxscript`` packages)."""

    def __init__(self, opset_version: int | None = None) -> None:
        for package in ("onnx", "onnxscript"):
            if importlib.util.find_spec(package) is None:
                raise ExportError(f"OnnxExporter needs the {package!r} package: pip install onnx onnxscript")
        self.opset_version = opset_version

    def export(self, architecture, network, search_space, directory, example_input) -> list[str]:
        if example_input is None:
            raise ExportError("ONNX export needs an example input: the search saw no batch and the space has no input_shape")
        torch.onnx.export(network, (example_input,), str(directory / "model.onnx"), opset_version=self.opset_version,
                          dynamo=True, dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
        return ["model.onnx"]


MANIFEST_FILE = "nasframe-export.json"  # the marker: only a directory holding it may be replaced


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _is_within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_export_target(directory: Path, overwrite: bool, protected: Sequence[Path] = (),
                        enclosing: Sequence[Path] = ()) -> None:
    """Fail, naming ``directory``, unless an export can be written there without destroying anything
    nasframe did not write. It must not exist, or (with ``overwrite``) hold exactly a nasframe export;
    it must not be, contain or lie inside a ``protected`` directory (the run's logs and checkpoints);
    it must not be or contain an ``enclosing`` one (the run's root, the working and home directories);
    its parent must be creatable and writable. Called before a search starts and again at export."""
    target = directory.resolve()
    for keep in (Path(p).resolve() for p in protected):
        if _is_within(target, keep) or _is_within(keep, target):
            raise ExportError(f"export_dir {str(directory)!r} is, contains or lies inside the run's log or checkpoint "
                              f"directory {str(keep)!r}; choose a directory of its own")
    for keep in (Path(p).resolve() for p in (*enclosing, Path.cwd(), Path.home())):
        if _is_within(keep, target):
            raise ExportError(f"export_dir {str(directory)!r} is or contains {str(keep)!r} (the run's root, the working "
                              "or the home directory); choose a directory of its own, e.g. <root>/export")
    if directory.exists() or directory.is_symlink():
        if not directory.is_dir() or directory.is_symlink():
            raise ExportError(f"export target {str(directory)!r} exists and is not a directory; choose another export_dir")
        if not overwrite:
            raise ExportError(f"export directory {str(directory)!r} already exists; remove it, choose another "
                              "export_dir, or set overwrite_export: true")
        _check_replaceable(directory)
    ancestor = _first_existing(directory.parent.absolute())
    if not ancestor.is_dir():
        raise ExportError(f"cannot create export_dir {str(directory)!r}: {str(ancestor)!r} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ExportError(f"cannot create export_dir {str(directory)!r}: {str(ancestor)!r} is not writable")


def _check_replaceable(directory: Path) -> None:
    """``overwrite_export`` replaces only a directory that holds a nasframe export and nothing else."""
    manifest = directory / MANIFEST_FILE
    try:
        files = set(json.loads(manifest.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ExportError(f"overwrite_export refuses to replace {str(directory)!r}: it is not a nasframe export "
                          f"(no valid {MANIFEST_FILE}); remove it yourself or choose another export_dir") from None
    extra = sorted(p.name for p in directory.iterdir() if p.name not in files | {MANIFEST_FILE})
    if extra:
        raise ExportError(f"overwrite_export refuses to replace {str(directory)!r}: it holds files nasframe did not "
                          f"write ({', '.join(extra[:5])}); move them out or choose another export_dir")


def _remove_stale_staging(parent: Path, name: str) -> None:
    """Staging and retired directories of exports into ``parent/name`` whose process has died."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(partial|old)-(\d+)-")
    for path in parent.glob(f".{name}.*-*"):
        match = pattern.match(path.name)
        if match and path.is_dir() and not path.is_symlink() and not _process_alive(int(match.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    return True


def export_model(hook: Any, search_space: SearchSpace, architecture: Architecture, network: nn.Module,
                 example_input: torch.Tensor | None, directory: Path, overwrite: bool = False,
                 protected: Sequence[Path] = (), enclosing: Sequence[Path] = ()) -> Path:
    """Run every exporter into a temporary sibling directory, then rename it to ``directory``.

    The staging directory carries this process's id, so the next export into the same parent can
    remove what a killed one left behind. ``directory`` gets a manifest of the files written: it is
    what allows a later ``overwrite`` to replace it."""
    check_export_target(directory, overwrite, protected, enclosing)
    directory.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(directory.parent, directory.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-{os.getpid()}-", dir=directory.parent))
    try:
        written = [name for names in hook.nasframe_export(architecture=architecture, network=network, search_space=search_space,
                                                          directory=staging, example_input=example_input) for name in names or []]
        if WEIGHTS_FILE not in written:
            raise ExportError("no exporter wrote model.safetensors; keep SafetensorsExporter among the exporters")
        present = sorted(p.name for p in staging.iterdir())
        (staging / MANIFEST_FILE).write_text(json.dumps({"format": FORMAT, "files": present}, indent=2) + "\n")
        if directory.exists():  # overwrite: move the old export aside only once the new one is complete
            _check_replaceable(directory)
            retired = Path(tempfile.mkdtemp(prefix=f".{directory.name}.old-{os.getpid()}-", dir=directory.parent))
            directory.rename(retired / directory.name)
            staging.rename(directory)
            shutil.rmtree(retired)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def read_export(directory: str | Path) -> dict[str, Any]:
    """The parsed ``architecture.json`` of an export directory."""
    path = Path(directory) / ARCHITECTURE_FILE
    if not Path(directory).is_dir():
        raise ExportError(f"export directory {str(directory)!r} does not exist")
    if not path.is_file():
        raise ExportError(f"{str(directory)!r} is not a nasframe export: it has no {ARCHITECTURE_FILE}")
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ExportError(f"{str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ExportError(f"{str(path)!r} is not a {FORMAT} description")
    for key in ("architecture", "search_space"):
        if not isinstance(description.get(key), dict):
            raise ExportError(f"{str(path)!r} is damaged: its {key!r} entry is missing or not an object")
    return description


def load_search_space(config: dict[str, Any]) -> SearchSpace:
    """Instantiate a search space from ``{"class_path": ..., "init_args": ...}``."""
    class_path = config.get("class_path", "")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        klass = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ExportError(f"search space class {class_path!r} cannot be imported; is its package installed?") from None
    try:
        return klass(**config.get("init_args", {}))
    except (TypeError, ValueError) as exc:
        raise ExportError(f"search space {class_path!r} rejects the exported init_args: {exc}") from None


def load_model(directory: str | Path, plugins: Sequence[Any] = ()) -> nn.Module:
    """The exported standalone network (eval mode), built from the architecture alone: no supernet.

    The network is built through the ``nasframe_build_network`` hook, with plugins registered as a
    search registers them: the space, the installed entry-point plugins (unless autoloading is
    off) and ``plugins`` (names that must be installed, and plugin objects), so that a plugin that
    overrode the build during the search (``tryfirst``) builds the same network here.

    Refuses an inconsistent export: an ``architecture_string`` that disagrees with the choices,
    weights that do not fit the architecture, or non-finite weights."""
    description = read_export(directory)
    space = load_search_space(description["search_space"])
    try:
        architecture = space.validate(Architecture.from_dict(description["architecture"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(f"{str(directory)!r}: the architecture in {ARCHITECTURE_FILE} is invalid: {exc}") from None
    written = description.get("architecture_string")
    if written is not None and written != space.format(architecture):
        raise ExportError(f"{str(directory)!r}: {ARCHITECTURE_FILE} is inconsistent: its architecture_string {written!r} "
                          f"does not match its choices, which give {space.format(architecture)!r}")
    network = make_plugin_manager([space], plugins).hook.nasframe_build_network(architecture=architecture)
    if network is None:
        raise ExportError(f"{str(directory)!r}: no plugin built a network for {space.format(architecture)!r} "
                          "(nasframe_build_network returned nothing)")
    weights_path = Path(directory) / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"export {str(directory)!r} has no {WEIGHTS_FILE}")
    try:
        missing, unexpected = load_safetensors_into(network, str(weights_path), strict=False)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{str(weights_path)!r} is truncated, corrupt or does not fit the architecture: {exc}") from None
    if missing or unexpected:
        raise CheckpointError(f"{str(weights_path)!r} does not match architecture {space.format(architecture)!r}: "
                              f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    broken = [name for name, tensor in network.state_dict().items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise CheckpointError(f"{str(weights_path)!r} holds non-finite values (NaN or inf) in {broken[:5]}"
                              f"{' and more' if len(broken) > 5 else ''}; the search diverged or the file was altered")
    return network.eval()
