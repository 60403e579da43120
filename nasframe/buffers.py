"""BatchNorm running statistics: run a network without leaving a trace in them, or re-estimate them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from nasframe.errors import NASFrameError


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


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_batchnorm(network: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Re-estimate the running statistics of every BatchNorm layer of ``network`` that tracks them
    from the batches ``inputs`` (forwarded with ``network(x)``); returns the number of batches used.

    A path taken out of a weight-sharing supernet inherits running statistics averaged over every
    path trained before it (and, for layers all paths share, over their different inputs), so in
    eval mode it normalises with the wrong numbers; SPOS re-estimates them on training batches
    before evaluating a path. The new statistics are the plain average over the batches (momentum
    ``None``); only BatchNorm layers run in train mode, so dropout and the like stay off. Momenta
    and train/eval modes are restored afterwards."""
    norms = [m for m in network.modules() if isinstance(m, _BATCH_NORMS) and m.track_running_stats]
    if not norms:
        return 0
    training, momenta = network.training, [m.momentum for m in norms]
    device = next(network.buffers()).device
    network.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches instead of an exponential one
        norm.train()
    count = 0
    try:
        for x in inputs:
            network(x.to(device))
            count += 1
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        network.train(training)
    if count == 0:
        raise NASFrameError("BatchNorm recalibration got no batch; the statistics would be reset to 0 and 1")
    return count
