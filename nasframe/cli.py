"""The ``nasframe`` console script: LightningCLI with nasframe's plugins loaded and an ``export`` subcommand.

    nasframe fit --config examples/quickstart.yaml
    nasframe fit --config examples/quickstart.yaml --print_config
    nasframe export --config examples/quickstart.yaml --ckpt_path runs/.../last.ckpt --export_dir my_model
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

from nasframe.errors import NASFrameError
from nasframe.module import NASModule, load_search_checkpoint, read_checkpoint
from nasframe.plugins import NASPluginManager


class NASTrainer(Trainer):
    """Lightning's Trainer plus ``export``, so that ``nasframe export`` takes the same config as ``fit``."""

    def export(self, model: LightningModule, ckpt_path: str, export_dir: str, overwrite: bool = False,
               datamodule: LightningDataModule | None = None) -> Path:
        """Export the final model of a saved search (a checkpoint of the same config) into ``export_dir``."""
        if not isinstance(model, NASModule):
            raise NASFrameError(f"export needs a nasframe.NASModule model, got {type(model).__name__}")
        load_search_checkpoint(model, ckpt_path)
        network = model.final_network(model.decide(), datamodule=datamodule)
        directory = model.export(export_dir, overwrite=overwrite, network=network)
        print(model.summary(model.final_architecture, directory, network))
        return directory


class NASFrameCLI(LightningCLI):
    """LightningCLI whose optimizers come from the model's config: searches configure their own
    (bi-level) optimizers, so LightningCLI must not replace ``configure_optimizers``."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_class", NASTrainer)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # datamodule_class=None keeps `data:` optional: tabular searches need none
        super().__init__(LightningModule, None, args=args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "export": {"model", "datamodule"}}


def _option_values(args: list[str], *names: str) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.partition("=")[2])
    return values


def check_input_files(args: list[str]) -> None:
    """Fail naming the file when a ``--config`` is missing or not YAML, or a ``--ckpt_path`` is
    damaged: jsonargparse and Lightning would report neither by name."""
    for path in _option_values(args, "-c", "--config"):
        if not Path(path).is_file():
            raise NASFrameError(f"config file {path!r} does not exist")
        try:
            yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise NASFrameError(f"config file {path!r} is not valid YAML: {exc}") from None
    for path in _option_values(args, "--ckpt_path"):
        if path not in ("last", "best", "hpc", "registry", "null", "None"):
            read_checkpoint(path)  # weights only: a tampered file cannot run code


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nasframe`` console script."""
    try:
        check_input_files(sys.argv[1:] if args is None else args)
        # Importing the plugin packages first lets configs name their classes by short name.
        NASPluginManager().load_entry_point_plugins()
        NASFrameCLI(args=args)
    except Exception as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        print(f"nasframe: error: {user_error}", file=sys.stderr)
        raise SystemExit(1) from None


def _user_error(exc: BaseException | None, depth: int = 0) -> NASFrameError | None:
    """Our own error inside ``exc``: jsonargparse wraps what a class raises while it is instantiated."""
    if exc is None or depth > 10:
        return None
    if isinstance(exc, NASFrameError):
        return exc
    return _user_error(exc.__cause__, depth + 1) or _user_error(exc.__context__, depth + 1)


if __name__ == "__main__":
    main()
