"""The objective base class."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from nasframe.hookspecs import hookimpl
from nasframe.step import SearchStep


class Objective(nn.Module):
    """Contributes named loss terms for a batch (the ``nasframe_loss_terms`` hook).

    An ``nn.Module`` so that heads it owns (projection heads) are trained by the module's weight
    optimizer and saved in checkpoints. ``stages`` limits where it applies: ``"train"`` (weight
    step), ``"architecture"`` (architecture step of bi-level searches) and ``"val"``.
    """

    def __init__(self, weight: float = 1.0, stages: tuple[str, ...] = ("train", "architecture", "val")) -> None:
        super().__init__()
        self.weight = weight
        self.stages = tuple(stages)

    @hookimpl(specname="nasframe_loss_terms")
    def _loss_terms_hook(self, step: SearchStep) -> dict[str, torch.Tensor] | None:
        if step.stage not in self.stages:
            return None
        terms = self.loss_terms(step)
        return {name: self.weight * value for name, value in terms.items()} if terms else None

    @abstractmethod
    def loss_terms(self, step: SearchStep) -> dict[str, torch.Tensor]:
        """Named scalar losses for ``step`` (empty when this objective has nothing to add)."""
