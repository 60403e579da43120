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
  against the full-width network on the first architecture, so a space where it does not hold fails
  loudly instead of scoring wrongly.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from nasframe.errors import NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace

__all__ = ["DTYPES", "EpsinasScorer", "check_options", "epsinas_score", "fan_in_ratios", "normalise"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    """Sum over each ``kernel`` window (zero padded), as shifted adds: memory-bound and cheap."""
    if padding != (0, 0):
        x = torch.nn.functional.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    for dim, k in ((-2, kernel[0]), (-1, kernel[1])):
        if k > 1:
            n = x.shape[dim] - k + 1
            x = sum((x.narrow(dim, i, n) for i in range(1, k)), x.narrow(dim, 0, n))
    return x[..., :: stride[0], :: stride[1]]


def _constant_conv_forward(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A convolution whose weights all equal ``c`` is ``c`` times a box sum of the channel sum (of each
    channel's own input when depthwise): a few adds instead of im2col + GEMM."""
    depthwise = conv.groups > 1
    y = _box_sum(x if depthwise else x.sum(1, keepdim=True), conv.kernel_size, conv.stride, conv.padding)
    y = y * conv.weight.reshape(-1)[0]
    return y if depthwise else y.expand(-1, conv.out_channels, -1, -1)


def _box_sum_applies(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and conv.dilation == (1, 1)
            and isinstance(conv.padding, tuple) and conv.bias is None
            and (conv.groups == 1 or conv.groups == conv.in_channels == conv.out_channels))


class _Scale:
    """The power of two ``2**k`` by which every live activation is represented (true = 2**k * stored)."""

    def __init__(self) -> None:
        self.k = 0


def _renormalise(scale: _Scale, module: nn.Module, args: tuple) -> tuple:
    """Pre-hook on a sequential stage: its input is the only live tensor, so it may be rescaled by a power
    of two (exact) to keep it near 1, whatever depth has shrunk it to."""
    x = args[0]
    peak = x.detach().abs().amax()
    if not torch.isfinite(peak) or peak == 0:
        return args
    exponent = int(torch.frexp(peak).exponent)
    scale.k += exponent
    return (torch.ldexp(x, torch.tensor(-exponent)), *args[1:])


def _scaled_batch_norm(bn: _BatchNorm, scale: _Scale, x: torch.Tensor) -> torch.Tensor:
    """Batch-statistics BN of the true activation 2**k * x, stored at scale 2**k:
    gamma (x - m) / sqrt(4**k var + eps) + beta / 2**k, beta being 0 here."""
    dims = [0, *range(2, x.dim())]
    centred = x - x.mean(dims, keepdim=True)
    variance = (centred * centred).mean(dims, keepdim=True)
    factor = math.ldexp(1.0, min(2 * scale.k, 1000))  # 0.0 once 4**k underflows: eps alone then
    y = centred / torch.sqrt(variance * factor + bn.eps)
    if bn.weight is not None:
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = y * bn.weight.view(shape)
    return y


class _Network:
    """A scoring network with its weight tensors and fan-in multipliers, filled in place per constant."""

    def __init__(self, network: nn.Module, multipliers: dict[str, float], head_multiplier: float, dtype: torch.dtype,
                 box_sums: bool = True, rescale_at: str | None = None) -> None:
        self.module = network.to(dtype).eval().requires_grad_(False)
        if box_sums:  # exact for constant weights, whatever the input; the weights stay for export/inspection
            for m in self.module.modules():
                if _box_sum_applies(m):
                    m.forward = _constant_conv_forward.__get__(m)
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


class EpsinasScorer:
    """Scores architectures of ``space`` with the epsinas proxy.

    Args:
        space: the search space; its networks need ``forward_features`` (the core's network contract).
        constants: the two weight values (NAS-Bench-201: 1e-7 and 1; NAS-Bench-101: 1e-4 and 10).
        dtype: ``"float64"`` (default: finite wherever the output depends on the input) or
            ``"float32"`` (the original computation; collapses to NaN for many good architectures).
        width: score on a copy of the space with this many channels (``width_arg``); exactly
            equivalent for constant weights (see the module docstring). ``None``: full width.
        width_arg: the space's init argument holding its width.
        verify_samples: on the first architecture, compare the narrow outputs with the full-width
            network's on this many images (0 skips the check).
        use_supernet: build the space's supernet once per constant and run each architecture's path,
            instead of building a network per architecture (falls back when the space has none).
        flush_denormal: flush subnormal numbers to zero while scoring; they only arise in the batch
            variance of tiny activations, where BN's eps dwarfs them, and are ~100x slower on CPU.
        rescale_at: the network's ``nn.ModuleList`` of sequential stages (NAS-Bench-201: ``layers``); the
            input of each stage is the only live tensor, so it is rescaled there by a power of two and BN
            reads the tracked exponent: exact, and no underflow at any depth (``None``: off; a network
            without that attribute is not rescaled).
        box_sums: run each constant-weight convolution as ``c`` times a box sum of its channel sum
            (an exact identity for constant weights; one pooling kernel instead of im2col + GEMM).
    """

    def __init__(self, space: SearchSpace, constants: Sequence[float] = (1e-7, 1.0), dtype: str = "float64",
                 width: int | None = 1, width_arg: str = "channels", verify_samples: int = 8, use_supernet: bool = True,
                 flush_denormal: bool = True, box_sums: bool = True, rescale_at: str | None = "layers") -> None:
        check_options(constants, dtype, width)
        self.space = space
        self.constants = (float(constants[0]), float(constants[1]))
        self.dtype = DTYPES[dtype]
        self.verify_samples = verify_samples
        self.flush_denormal = flush_denormal
        self.box_sums = box_sums
        self.rescale_at = rescale_at
        self.narrow_space = self._narrow(space, width, width_arg)
        self._supernets: list[_Network] | None = None
        self._use_supernet = use_supernet
        self._verified = (self.narrow_space is space and not box_sums and not rescale_at) or verify_samples <= 0
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
        return type(space)(**{**init_args, width_arg: width})

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
        if self._use_supernet:
            return self._supernets, True
        network = self._wrap(lambda s: s.build(architecture), architecture)
        return [network, network], False  # one network, refilled in place for the second constant

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
                      torch.backends.mkldnn.flags(enabled=self.narrow_space is self.space)):
                    yield
        finally:
            if flushed:
                torch.set_flush_denormal(False)

    def _cast(self, inputs: torch.Tensor) -> torch.Tensor:
        if self._inputs is None or self._inputs[0] is not inputs:  # cast a fixed batch once
            self._inputs = (inputs, inputs.detach().to("cpu", self.dtype).contiguous())
        return self._inputs[1]

    def outputs(self, architecture: Architecture, inputs: torch.Tensor) -> torch.Tensor:
        """The ``(2, B)`` scalar outputs of ``architecture`` on ``inputs`` under the two constants."""
        architecture = self.space.validate(architecture)
        x = self._cast(inputs)
        with self._numerics():
            networks, by_path = self._networks(architecture)
            path = architecture if by_path else None
            result = torch.stack([net.output(x, c, path) for net, c in zip(networks, self.constants)])
            if not self._verified:
                self._verify(architecture, x, networks, path)
        return result

    def score(self, architecture: Architecture, inputs: torch.Tensor) -> float:
        return float(epsinas_score(*self.outputs(architecture, inputs)))

    def score_many(self, architectures: Sequence[Architecture], inputs: torch.Tensor) -> torch.Tensor:
        """Scores in float64, NaN where the output is constant."""
        return torch.tensor([self.score(a, inputs) for a in architectures], dtype=torch.float64)

    def _verify(self, architecture: Architecture, x: torch.Tensor, networks: list[_Network], path: Any) -> None:
        sample = x[: self.verify_samples]
        full = _Network(self.space.build(architecture), {}, 1.0, self.dtype, box_sums=False)
        with torch.backends.mkldnn.flags(enabled=True):
            expected = torch.stack([full.output(sample, c, None) for c in self.constants])
        got = torch.stack([net.output(sample, c, path) for net, c in zip(networks, self.constants)])
        # compared after min-max normalisation: the tracked power of two does not change the score; rows the
        # plain network cannot resolve (constant after underflow) are left out
        got, expected = normalise(got), normalise(expected)
        rows = ~expected.isnan().all(-1)
        got, expected = got[rows], expected[rows]
        if not torch.allclose(got, expected, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise NASFrameError(
                f"epsinas: the width-reduced / box-sum network of {type(self.space).__name__} does not reproduce the full network "
                f"(max relative difference {float(((got - expected).abs() / expected.abs()).nan_to_num(0.0).max()):.3g}); its layers "
                "do not keep equal channels equal under constant weights. Set width: null to score at full width.")
        self._verified = True


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
    dim = getattr(network, "feature_dim", None)
    if dim is None:
        raise NASFrameError(f"epsinas width reduction needs the network's feature_dim attribute; {type(network).__name__} "
                            "has none. Set width: null to score at full width")
    return int(dim)
