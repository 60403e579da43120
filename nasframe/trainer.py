"""``NASTrainer``: Lightning's Trainer with a search's defaults (a resumable ``last.ckpt``) and ``export``.

The ``nasframe`` CLI uses it; from Python it is a drop-in for ``lightning.pytorch.Trainer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from nasframe.errors import CheckpointError, NASFrameError
from nasframe.export import check_export_target
from nasframe.module import NASModule, load_search_checkpoint


class NASTrainer(Trainer):
    """Lightning's Trainer with a search's defaults, plus ``export``.

    Unless a ``ModelCheckpoint`` is configured (or checkpointing is off), checkpoints go to
    ``<default_root_dir>/checkpoints`` with a ``last.ckpt`` after every epoch: a directory that does
    not change from run to run, so that ``--ckpt_path last`` finds the checkpoint of a killed run
    (Lightning's default directory holds the logger's version, which a new run increments).
    ``export`` takes the same config as ``fit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        callbacks = kwargs.get("callbacks")
        callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if kwargs.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            kwargs["callbacks"] = [*callbacks, ModelCheckpoint(dirpath=checkpoint_dir(kwargs.get("default_root_dir")), save_last=True)]
        super().__init__(*args, **kwargs)

    def export(self, model: LightningModule, ckpt_path: str, export_dir: str, overwrite: bool = False,
               datamodule: LightningDataModule | None = None) -> Path:
        """Export the final model of a saved search (a checkpoint of the same config, or ``last``)
        into ``export_dir``."""
        if not isinstance(model, NASModule):
            raise NASFrameError(f"export needs a nasframe.NASModule model, got {type(model).__name__}")
        ckpt_path = self.last_checkpoint() if ckpt_path == "last" else ckpt_path
        check_export_target(Path(export_dir), overwrite, protected=[Path(ckpt_path).parent],
                            enclosing=[Path(self.default_root_dir)])
        load_search_checkpoint(model, ckpt_path)
        network = model.final_network(model.decide(), datamodule=datamodule)
        directory = model.export(export_dir, overwrite=overwrite, network=network)
        print(model.summary(model.final_architecture, directory, network))
        return directory

    def last_checkpoint(self) -> str:
        """The newest ``last*.ckpt`` in this trainer's checkpoint directories."""
        places = sorted({str(c.dirpath) for c in self.checkpoint_callbacks if getattr(c, "dirpath", None)}) \
            or [checkpoint_dir(self.default_root_dir)]
        found = [path for place in places for path in Path(place).glob("last*.ckpt")]
        if not found:
            raise CheckpointError(f"--ckpt_path last: no last.ckpt in {places}; give the checkpoint's path instead")
        return str(max(found, key=lambda p: p.stat().st_mtime))


def checkpoint_dir(default_root_dir: str | Path | None) -> str:
    return str(Path(default_root_dir or Path.cwd()) / "checkpoints")
