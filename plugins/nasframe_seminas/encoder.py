"""The SemiNAS encoder: a token sequence to per-token outputs and one architecture embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SequenceEncoder(nn.Module):
    """Embedding -> bidirectional LSTM -> projection with a residual from the token embedding.

    Every token output is L2-normalised, and the architecture embedding is the normalised mean of
    the token outputs. Normalising bounds the space the predictor's gradient moves through, so one
    step size means roughly the same thing for every architecture.

    Args:
        vocabulary_size: number of global token ids (the space's ``vocabulary_size()``).
        hidden_size: width of token outputs and of the architecture embedding.
        layers: LSTM layers.
        dropout: dropout on the token embeddings (0 keeps a search deterministic and cheap).
    """

    def __init__(self, vocabulary_size: int, hidden_size: int = 64, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden_size, hidden_size, num_layers=layers, batch_first=True, bidirectional=True)
        self.projection = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokens`` (B, L) -> token outputs (B, L, H) and architecture embeddings (B, H)."""
        embedded = self.dropout(self.embedding(tokens))
        recurrent, _ = self.lstm(embedded)
        outputs = F.normalize(self.projection(recurrent) + embedded, dim=-1)
        return outputs, self.pool(outputs)

    @staticmethod
    def pool(outputs: torch.Tensor) -> torch.Tensor:
        """The architecture embedding of (possibly moved) token outputs."""
        return F.normalize(outputs.mean(dim=1), dim=-1)
