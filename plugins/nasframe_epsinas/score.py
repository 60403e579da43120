"""The epsinas score: two constant shared-weight initialisations, one unlabelled batch, no gradients.

``epsinas_score`` is the paper's formula on two output vectors. ``EpsinasScorer`` produces those
vectors for architectures of any search space: every weight tensor (conv, linear, normalisation
gamma) holds the constant, every bias is 0, BatchNorm uses batch statistics, and the head gives one
scalar per sample.

Two numerical facts shape the scorer (measured on NAS-Bench-201, see benchmarks/epsinas_nb201.py):

* **float32 underflows.** With w = 1e-7 a conv-BN pair scales activations by ~w^2 * fan_in / sqrt(eps)
  (~5e-10, since BN's eps dwarfs the batch variance), so an architecture whose every path crosses a
  convolution in each cell ends below 1e-38 and its output is exactly 0: NaN score. float64 (1e-308)
  rescues most but not all (~2% of NB201 still underflow). So the scorer computes in float64 *and*
  tracks the exponent: at each stage boundary (where one tensor is live) the activation is rescaled
  by a power of two (exact) and BatchNorm uses the tracked exponent in its variance term. Every
  architecture whose output depends on its input then scores finite.
* **Constant weights make every channel equal.** A convolution whose weights are all ``c`` gives each
  output channel ``c * sum over input channels`` of the window; per-channel BN, ReLU, pooling and
  sums keep equal channels equal. So a copy of the network with ``width`` channels computes the same
  numbers when each weight is scaled by (full fan-in channels / narrow fan-in channels). That makes
  float64 cheaper than the full-width float32 forward. ``verify_samples`` checks the equivalence
  against the full-width network once, on the first architecture whose output depends on its input
  (and that the plain network resolves), so a space where it does not hold fails loudly instead of
  scoring wrongly.

Two facts shape how a search uses the score:

* **Ranking.** The architectures only float64 rescues are mostly good ones with low scores
  (NAS-Bench-201: median test accuracy 92.1, median score 0.18 against 0.40), so one ranking of all
  scores places them among the rest and pick-best-of-1000 drops to 93.1 (the paper's protocol, which
  only ranks what float32 resolves: 94.2). ``EpsinasScores.ordered`` offers both orderings; the
  default ranks the float32-range architectures first (as the paper does), then the rescued ones,
  each with a finite score.
* **Degenerate scores.** Where the two normalised outputs agree to the last bits (NAS-Bench-101 gives
  ~1e-16), the score is rounding noise: reported as degenerate (NaN), not ranked.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nasframe.errors import NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace
from nasframe.spaces.capabilities import require

__all__ = ["DTYPES", "ORDERINGS", "EpsinasScorer", "EpsinasScores", "check_options", "epsinas_score", "fan_in_ratios",
           "normalise"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
ORDERINGS = ("float32_first", "score")
# scores below these are rounding noise (float32: 2**-23 per operation, accumulated over a deep network)
DEGENERATE_BELOW = {"float64": 1e-10, "float32": 1e-5}
FLOAT32_MIN_EXPONENT = -126  # float32's smallest normal number is 2**-126


def normalise(outputs: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each row to [0, 1] (in float64); exact zeros become NaN (missing).

    A constant row (max == min) or one holding inf/NaN becomes all NaN."""
    y = outputs.double()
    low, high = y.amin(-1, keepdim=True), y.amax(-1, keepdim=True)
    z = (y - low) / (high - low)
    bad = ~torch.isfinite(y).all(-1, keepdim=True) | (high == low)
    return z.masked_fill((z == 0) | bad, math.nan)


def epsinas_score(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """eps = mean_i |y1'_i - y2'_i| / mean(y1' and y2'), missing values ignored (higher is better).

    ``first``/``second``: one scalar output per sample under the two constants (shape ``(B,)``, or
    ``(..., B)`` to score several at once). NaN where either output is constant or not finite."""
    if first.shape != second.shape:
        raise ValueError(f"the two output vectors must have the same shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    z = normalise(torch.stack([first, second]))
    score = (z[0] - z[1]).abs().nanmean(-1) / torch.cat([z[0], z[1]], -1).nanmean(-1)
    return score.masked_fill(z.isnan().all(-1).any(0), math.nan)  # a constant output is NaN, never a score


def _box_sum(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """Sum over each ``kernel`` window (zero padded) as shifted adds: memory-bound and cheap. Strided
    windows add the strided slices directly, so no sum is computed that the stride would drop."""
    if padding != (0, 0):
        x = torch.nn.functional.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    if kernel == (1, 1):
        return x[..., :: stride[0], :: stride[1]]
    if stride != (1, 1):
        rows = (x.shape[-2] - kernel[0]) // stride[0] + 1
        cols = (x.shape[-1] - kernel[1]) // stride[1] + 1
        parts = (x[..., i: i + stride[0] * (rows - 1) + 1: stride[0], j: j + stride[1] * (cols - 1) + 1: stride[1]]
                 for i in range(kernel[0]) for j in range(kernel[1]))
        first = next(parts)
        return sum(parts, first)
    for dim, k in ((-2, kernel[0]), (-1, kernel[1])):
        if k > 1:
            n = x.shape[dim] - k + 1
            x = sum((x.narrow(dim, i, n) for i in range(1, k)), x.narrow(dim, 0, n))
    return x


def _constant_conv_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A convolution whose weights all equal ``c`` is ``c`` times a box sum of the channel sum (of each
    channel's own input when depthwise): a few adds instead of im2col + GEMM."""
    depthwise = conv.groups > 1
    summed = x if depthwise or x.shape[1] == 1 else x.sum(1, keepdim=True)
    y = _box_sum(summed, conv.kernel_size, conv.stride, conv.padding) * conv.weight.reshape(-1)[0]
    return y if depthwise or y.shape[1] == conv.out_channels else y.expand(-1, conv.out_channels, -1, -1)


def _box_sum_applies(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and conv.dilation == (1, 1)
            and isinstance(conv.padding, tuple) and conv.bias is None
            and (conv.groups == 1 or conv.groups == conv.in_channels == conv.out_channels))


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)  # type: ignore[return-value]


def _box_pool_applies(pool: nn.Module) -> bool:
    return (type(pool) is nn.AvgPool2d and not pool.ceil_mode and pool.divisor_override is None
            and pool.stride is not None)


_DIVISORS: dict[tuple, torch.Tensor] = {}


def _box_avg_pool_forward(pool: nn.AvgPool2d, x: torch.Tensor) -> torch.Tensor:
    """Average pooling as a box sum divided by the window's count (of unpadded pixels when
    ``count_include_pad`` is off): about twice as fast on CPU as ATen's kernel for few channels."""
    kernel, stride, padding = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
    total = _box_sum(x, kernel, stride, padding)
    if pool.count_include_pad or padding == (0, 0):
        return total / (kernel[0] * kernel[1])
    key = (tuple(x.shape[-2:]), kernel, stride, padding, x.dtype, x.device)
    divisor = _DIVISORS.get(key)
    if divisor is None:  # windows at the border cover fewer real pixels
        divisor = _DIVISORS[key] = _box_sum(torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device), kernel, stride, padding)
    return total / divisor


class _Scale:
    """The power of two ``2**k`` by which every live activation is represented (true = 2**k * stored)."""

    def __init__(self) -> None:
        self.k = 0


def _times_power_of_two(x: torch.Tensor, exponent: int) -> torch.Tensor:
    """``x * 2**exponent``, exact; a Python-float multiply (10x faster than ``torch.ldexp`` on CPU)
    wherever ``2**exponent`` is a normal number of ``x``'s dtype (the scalar is cast to it)."""
    limit = 1023 if x.dtype == torch.float64 else 127
    if 1 - limit <= exponent <= limit:
        return x * math.ldexp(1.0, exponent)
    return torch.ldexp(x, torch.tensor(exponent))


def _renormalise(scale: _Scale, module: nn.Module | None, args: tuple) -> tuple:
    """Pre-hook on a sequential stage: its input is the only live tensor, so it may be rescaled by a power
    of two (exact) to keep it near 1, whatever depth has shrunk it to."""
    x = args[0]
    peak = x.detach().abs().amax()
    if not torch.isfinite(peak) or peak == 0:
        return args
    exponent = int(torch.frexp(peak).exponent)
    scale.k += exponent
    return (_times_power_of_two(x, -exponent), *args[1:])


def batch_norm_at_scale(x: torch.Tensor, k: int, eps: float, gamma: torch.Tensor | float | None) -> torch.Tensor:
    """Batch-statistics BN of the true activation 2**k * x, stored at scale 2**k:
    gamma (x - m) / sqrt(4**k var + eps) + beta / 2**k, beta being 0 here (per channel, dim 1)."""
    dims = [0, *range(2, x.dim())]
    centred = x - x.mean(dims, keepdim=True)
    variance = (centred * centred).mean(dims, keepdim=True)
    factor = math.ldexp(1.0, min(2 * k, 1000))  # 0.0 once 4**k underflows: eps alone then
    inverse = torch.rsqrt(variance * factor + eps)  # (1, C, 1, 1): scaling it first saves a full pass
    if isinstance(gamma, torch.Tensor):
        inverse = inverse * gamma.view([1, -1] + [1] * (x.dim() - 2))
    elif gamma is not None:
        inverse = inverse * gamma
    return centred.mul_(inverse)


def _scaled_batch_norm(bn: _BatchNorm, scale: _Scale, x: torch.Tensor) -> torch.Tensor:
    return batch_norm_at_scale(x, scale.k, bn.eps, bn.weight)


class _Network:
    """A scoring network with its weight tensors and fan-in multipliers, filled in place per constant."""

    def __init__(self, network: nn.Module, multipliers: dict[str, float], head_multiplier: float, dtype: torch.dtype,
                 box_sums: bool = True, rescale_at: str | None = None) -> None:
        self.module = network.to(dtype).eval().requires_grad_(False)
        if box_sums:  # exact for constant weights, whatever the input; the weights stay for export/inspection
            for m in self.module.modules():
                if _box_sum_applies(m):
                    m.forward = _constant_conv_forward.__get__(m)
                elif _box_pool_applies(m):  # the same sums, divided by the window's count
                    m.forward = _box_avg_pool_forward.__get__(m)
        params = dict(self.module.named_parameters())
        self.weights = [(p, multipliers.get(name, 1.0)) for name, p in params.items() if name.endswith("weight")]
        for name, p in params.items():
            if not name.endswith("weight"):
                p.zero_()  # biases and BN beta: 0, once
        for m in self.module.modules():
            if isinstance(m, _BatchNorm):  # batch statistics, whatever the space was configured with
                m.track_running_stats, m.running_mean, m.running_var, m.num_batches_tracked = False, None, None, None
        self.scale = _Scale()
        stages = getattr(self.module, rescale_at, None) if rescale_at else None
        if isinstance(stages, nn.ModuleList):  # exponent tracking: no underflow at any depth
            for stage in stages:
                stage.register_forward_pre_hook(functools.partial(_renormalise, self.scale))
            for m in self.module.modules():
                if isinstance(m, _BatchNorm):
                    m.forward = functools.partial(_scaled_batch_norm, m, self.scale)
        self.head_multiplier = head_multiplier
        self.constant: float | None = None

    def fill(self, constant: float) -> None:
        if self.constant != constant:
            for p, multiplier in self.weights:
                p.fill_(constant * multiplier)
            self.constant = constant

    def output(self, inputs: torch.Tensor, constant: float, architecture: Architecture | None) -> torch.Tensor:
        """One scalar per sample: a single-output linear head with weight ``constant`` and bias 0."""
        self.fill(constant)
        self.scale.k = 0
        features = self.module.forward_features(inputs) if architecture is None else self.module.forward_features(inputs, architecture)
        return features.flatten(1).sum(1) * (constant * self.head_multiplier)


@dataclass(frozen=True)
class EpsinasScores:
    """The epsinas scores of several architectures, and what a search orders them by.

    Attributes:
        eps: the paper's score (float64, higher is better); NaN where an output is constant or not
            finite (the output does not depend on the input), or where the score is degenerate.
        degenerate: the score lies within rounding of zero (below ``degenerate_below``): the two
            normalised outputs agree to the last bits, so the score says nothing (reported NaN in ``eps``).
        float32_range: the smaller constant's output varies, in true magnitude, by at least float32's
            smallest normal number (2**-126), so a plain float32 forward resolves it. The others are
            the architectures a float32 computation (the paper's) collapses to a constant output and
            only float64 with exponent tracking scores (on NAS-Bench-201 the true spreads fall in two
            groups, at most 2**-539 and at least 2**-103: the threshold is nowhere near either).
    """

    eps: torch.Tensor
    degenerate: torch.Tensor
    float32_range: torch.Tensor

    def ordered(self, ordering: str = "float32_first") -> torch.Tensor:
        """The scores a search ranks by (higher is better, NaN never chosen).

        ``"float32_first"``: lexicographic (in float32 range, eps): ``eps`` for the architectures a
        float32 computation resolves, ``eps / (1 + eps) - 1`` (in (-1, 0), same order) for the others,
        so every one of them ranks below every float32-range one and still has a finite score. This
        is the paper's pick-best protocol (which could only rank the float32-finite ones) extended to
        all. ``"score"``: ``eps`` for all, one ranking (on NAS-Bench-201 it places the rescued
        architectures, mostly good ones with low scores, among the rest: a worse pick-best).
        """
        if ordering == "score":
            return self.eps.clone()
        if ordering != "float32_first":
            raise NASFrameError(f"epsinas ordering {ordering!r} is not supported; accepted: {list(ORDERINGS)}")
        return torch.where(self.float32_range, self.eps, self.eps / (1.0 + self.eps) - 1.0)


class EpsinasScorer:
    """Scores architectures of ``space`` with the epsinas proxy.

    Args:
        space: the search space; its networks need ``forward_features`` (the core's network contract).
        constants: the two weight values (NAS-Bench-201: 1e-7 and 1; NAS-Bench-101: 1e-4 and 10).
        dtype: ``"float64"`` (default: finite wherever the output depends on the input) or
            ``"float32"`` (the original computation; collapses to NaN for many good architectures).
        width: score on a copy of the space with this many channels (``width_arg``); exactly
            equivalent for constant weights (see the module docstring). ``None``: full width.
            NAS-Bench-101 (``NB101Space``) splits channels unevenly between vertices, so no narrow
            copy is exact; any ``width`` there selects the channel-group computation instead
            (``nasframe_epsinas.nb101``: one tensor per group of equal channels, exact at full width).
        width_arg: the space's init argument holding its width.
        verify_samples: compare the fast computation's outputs with the plain full-width network's on
            this many images, once, on the first architecture whose output depends on its input and
            that the plain network resolves (0 skips the check).
        use_supernet: build the space's supernet once per constant and run each architecture's path,
            instead of building a network per architecture. Falls back to per-architecture networks
            when the space has no supernet, or when the supernet's BatchNorm is not affine where the
            standalone network's is (DARTS): the score is always that of the standalone network.
        flush_denormal: flush subnormal numbers to zero while scoring; they only arise in the batch
            variance of tiny activations, where BN's eps dwarfs them, and are ~100x slower on CPU.
        rescale_at: the network's ``nn.ModuleList`` of sequential stages (NAS-Bench-201: ``layers``); the
            input of each stage is the only live tensor, so it is rescaled there by a power of two and BN
            reads the tracked exponent: exact, and no underflow at any depth (``None``: off; a network
            without that attribute is not rescaled).
        box_sums: run each constant-weight convolution as ``c`` times a box sum of its channel sum
            (an exact identity for constant weights; one pooling kernel instead of im2col + GEMM), and
            average pooling as the same box sums divided by the window's count.
        degenerate_below: a score below this is within rounding of zero and reported as degenerate
            (NaN), not ranked. ``None``: ``DEGENERATE_BELOW[dtype]`` (1e-10 in float64, 1e-5 in float32).
            Measured: NAS-Bench-101's degenerate scores (two normalised outputs equal) lie between
            1e-16 and 1e-14 in float64, its real ones above 1e-2; NAS-Bench-201's smallest seen ~2e-4.
        share: on NAS-Bench-201 (supernet, ``rescale_at`` as given), ``score_many``/``measure`` share
            work between architectures (``nasframe_epsinas.shared``): equal cells are scored once, equal
            operations on equal inputs run once, and the first cell's node tensors are kept across
            architectures. The scores equal the one-at-a-time computation's to rounding.
    """

    def __init__(self, space: SearchSpace, constants: Sequence[float] = (1e-7, 1.0), dtype: str = "float64",
                 width: int | None = 1, width_arg: str = "channels", verify_samples: int = 8, use_supernet: bool = True,
                 flush_denormal: bool = True, box_sums: bool = True, rescale_at: str | None = "layers",
                 degenerate_below: float | None = None, share: bool = True) -> None:
        check_options(constants, dtype, width)
        self.space = space
        self.constants = (float(constants[0]), float(constants[1]))
        self.dtype = DTYPES[dtype]
        self.verify_samples = verify_samples
        self.flush_denormal = flush_denormal
        self.box_sums = box_sums
        self.rescale_at = rescale_at
        self.degenerate_below = DEGENERATE_BELOW[dtype] if degenerate_below is None else float(degenerate_below)
        self._groups = None
        if width is not None and _is_nb101(space):
            from nasframe_epsinas.nb101 import NB101Groups

            self._groups = NB101Groups(space, self.dtype, rescale=rescale_at is not None)
            self.narrow_space = space
        else:
            self.narrow_space = self._narrow(space, width, width_arg)
        self._supernets: list[_Network] | None = None
        self._use_supernet = use_supernet
        self._share = share
        self._shared: Any = None
        exact_plain = self.narrow_space is space and not box_sums and not rescale_at and self._groups is None
        self._verified = exact_plain or verify_samples <= 0
        self._verify_attempts = 0
        self._inputs: tuple[torch.Tensor, torch.Tensor] | None = None

    @staticmethod
    def _narrow(space: SearchSpace, width: int | None, width_arg: str) -> SearchSpace:
        if width is None:
            return space
        init_args = dict(space.config()["init_args"])
        if width_arg not in inspect.signature(type(space).__init__).parameters:
            accepted = [p for p in inspect.signature(type(space).__init__).parameters if p != "self"]
            raise NASFrameError(f"epsinas width_arg {width_arg!r} is not an argument of {type(space).__name__}; "
                                f"accepted: {accepted}, or set width: null to score at full width")
        if init_args.get(width_arg, width + 1) <= width:
            return space
        try:
            return type(space)(**{**init_args, width_arg: width})
        except (NASFrameError, ValueError) as exc:
            raise NASFrameError(f"epsinas width {width} does not fit {type(space).__name__} ({exc}); set a larger width "
                                "or width: null to score at full width") from None

    # ---- networks -------------------------------------------------------------------------------
    def _wrap(self, build: Any, architecture: Architecture | None) -> _Network:
        narrow = build(self.narrow_space)
        if self.narrow_space is self.space:
            return _Network(narrow, {}, 1.0, self.dtype, self.box_sums, self.rescale_at)
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            full = build(self.space)
        return _Network(narrow, fan_in_ratios(full, narrow), _feature_dim(full) / _feature_dim(narrow), self.dtype,
                        self.box_sums, self.rescale_at)

    def _networks(self, architecture: Architecture) -> tuple[list[_Network], bool]:
        """The networks for the two constants and whether they take ``architecture`` as a path."""
        if self._use_supernet and self._supernets is None:
            try:
                self._supernets = [self._wrap(lambda s: s.supernet(), None) for _ in self.constants]
            except NASFrameError:  # the space has no supernet: build each architecture instead
                self._use_supernet = False
            else:
                if not _same_batch_norms(self._supernets[0].module, self.narrow_space, architecture):
                    self._supernets, self._use_supernet = None, False  # it would score another network
        if self._use_supernet:
            return self._supernets, True
        network = self._wrap(lambda s: s.build(architecture), architecture)
        return [network, network], False  # one network, refilled in place for the second constant

    def _shared_forward(self, architecture: Architecture) -> Any:
        """The NAS-Bench-201 shared computation over the supernets, or ``None`` where it does not apply."""
        if self._shared is None and self._share and _is_nb201(self.narrow_space):
            networks, by_path = self._networks(architecture)
            if by_path:
                from nasframe_epsinas.shared import NB201SharedForward

                rescale = self.rescale_at == "layers"
                self._shared = NB201SharedForward(networks, self.constants, rescale)
        return self._shared

    # ---- scoring ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        flushed = self.flush_denormal and torch.set_flush_denormal(True)
        try:
            # oneDNN is slower than ATen's own kernels on the few-channel narrow convolutions
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*oneDNN.*")  # torch warns on every flags() call
                # autocast off: a mixed-precision search on CPU scores under autocast, which would run the
                # float32 option's convolutions in bf16 (autocast leaves float64 alone); the score is
                # defined at the precision asked for
                with (torch.inference_mode(), torch.autocast("cpu", enabled=False),
                      torch.backends.mkldnn.flags(enabled=self.narrow_space is self.space and self._groups is None)):
                    yield
        finally:
            if flushed:
                torch.set_flush_denormal(False)

    def _cast(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._inputs is None or self._inputs[0] is not inputs:  # cast a fixed batch once
            self._inputs = (inputs, inputs.detach().to("cpu", self.dtype).contiguous())
        return self._inputs[1]

    def _raw(self, architectures: list[Architecture], x: torch.Tensor, share: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(N, 2, B)`` at the tracked scale and their power-of-two exponents ``(N, 2)``."""
        if self._groups is not None:
            return self._groups.outputs(architectures, x, self.constants)
        shared = self._shared_forward(architectures[0]) if share and architectures else None
        if shared is not None:
            return shared.outputs(architectures, x)
        outputs, exponents = [], []
        for architecture in architectures:
            networks, by_path = self._networks(architecture)
            path = architecture if by_path else None
            for net, constant in zip(networks, self.constants):
                outputs.append(net.output(x, constant, path))
                exponents.append(net.scale.k)
        return (torch.stack(outputs).view(len(architectures), 2, -1) if outputs else x.new_zeros(0, 2, len(x)),
                torch.tensor(exponents, dtype=torch.long).view(len(architectures), 2))

    def measure(self, architectures: Sequence[Architecture], inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar outputs ``(N, 2, B)`` of ``architectures`` under the two constants, stored at a
        power of two ``2**exponents`` (``(N, 2)``) of their true values (exponents 0 without rescaling)."""
        architectures = [self.space.validate(a) for a in architectures]
        x = self._cast(inputs)
        with self._numerics():
            for architecture in architectures:
                if self._verified:
                    break
                self._verified = self._verify(architecture, x)
            return self._raw(architectures, x)

    def outputs(self, architecture: Architecture, inputs: torch.Tensor) -> torch.Tensor:
        """The ``(2, B)`` scalar outputs of ``architecture`` on ``inputs`` under the two constants (at the
        tracked power of two, which the score ignores)."""
        return self.measure([architecture], inputs)[0][0]

    def evaluate(self, architectures: Sequence[Architecture], inputs: torch.Tensor) -> EpsinasScores:
        """Scores, degenerate flags and float32 range of ``architectures`` on ``inputs``."""
        outputs, exponents = self.measure(architectures, inputs)
        outputs = outputs.double()
        eps = epsinas_score(outputs[:, 0], outputs[:, 1])
        degenerate = eps < self.degenerate_below
        small = 0 if self.constants[0] < self.constants[1] else 1
        spread = outputs[:, small].amax(-1) - outputs[:, small].amin(-1)
        with torch.no_grad():
            log2_spread = torch.log2(spread) + exponents[:, small].double()
        float32_range = torch.isfinite(spread) & (spread > 0) & (log2_spread >= FLOAT32_MIN_EXPONENT)
        return EpsinasScores(eps.masked_fill(degenerate, math.nan), degenerate, float32_range)

    def score(self, architecture: Architecture, inputs: torch.Tensor) -> float:
        """The paper's score of one architecture (NaN: constant output or degenerate)."""
        return float(self.evaluate([architecture], inputs).eps[0])

    def score_many(self, architectures: Sequence[Architecture], inputs: torch.Tensor) -> torch.Tensor:
        """The paper's scores in float64, NaN where the output is constant or the score degenerate."""
        return self.evaluate(architectures, inputs).eps

    def _verify(self, architecture: Architecture, x: torch.Tensor) -> bool:
        """Compare the fast outputs with the plain full-width network's on ``verify_samples`` images.
        False (try the next architecture) when there is nothing to compare: an output that does not
        depend on the input, or one the plain network cannot resolve (it underflows, which is what
        the tracked exponent is for). Raises when they differ."""
        if self._verify_attempts >= 64:  # nothing comparable in 64 architectures: stop paying for full networks
            return True
        self._verify_attempts += 1
        sample = x[: self.verify_samples]
        got = normalise(self._raw([architecture], sample, share=False)[0][0])
        if got.isnan().all(-1).any():
            return False
        full = _Network(self.space.build(architecture), {}, 1.0, self.dtype, box_sums=False)
        with torch.backends.mkldnn.flags(enabled=True):
            expected = normalise(torch.stack([full.output(sample, c, None) for c in self.constants]))
        if expected.isnan().all(-1).any():
            return False
        # compared after min-max normalisation: the tracked power of two does not change the score
        if not torch.allclose(got, expected, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise NASFrameError(
                f"epsinas: the width-reduced / box-sum network of {type(self.space).__name__} does not reproduce the full network "
                f"(max relative difference {float(((got - expected).abs() / expected.abs()).nan_to_num(0.0).max()):.3g}); its layers "
                "do not keep equal channels equal under constant weights. Set width: null to score at full width.")
        return True


def _is_nb201(space: SearchSpace) -> bool:
    from nasframe.spaces.nb201 import NB201Space

    return isinstance(space, NB201Space)


def _is_nb101(space: SearchSpace) -> bool:
    from nasframe.spaces.nb101 import NB101Space

    return isinstance(space, NB101Space)


def _same_batch_norms(supernet: nn.Module, space: SearchSpace, architecture: Architecture) -> bool:
    """Whether the supernet's BatchNorm layers are affine exactly where the standalone network's are
    (DARTS supernets drop the affine parameters, which epsinas sets to the constant)."""
    with torch.device("meta"):
        standalone = space.build(architecture)

    def kinds(network: nn.Module) -> set[bool]:
        return {m.affine for m in network.modules() if isinstance(m, _BatchNorm)}

    return kinds(supernet) == kinds(standalone)


def check_options(constants: Sequence[float], dtype: str, width: int | None) -> None:
    """Fail on user input before any work, naming the option and what it accepts."""
    if len(constants) != 2 or not all(isinstance(c, (int, float)) and math.isfinite(c) and c > 0 for c in constants):
        raise NASFrameError(f"epsinas constants must be two positive finite numbers, got {list(constants)}")
    if constants[0] == constants[1]:
        raise NASFrameError(f"epsinas constants must differ, got {list(constants)}")
    if dtype not in DTYPES:
        raise NASFrameError(f"epsinas dtype {dtype!r} is not supported; accepted: {list(DTYPES)}")
    if width is not None and width < 1:
        raise NASFrameError(f"epsinas width must be a positive number of channels or null (full width), got {width}")


def fan_in_ratios(full: nn.Module, narrow: nn.Module) -> dict[str, float]:
    """For each weight with an input-channel dimension (conv, linear), full / narrow fan-in channels."""
    full_params = dict(full.named_parameters())
    ratios = {}
    for name, p in narrow.named_parameters():
        if name not in full_params:
            raise NASFrameError(f"epsinas: the width-reduced network has parameter {name!r} that the full one lacks; "
                                "set width: null to score at full width")
        if name.endswith("weight") and p.dim() >= 2:
            ratios[name] = full_params[name].shape[1] / p.shape[1]
    return ratios


def _feature_dim(network: nn.Module) -> int:
    return int(require(network, "feature_dim", "epsinas width reduction", hint="Or set width: null to score at full width"))
