"""epsinas on NAS-Bench-101 networks, exactly and cheaply, with one tensor per group of equal channels.

Under constant weights every channel of a vertex holds the same values (a constant convolution
gives each output channel the same sum; BatchNorm, ReLU and pooling act per channel). A
NAS-Bench-101 cell concatenates vertices of *different* widths (128 output channels split 43/43/42
between three vertices), so no narrower copy of the network is exact. Here a tensor is a list of
groups ``(values (B, 1, H, W), channels)``: a convolution over it is ``c * sum(channels * values)``
box-summed, truncating a vertex to fewer channels changes only its count, and the single-output
head is ``c * sum(channels * mean(values))``. That is the full-width network's computation on one
channel per group. The exponent is tracked at each cell's input as in ``score.py``, so nothing
underflows; BatchNorm uses the tracked exponent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb101 import vertex_channels
from nasframe_epsinas.score import _box_sum, _Scale, _times_power_of_two, batch_norm_at_scale

__all__ = ["NB101Groups"]

Groups = list[tuple[torch.Tensor, int]]
BN_EPS = 1e-5  # nn.BatchNorm2d's default, which the benchmark network uses


class NB101Groups:
    """The scalar outputs of NAS-Bench-101 networks (``NB101Space``) under constant weights.

    Args:
        space: the ``NB101Space`` (its stem width, stacks, cells per stack and input channels).
        dtype: the computation's dtype.
        rescale: track the exponent at each cell's input (no underflow at any depth).
    """

    def __init__(self, space: Any, dtype: torch.dtype, rescale: bool = True) -> None:
        self.space = space
        self.dtype = dtype
        self.rescale = rescale

    def outputs(self, architectures: Sequence[Architecture], x: torch.Tensor,
                constants: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(N, 2, B)`` at the tracked scale and exponents ``(N, 2)``. Architectures that prune
        to the same network are computed once."""
        x = x.to(self.dtype)
        done: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}
        outputs, exponents = [], []
        for architecture in architectures:
            matrix, ops = self.space.pruned(architecture)
            key = (tuple(map(tuple, matrix)), tuple(ops))
            if key not in done:
                pairs = [self.network_output(matrix, ops, x, c) for c in constants]
                done[key] = (torch.stack([y for y, _ in pairs]), torch.tensor([k for _, k in pairs], dtype=torch.long))
            outputs.append(done[key][0])
            exponents.append(done[key][1])
        if not outputs:
            return x.new_zeros(0, 2, len(x)), torch.zeros(0, 2, dtype=torch.long)
        return torch.stack(outputs), torch.stack(exponents)

    def network_output(self, matrix: list[list[int]], ops: list[str], x: torch.Tensor, c: float) -> tuple[torch.Tensor, int]:
        """One scalar per sample of the pruned cell ``(matrix, ops)``'s network with every weight ``c``,
        and the power-of-two exponent it is stored at."""
        space, scale = self.space, _Scale()
        # stem: conv3x3-bn-relu from the image's channels (each its own group of one)
        h: Groups = [(self._conv_bn_relu(x.sum(1, keepdim=True), 3, c, scale), space.stem_channels)]
        c_in = c_out = space.stem_channels
        for stack in range(space.stacks):
            if stack:
                h = [(F.max_pool2d(t, 2, 2), n) for t, n in h]
                c_out *= 2
            for _ in range(space.cells_per_stack):
                if self.rescale:
                    h = self._renormalise(h, scale)
                h = self._cell(h, c_in, c_out, matrix, ops, c, scale)
                c_in = c_out
        features = sum(n * t.mean((1, 2, 3)) for t, n in h)
        return features * c, scale.k

    # ---- one cell -------------------------------------------------------------------------------------
    def _cell(self, x: Groups, c_in: int, c_out: int, matrix: list[list[int]], ops: list[str], c: float,
              scale: _Scale) -> Groups:
        """``NB101Cell.forward`` on groups: interior inputs summed (truncation changes a count only), the
        input vertex through a 1x1 conv-bn-relu projection, the output concatenating its feeders."""
        n = len(matrix)
        channels = vertex_channels(c_in, c_out, matrix)
        outputs: list[torch.Tensor | None] = [None]
        for v in range(1, n - 1):
            inputs = [outputs[u] for u in range(1, v) if matrix[u][v]]
            if matrix[0][v]:
                inputs.append(self._project(x, c, scale))
            total = inputs[0]
            for extra in inputs[1:]:
                total = total + extra
            if ops[v] == "conv3x3-bn-relu":
                outputs.append(self._conv_bn_relu(total * channels[v], 3, c, scale))
            elif ops[v] == "conv1x1-bn-relu":
                outputs.append(self._conv_bn_relu(total * channels[v], 1, c, scale))
            else:
                outputs.append(F.max_pool2d(total, 3, 1, 1))
        feeding: Groups = [(outputs[u], channels[u]) for u in range(1, n - 1) if matrix[u][n - 1]]  # type: ignore[misc]
        if matrix[0][n - 1]:
            projected = self._project(x, c, scale)
            feeding = [(t + projected, k) for t, k in feeding] if feeding else [(projected, c_out)]
        return feeding

    def _project(self, x: Groups, c: float, scale: _Scale) -> torch.Tensor:
        """A 1x1 conv-bn-relu over every channel of ``x``: the channel sum is ``sum(count * values)``."""
        total = x[0][0] * x[0][1]
        for t, count in x[1:]:
            total = total + t * count
        return self._conv_bn_relu(total, 1, c, scale)

    def _conv_bn_relu(self, summed: torch.Tensor, kernel: int, c: float, scale: _Scale) -> torch.Tensor:
        """``summed``: the input already summed over its channels; the conv is ``c`` times its box sum."""
        y = _box_sum(summed, (kernel, kernel), (1, 1), (kernel // 2, kernel // 2)) * c
        return torch.relu(batch_norm_at_scale(y, scale.k, BN_EPS, c))

    @staticmethod
    def _renormalise(h: Groups, scale: _Scale) -> Groups:
        peak = max(t.abs().amax() for t, _ in h)
        if not torch.isfinite(peak) or peak == 0:
            return h
        exponent = int(torch.frexp(peak).exponent)
        scale.k += exponent
        return [(_times_power_of_two(t, -exponent), n) for t, n in h]
