"""Run a network without leaving a trace in its buffers (BatchNorm running statistics)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def buffers_restored(module: nn.Module) -> Iterator[nn.Module]:
    """Inside, ``module`` may run in train mode (batch statistics, running statistics updated);
    on exit its buffers and train/eval mode are what they were. For scoring paths of a supernet,
    whose running statistics mix every path, without changing the search."""
    saved = [b.detach().clone() for b in module.buffers()]
    training = module.training
    try:
        yield module
    finally:
        with torch.no_grad():
            for buffer, value in zip(module.buffers(), saved):
                buffer.copy_(value)
        module.train(training)
