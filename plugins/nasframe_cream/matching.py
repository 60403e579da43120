"""The meta matching network: how well a prioritized path would teach the current student."""

from __future__ import annotations

import torch
from torch import nn


class MatchingNetwork(nn.Module):
    """A linear layer on the difference between the student's and a board path's softmax outputs
    on that path's stored images: ``score = w . flatten(p_student - p_path) + b``.

    The best-scoring path teaches; ``sigmoid(score)`` is the distillation weight rho. Zero
    initialisation makes every path score alike at first (the best board path teaches, rho = 0.5)
    until the meta updates learn which differences make good teachers.
    """

    def __init__(self, num_images: int, num_classes: int) -> None:
        super().__init__()
        self.num_images, self.num_classes = num_images, num_classes
        self.linear = nn.Linear(num_images * num_classes, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, student_probs: torch.Tensor, path_probs: torch.Tensor) -> torch.Tensor:
        """``(K, m, C)`` student and path probabilities -> ``(K,)`` matching scores (float32).

        Autocast is off: the scores pick the teacher by argmax and set rho, and the inputs are
        differences of probabilities, all of which bf16 would round; the layer is tiny."""
        with torch.autocast(device_type=student_probs.device.type, enabled=False):
            return self.linear((student_probs.float() - path_probs.float()).flatten(1)).squeeze(1)
