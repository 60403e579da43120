"""``SearchStep``: one batch on one architecture, as objectives see it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


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
