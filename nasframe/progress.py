"""What a search prints while it runs: the progress bar, and nothing Lightning says that a user cannot act on."""

from __future__ import annotations

import logging
import warnings
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar, TQDMProgressBar

#: Lightning's info lines that advertise products or repeat what the config says (rank-zero logger)
_CHATTER = ("💡 Tip:", "GPU available:", "TPU available:", "HPU available:")
#: Lightning warnings that are noise in a search, each matched by its exact start
_WARNINGS = (
    # a sample-based search on a tabular benchmark trains no weights, on purpose
    r"`LightningModule\.configure_optimizers` returned `None`, this fit will run with no optimizer",
    # NASModule has a validation step for supernets; a search without data (a tabular benchmark) has nothing to validate
    r"You defined a `validation_step` but have no `val_dataloader`\. Skipping val loop",
    # Lightning's own use of a deprecated torch API: nothing a user can change
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)
# rank_zero_info logs through whichever of these was imported last (lightly imports pytorch_lightning)
_RANK_ZERO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                      "pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_CHATTER)


def quiet_lightning() -> None:
    """Drop Lightning's tips and device-availability lines and the warnings in ``_WARNINGS``.
    Targeted: every other message, warning or error is untouched. Idempotent."""
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropChatter) for f in logger.filters):
            logger.addFilter(_DropChatter())
    for message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message)


class _SearchProgress:
    """Shows a sample-based search's ``search/evaluated`` against its budget (``40/100``)."""

    def get_metrics(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)  # type: ignore[misc]
        budget = getattr(getattr(pl_module, "strategy", None), "budget", None)
        evaluated = metrics.get("search/evaluated")
        if isinstance(budget, int) and isinstance(evaluated, (int, float)):
            metrics["search/evaluated"] = f"{int(evaluated)}/{budget}"
        return metrics


class SearchTQDMProgressBar(_SearchProgress, TQDMProgressBar):
    """Lightning's TQDM progress bar, showing queries done against the budget."""


class SearchRichProgressBar(_SearchProgress, RichProgressBar):
    """Lightning's rich progress bar, showing queries done against the budget."""


def search_progress_bar() -> ProgressBar:
    """The rich progress bar where ``rich`` is installed, else TQDM's."""
    try:
        return SearchRichProgressBar()
    except ModuleNotFoundError:  # RichProgressBar refuses to start without rich
        return SearchTQDMProgressBar()
