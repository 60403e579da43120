"""Supervised cross-entropy on labelled samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasframe.objectives.base import Objective
from nasframe.step import SearchStep


class CrossEntropy(Objective):
    """Cross-entropy on the labelled samples of the first view (targets < 0 are skipped)."""

    def __init__(self, label_smoothing: float = 0.0, weight: float = 1.0, stages: tuple[str, ...] = ("train", "architecture", "val")) -> None:
        super().__init__(weight, stages)
        self.label_smoothing = label_smoothing

    def loss_terms(self, step: SearchStep) -> dict[str, torch.Tensor]:
        mask = step.labelled
        if mask is None or not bool(mask.any()):
            return {}
        logits = step.logits(0)
        return {"cross_entropy": F.cross_entropy(logits[mask], step.targets[mask], label_smoothing=self.label_smoothing)}
