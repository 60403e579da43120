"""The SemiNAS performance predictor: an MLP from the architecture embedding to a (z-scored) score."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Predictor(nn.Module):
    """MLP ``hidden_size -> layers... -> 1`` with ReLU between layers; no output squashing, since
    it regresses z-scored accuracies, which are unbounded."""

    def __init__(self, hidden_size: int = 64, layers: Sequence[int] = (64,), dropout: float = 0.0) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = hidden_size
        for size in layers:
            blocks += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        blocks.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.mlp(embedding).squeeze(-1)
