"""A quality signal for the network a search exports, that needs no training and no trained head.

At the end of a search on labelled images (``NASModule.on_fit_end``) the exported network is scored
on the datamodule's validation split:

- ``knn/accuracy``: weighted kNN classification (Lightly's ``knn_predict``) of the validation images
  by the network's ``forward_features``, L2-normalised, so the similarity is the cosine. It measures
  the features themselves, so it works for a label-free search as well as a supervised one.
- ``knn/accuracy_at_init``: the same figure for the same architecture freshly built with a fixed
  seed: the difference is what the search's weights add.
- ``export/val_accuracy``: top-1 accuracy of the network's own classifier head; meaningful only when
  the search trained that head (a supervised objective).

The memory bank and the queries both come from the validation split, so that only labels the
datamodule exposes are used (a label-free search marks its training labels -1): a deterministic
``KNN_FOLDS``-fold cross-validation (folds drawn by a fixed seeded permutation, so that a dataset
ordered by class still mixes), each fold classified with the other folds as the bank. ``k = 20`` and temperature 0.1 follow the usual SSL kNN monitor with
its bank shrunk to a few hundred images (digits: 324 bank images, about 32 per class, so 20
neighbours stay mostly within a class). Images go through the datamodule's ``eval_transform`` (none
by default: plain normalised images), never the training augmentation; networks run in eval mode.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from lightly.utils.benchmarking import knn_predict
from torch import nn
from torch.utils.data import DataLoader, Dataset

from nasframe.data import ImageArrayDataset, NASDataModule

if TYPE_CHECKING:
    from nasframe.module import NASModule
    from nasframe.spaces.architecture import Architecture

KNN_K = 20
KNN_TEMPERATURE = 0.1
KNN_FOLDS = 10
KNN_FOLD_SEED = 0
#: seed of the freshly built network behind ``knn/accuracy_at_init``
INIT_SEED = 0


def validation_images(datamodule: Any) -> Dataset | None:
    """The datamodule's validation images with their labels, as its validation loader sees them
    (``eval_transform``, default: normalise only); ``None`` when it is no ``NASDataModule`` or has
    no labelled validation image."""
    if not isinstance(datamodule, NASDataModule):
        return None
    images, labels = datamodule.validation_arrays()  # uint8 images, the labels the loaders see
    if len(labels) == 0 or int(torch.as_tensor(labels).min()) < 0:
        return None
    return ImageArrayDataset(images, labels, datamodule.mean, datamodule.std, datamodule.eval_transform)


@torch.no_grad()
def features_and_logits(network: nn.Module, images: Dataset, device: torch.device | str = "cpu",
                        batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``forward_features``, ``forward_head`` outputs and labels of every image, in order (CPU tensors).
    ``network`` runs in eval mode; its own mode is restored afterwards."""
    was_training = network.training
    network.eval()
    features, logits, labels = [], [], []
    try:
        for x, y in DataLoader(images, batch_size=batch_size, shuffle=False):
            f = network.forward_features(x.to(device))
            features.append(f.flatten(1).float().cpu())
            logits.append(network.forward_head(f).float().cpu())
            labels.append(y)
    finally:
        network.train(was_training)
    return torch.cat(features), torch.cat(logits), torch.cat(labels)


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = KNN_K, temperature: float = KNN_TEMPERATURE,
                 folds: int = KNN_FOLDS) -> float:
    """Cross-validated kNN top-1 accuracy (%) of ``features`` (N, D) for ``labels`` (N,): each image is
    classified by the images of the other folds; image ``i`` is in fold ``permutation[i] % folds``
    for a permutation seeded by ``KNN_FOLD_SEED``, the same for every call."""
    if len(labels) < 2:
        raise ValueError(f"kNN accuracy needs at least 2 labelled images, got {len(labels)}")
    folds = min(folds, len(labels))
    features = F.normalize(features.float(), dim=1)
    num_classes = int(labels.max()) + 1
    fold = torch.randperm(len(labels), generator=torch.Generator().manual_seed(KNN_FOLD_SEED)) % folds
    correct = 0
    for f in range(folds):
        query, bank = fold == f, fold != f
        predicted = knn_predict(features[query], features[bank].t().contiguous(), labels[bank], num_classes,
                                knn_k=min(k, int(bank.sum())), knn_t=temperature)[:, 0]
        correct += int((predicted == labels[query]).sum())
    return 100.0 * correct / len(labels)


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == labels).float().mean())


def evaluate_network(network: nn.Module, images: Dataset, device: torch.device | str = "cpu") -> dict[str, float]:
    """``{"knn/accuracy": ..., "export/val_accuracy": ...}`` of ``network`` on ``images``."""
    features, logits, labels = features_and_logits(network, images, device)
    return {"knn/accuracy": knn_accuracy(features, labels), "export/val_accuracy": top1_accuracy(logits, labels)}


def evaluate_search(nas: NASModule, architecture: Architecture, network: nn.Module) -> dict[str, float]:
    """The figures above for ``network`` (the exported standalone network of ``architecture``) on the
    validation images of ``nas``'s datamodule; ``{}`` when there is none or it has no labels."""
    trainer = nas._trainer
    images = validation_images(getattr(trainer, "datamodule", None) if trainer is not None else None)
    if images is None:
        return {}
    device = trainer.strategy.root_device  # Lightning has moved the module back to the CPU by now
    results = evaluate_network(_copy_to(network, device), images, device)
    with torch.random.fork_rng(devices=[]):  # a fixed initialisation that leaves the global RNG alone
        torch.manual_seed(INIT_SEED)
        fresh = nas.hook.nasframe_build_network(architecture=architecture)
    fresh_features, _, labels = features_and_logits(fresh.to(device), images, device)
    results["knn/accuracy_at_init"] = knn_accuracy(fresh_features, labels)
    if not _head_trained_on_labels(nas, trainer.datamodule):
        del results["export/val_accuracy"]  # an untrained head's accuracy is chance and would read as the method's
    return results


def _head_trained_on_labels(nas: NASModule, datamodule: Any) -> bool:
    """Whether the search trained the exported network's classifier on labelled images: a supernet
    trained by the strategy, on data that keeps some labels (zero-cost searches export fresh
    weights; label-free searches never train the head)."""
    return nas.supernet is not None and nas.strategy.trains_weights and getattr(datamodule, "label_fraction", 1.0) > 0


def _copy_to(network: nn.Module, device: torch.device) -> nn.Module:
    """``network`` (on the CPU) on ``device``: a copy unless that is the CPU, so the caller's network stays put."""
    return network if device.type == "cpu" else copy.deepcopy(network).to(device)
