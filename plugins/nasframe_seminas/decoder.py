"""The SemiNAS decoder: an LSTM with attention over the encoder's token outputs, constrained to
each position's valid tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def position_mask(token_ranges: Sequence[range], vocabulary_size: int) -> torch.Tensor:
    """(L, V) boolean mask: ``mask[i, t]`` is true when token id ``t`` is valid at position ``i``."""
    mask = torch.zeros(len(token_ranges), vocabulary_size, dtype=torch.bool)
    for i, valid in enumerate(token_ranges):
        if len(valid) == 0 or valid.start < 0 or valid.stop > vocabulary_size:
            raise ValueError(f"position {i} has token range {valid}; expected a non-empty range inside [0, {vocabulary_size})")
        mask[i, valid.start:valid.stop] = True
    return mask


class AttentionDecoder(nn.Module):
    """Reconstructs a token sequence from the architecture embedding and the token outputs.

    The LSTM starts from the embedding (as both hidden and cell state), reads the previous token
    (a start token first), and attends (dot product) over the encoder's token outputs; the logits
    of position ``i`` are masked to ``token_ranges[i]``, in training as well as in decoding, so the
    likelihood and the greedy decode live on valid sequences only.

    Args:
        vocabulary_size: number of global token ids.
        token_ranges: for each position, the contiguous block of ids valid there.
        hidden_size: must equal the encoder's.
    """

    def __init__(self, vocabulary_size: int, token_ranges: Sequence[range], hidden_size: int = 64) -> None:
        super().__init__()
        self.vocabulary_size = vocabulary_size
        self.length = len(token_ranges)
        self.register_buffer("mask", position_mask(token_ranges, vocabulary_size), persistent=False)
        self.embedding = nn.Embedding(vocabulary_size + 1, hidden_size)  # the last id is the start token
        self.lstm = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.combine = nn.Linear(2 * hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, vocabulary_size)

    def _log_probs(self, hidden: torch.Tensor, memory: torch.Tensor, positions: slice) -> torch.Tensor:
        attention = torch.softmax(torch.bmm(hidden, memory.transpose(1, 2)), dim=-1)
        context = torch.bmm(attention, memory)
        logits = self.out(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1))))
        logits = logits.masked_fill(~self.mask[positions], float("-inf"))
        return F.log_softmax(logits, dim=-1)

    def _state(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state = embedding.unsqueeze(0).contiguous()
        return state, state

    def forward(self, memory: torch.Tensor, embedding: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced log-probabilities (B, L, V) of ``tokens`` (B, L)."""
        start = torch.full_like(tokens[:, :1], self.vocabulary_size)
        inputs = self.embedding(torch.cat([start, tokens[:, :-1]], dim=1))
        hidden, _ = self.lstm(inputs, self._state(embedding))
        return self._log_probs(hidden, memory, slice(0, self.length))

    @torch.no_grad()
    def decode(self, memory: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """Greedy decode (B, L): at every position the most likely *valid* token."""
        state = self._state(embedding)
        previous = torch.full((memory.shape[0], 1), self.vocabulary_size, dtype=torch.long, device=memory.device)
        tokens = []
        for i in range(self.length):
            hidden, state = self.lstm(self.embedding(previous), state)
            previous = self._log_probs(hidden, memory, slice(i, i + 1)).argmax(dim=-1)
            tokens.append(previous)
        return torch.cat(tokens, dim=1)
