"""``SearchStep``: one batch on one architecture, as objectives see it; ``unpack_batch`` and
``split_batch``: the batch formats, for strategies and evaluators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasframe.errors import DataError, NASFrameError


def split_batch(batch: Any) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """``(inputs, targets)`` or ``inputs`` -> (list of views, targets or None).

    Multi-view transforms (Lightly's) give a list of views per image, collated to a list of batches.
    Targets below 0 mark unlabelled images.
    """
    if isinstance(batch, (tuple, list)) and len(batch) == 2 and not isinstance(batch[1], (list, tuple)):
        inputs, targets = batch
    else:
        inputs, targets = batch, None
    views = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    return views, targets


def unpack_batch(batch: Any, device: torch.device | str | None = None) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """The batch a strategy or an evaluator receives, as ``(views, targets)`` on ``device``.

    The batch formats (what the datamodule's loader yields; under DDP a sample-based search hands
    its evaluator rank 0's batch on every rank):

    * ``(images, targets)``: one view; ``targets`` is a 1-D integer tensor, ``-1`` for an
      unlabelled image (a partly labelled dataset);
    * ``([view_1, view_2, ...], targets)`` or ``[view_1, ...]``: several augmented views of the same
      images (self-supervised transforms);
    * ``images``: no labels;
    * ``{"weights": batch, "architecture": batch}``: a bi-level batch (a datamodule with an
      architecture split); its ``"weights"`` half is unpacked;
    * anything else that holds no tensor (the step index of a search with no datamodule, ``None``):
      a ``DataError`` naming what was received, as no images can be had from it.

    ``views`` is a list of ``(B, ...)`` tensors and ``targets`` a ``(B,)`` tensor or ``None``. With
    ``device`` (evaluators pass ``nas.device``) both are moved there; under a Trainer they usually
    are already."""
    if isinstance(batch, dict) and "weights" in batch:
        batch = batch["weights"]
    views, targets = split_batch(batch)
    if not all(isinstance(view, torch.Tensor) for view in views):
        raise DataError(f"this batch holds no image tensors (got {type(batch).__name__}); give the search a datamodule "
                         "whose loader yields images or (images, targets)")
    if device is not None:
        views = [view.to(device) for view in views]
        targets = targets.to(device) if isinstance(targets, torch.Tensor) else targets
    return views, targets


@dataclass
class SearchStep:
    """A batch, the architecture it runs on and the network that runs it.

    ``features(view)`` and ``logits(view)`` are computed on first use and cached, so several
    objectives share one forward pass. Strategies put extra inputs for objectives in ``extras`` (e.g.
    ``"teacher_logits"``) and per-term multipliers in ``term_weights``.
    """

    batch: Any
    architecture: Any
    network: nn.Module
    stage: str = "train"
    extras: dict[str, Any] = field(default_factory=dict)
    term_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.views, self.targets = split_batch(self.batch)
        self._features: dict[int, torch.Tensor] = {}
        self._logits: dict[int, torch.Tensor] = {}

    @property
    def batch_size(self) -> int:
        return int(self.views[0].shape[0])

    @property
    def labelled(self) -> torch.Tensor | None:
        """Boolean mask of labelled samples, or None when the batch has no targets."""
        return None if self.targets is None else self.targets >= 0

    def features(self, view: int = 0) -> torch.Tensor:
        if view not in self._features:
            x = self.views[view]
            if self.architecture is None:
                self._features[view] = self.network.forward_features(x)
            else:
                self._features[view] = self.network.forward_features(x, self.architecture)
        return self._features[view]

    def logits(self, view: int = 0) -> torch.Tensor:
        """The logits of ``view``, in float32 even under mixed precision: CPU autocast leaves softmax
        and log-softmax in bf16, where CUDA's computes them in float32, so objectives and strategies
        taking probabilities from logits would otherwise get bf16 ones on CPU only."""
        if view not in self._logits:
            self._logits[view] = self.network.forward_head(self.features(view)).float()
        return self._logits[view]


def new_step(supernet: nn.Module | None, batch: Any, architecture: Any, stage: str = "train",
             network: nn.Module | None = None) -> SearchStep:
    """A ``SearchStep`` of ``batch`` through ``network``, by default the search's ``supernet``: what a
    host's ``new_step`` returns (``NASModule`` and the trainer-free ``SearchRunner`` alike)."""
    network = network if network is not None else supernet
    if network is None:
        raise NASFrameError("this search has no supernet; pass the network to evaluate explicitly")
    return SearchStep(batch, architecture, network, stage)
