"""Fine-tuning an exported model on the labelled part of a dataset (few-label evaluation).

    nasframe fit --config examples/finetune_cifar10.yaml

``FineTuneModule`` is paper-agnostic: it loads any export directory written by a search (with the
weights found during the search, ``init: pretrained``) or rebuilds the same architecture with fresh
weights (``init: random``), and trains it with cross-entropy on the samples whose target is >= 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from nasframe.errors import NASFrameError
from nasframe.export import load_model, load_search_space, read_export
from nasframe.spaces.architecture import Architecture


class FineTuneModule(LightningModule):
    """Train an exported network with cross-entropy on labelled samples only.

    Args:
        model_dir: an export directory (``architecture.json`` + ``model.safetensors``).
        init: ``"pretrained"`` keeps the exported weights; ``"random"`` rebuilds the same
            architecture with fresh weights (the baseline the exported weights are compared to).
        optimizer: default SGD(lr 0.025, momentum 0.9, weight decay 3e-4, nesterov).
        lr_scheduler: default cosine annealing over the trainer's ``max_epochs`` (stepped per epoch);
            ``None`` in a config keeps that default.
        label_smoothing: passed to the cross-entropy.
        reset_head: re-initialise the classifier (``forward_head``'s last ``nn.Linear``), e.g. when
            the search never trained it.
    """

    def __init__(self, model_dir: str, init: Literal["pretrained", "random"] = "pretrained",
                 optimizer: OptimizerCallable | None = None, lr_scheduler: LRSchedulerCallable | None = None,
                 label_smoothing: float = 0.0, reset_head: bool = False) -> None:
        super().__init__()
        if init not in ("pretrained", "random"):
            raise NASFrameError(f"FineTuneModule: init must be 'pretrained' or 'random', got {init!r}")
        self.model_dir = Path(model_dir)
        self.init = init
        if init == "pretrained":
            self.network = load_model(model_dir).train()
        else:
            description = read_export(model_dir)  # fails clearly on a missing or foreign directory
            space = load_search_space(description["search_space"])
            self.network = space.build(space.validate(Architecture.from_dict(description["architecture"])))
        if reset_head:
            heads = [m for m in self.network.modules() if isinstance(m, nn.Linear)]
            if not heads:
                raise NASFrameError(f"reset_head: the network in {str(model_dir)!r} has no nn.Linear classifier")
            heads[-1].reset_parameters()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.label_smoothing = label_smoothing
        num_classes = self._num_classes()
        self.val_accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def _num_classes(self) -> int:
        heads = [m for m in self.network.modules() if isinstance(m, nn.Linear)]
        if heads:
            return heads[-1].out_features
        raise NASFrameError(f"cannot tell the number of classes of the network in {str(self.model_dir)!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    @staticmethod
    def _labelled(batch: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not (isinstance(batch, (list, tuple)) and len(batch) == 2 and isinstance(batch[1], torch.Tensor)):
            raise NASFrameError("FineTuneModule needs (images, targets) batches of one view; remove multi-view "
                                "train_transforms (e.g. SimCLRTransform) from the fine-tuning data")
        x, y = batch
        if isinstance(x, (list, tuple)):
            raise NASFrameError("FineTuneModule got several views per image; use a single-view train_transform")
        mask = y >= 0  # targets < 0 mark unlabelled samples: never trained on
        if not bool(mask.any()):
            return None
        return x[mask], y[mask]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | None:
        labelled = self._labelled(batch)
        if labelled is None:
            return None  # Lightning skips the step
        x, y = labelled
        loss = F.cross_entropy(self.network(x), y, label_smoothing=self.label_smoothing)
        self.log("train/cross_entropy", loss, prog_bar=True, batch_size=len(y), on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: Any, metric: MulticlassAccuracy, stage: str) -> None:
        labelled = self._labelled(batch)
        if labelled is None:
            return
        x, y = labelled
        logits = self.network(x)
        metric.update(logits, y)
        self.log(f"{stage}/cross_entropy", F.cross_entropy(logits, y), batch_size=len(y))
        self.log(f"{stage}/accuracy", metric, prog_bar=True, on_epoch=True, on_step=False)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.val_accuracy, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._evaluate(batch, self.test_accuracy, "test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.network.parameters() if p.requires_grad]
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(params)
        else:
            optimizer = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=3e-4, nesterov=True)
        if self.lr_scheduler_factory is not None:
            scheduler = self.lr_scheduler_factory(optimizer)
        else:
            epochs = self.trainer.max_epochs if self._trainer is not None and (self.trainer.max_epochs or 0) > 0 else 1
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
