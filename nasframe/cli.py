"""The ``nasframe`` console script: LightningCLI with nasframe's plugins loaded and an ``export`` subcommand.

    nasframe fit --config examples/quickstart.yaml
    nasframe fit --config examples/quickstart.yaml --print_config
    nasframe export --config examples/quickstart.yaml --ckpt_path runs/.../last.ckpt --export_dir my_model
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.cli import LightningCLI

from nasframe.errors import NASFrameError
from nasframe.module import NASModule, load_search_checkpoint
from nasframe.plugins import NASPluginManager


class NASTrainer(Trainer):
    """Lightning's Trainer plus ``export``, so that ``nasframe export`` takes the same config as ``fit``."""

    def export(self, model: LightningModule, ckpt_path: str, export_dir: str, overwrite: bool = False,
               datamodule: LightningDataModule | None = None) -> Path:
        """Export the final model of a saved search (a checkpoint of the same config) into ``export_dir``."""
        if not isinstance(model, NASModule):
            raise NASFrameError(f"export needs a nasframe.NASModule model, got {type(model).__name__}")
        load_search_checkpoint(model, ckpt_path)
        directory = model.export(export_dir, overwrite=overwrite)
        print(model.summary(model.final_architecture, directory))
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


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nasframe`` console script."""
    try:
        # Importing the plugin packages first lets configs name their classes by short name.
        NASPluginManager().load_entry_point_plugins()
        NASFrameCLI(args=args)
    except NASFrameError as exc:
        print(f"nasframe: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
