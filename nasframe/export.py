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
import shutil
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors_into, save_model
from torch import nn

from nasframe.errors import CheckpointError, ExportError
from nasframe.hookspecs import hookimpl
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


def check_export_target(directory: Path, overwrite: bool) -> None:
    if directory.exists() and not overwrite:
        raise ExportError(f"export directory {str(directory)!r} already exists; remove it, choose another "
                          "export_dir, or set overwrite_export: true")
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"export target {str(directory)!r} exists and is not a directory")


def export_model(hook: Any, search_space: SearchSpace, architecture: Architecture, network: nn.Module,
                 example_input: torch.Tensor | None, directory: Path, overwrite: bool = False) -> Path:
    """Run every exporter into a temporary directory, then rename it to ``directory``."""
    check_export_target(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.partial-", dir=directory.parent))
    try:
        written = [name for names in hook.nasframe_export(architecture=architecture, network=network, search_space=search_space,
                                                          directory=staging, example_input=example_input) for name in names or []]
        if WEIGHTS_FILE not in written:
            raise ExportError("no exporter wrote model.safetensors; keep SafetensorsExporter among the exporters")
        if directory.exists():  # overwrite: move the old export aside only once the new one is complete
            retired = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            directory.rename(retired)
            shutil.rmtree(retired)
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
    return description


def load_search_space(config: dict[str, Any]) -> SearchSpace:
    """Instantiate a search space from ``{"class_path": ..., "init_args": ...}``."""
    class_path = config.get("class_path", "")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        klass = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        raise ExportError(f"search space class {class_path!r} cannot be imported; is its package installed?") from None
    return klass(**config.get("init_args", {}))


def load_model(directory: str | Path) -> nn.Module:
    """The exported standalone network (eval mode), built from the architecture alone: no supernet."""
    description = read_export(directory)
    space = load_search_space(description["search_space"])
    architecture = space.validate(Architecture.from_dict(description["architecture"]))
    network = space.build(architecture)
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
    return network.eval()
