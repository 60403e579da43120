"""``NASTrainer``: Lightning's Trainer with a search's defaults (a resumable ``last.ckpt``) and ``export``.

The ``nasframe`` CLI uses it; from Python it is a drop-in for ``lightning.pytorch.Trainer``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy

from nasframe.errors import CheckpointError, NASFrameError
from nasframe.export import check_export_target
from nasframe.module import NASModule, load_search_checkpoint
from nasframe.progress import quiet_lightning, search_progress_bar

# Lightning's DDP strategy names and their registered variants with find_unused_parameters=True
FIND_UNUSED_DDP = {name: f"{name}_find_unused_parameters_true" for name in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")}


class NASTrainer(Trainer):
    """Lightning's Trainer with a search's defaults, plus ``export``.

    Unless a ``ModelCheckpoint`` is configured (or checkpointing is off), checkpoints go to
    ``<default_root_dir>/checkpoints`` with a ``last.ckpt`` after every epoch: a directory that does
    not change from run to run, so that ``--ckpt_path last`` finds the checkpoint of a killed run
    (Lightning's default directory holds the logger's version, which a new run increments).
    Unless configured otherwise: a CSV logger (TensorBoard where installed, ``default_logger``)
    logging every step, and a progress bar (rich where installed) that shows a sample-based
    search's queries against its budget. Lightning's tips and device lines are not printed
    (``nasframe.progress.quiet_lightning``). A DDP strategy given by name (``"ddp"``,
    ``"ddp_spawn"``, ...) or chosen by ``"auto"`` finds unused parameters (its
    ``*_find_unused_parameters_true`` variant), since a single-path step leaves most of the supernet
    unused; a ``DDPStrategy`` object is used as given. ``export`` takes the same config as ``fit``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        quiet_lightning()
        callbacks = kwargs.get("callbacks")
        callbacks = [] if callbacks is None else list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        if kwargs.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in callbacks):
            # no version counter: a new run replaces last.ckpt instead of writing last-v1.ckpt beside it, so a
            # path to it (nsga2_mbconv_digits.yaml reads spos_mbconv_digits.yaml's) is the latest run's
            callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir(kwargs.get("default_root_dir")), save_last=True,
                                             enable_version_counter=False))
        if kwargs.get("enable_progress_bar") is not False and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(search_progress_bar())
        kwargs["callbacks"] = callbacks
        if kwargs.get("logger") in (None, True):
            kwargs["logger"] = default_logger(kwargs.get("default_root_dir"))
        if kwargs.get("log_every_n_steps") is None:
            # every step: a search's steps are few and each one counts (Lightning's 50 skips whole tiny searches)
            kwargs["log_every_n_steps"] = 1
        # A single-path step trains one path of the supernet, so DDP must find the unused parameters:
        # ask for it through Lightning's registered strategy names (the public route).
        strategy = kwargs.get("strategy", "auto")
        if isinstance(strategy, str) and strategy in FIND_UNUSED_DDP:
            kwargs["strategy"] = FIND_UNUSED_DDP[strategy]
        super().__init__(*args, **kwargs)
        if strategy == "auto" and type(self.strategy) is DDPStrategy:
            # Lightning chose plain DDP itself (several devices): build the trainer again with the
            # variant that finds unused parameters, as Lightning's own chooser would name it
            interactive = hasattr(sys, "ps1") or bool(sys.flags.interactive)
            kwargs["strategy"] = FIND_UNUSED_DDP["ddp_fork" if interactive else "ddp"]
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


def default_logger(default_root_dir: str | Path | None) -> Logger:
    """The logger of a trainer configured with none: TensorBoard where ``tensorboard`` is installed
    (``pip install -e ".[tensorboard]"``; the CLI logs the config as its hyperparameters), else CSV.
    Either writes to ``<default_root_dir>/lightning_logs/version_N``, with the run record."""
    save_dir = str(default_root_dir or Path.cwd())
    if importlib.util.find_spec("tensorboard") is not None or importlib.util.find_spec("tensorboardX") is not None:
        return TensorBoardLogger(save_dir=save_dir, default_hp_metric=False)  # no placeholder hp_metric of -1
    return CSVLogger(save_dir=save_dir)
