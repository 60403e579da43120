"""A MobileNetV3/EfficientNet-like space of inverted-residual (MBConv) blocks with squeeze-excite.

Every searchable block picks a kernel size and an expansion ratio (e.g. ``k5_e6``), or ``skip``
where the block keeps its shape and skipping is allowed. The macro structure (stem, a fixed
depthwise-separable block, searchable stages, a 1x1 head, global pooling, a 1x1 "final" layer and
the classifier) follows the one-shot spaces of SPOS, FBNet and Cream of the Crop; every width, depth,
stride and the input size are arguments, so a CIFAR-sized or test-sized space runs on a CPU.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import CategoricalSearchSpace, network_cost

SKIP = "skip"
_CHOICE = re.compile(r"^k([0-9]+)_e([0-9]+)$")  # [0-9], not \d (any Unicode digit)


def _bn(channels: int, track_running_stats: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, track_running_stats=track_running_stats)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid gate."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(torch.relu(self.reduce(gate))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand] -> kxk depthwise (stride) -> SE -> 1x1 project (+ identity)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: int, stride: int, se_ratio: float,
                 track_running_stats: bool) -> None:
        super().__init__()
        mid = c_in * expansion
        self.expand = None if expansion == 1 else nn.Sequential(
            nn.Conv2d(c_in, mid, 1, bias=False), _bn(mid, track_running_stats), nn.SiLU())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, kernel, stride, kernel // 2, groups=mid, bias=False),
                                       _bn(mid, track_running_stats), nn.SiLU())
        # the SE width follows the block's input width, as in EfficientNet
        self.se = SqueezeExcite(mid, max(1, int(c_in * se_ratio))) if se_ratio > 0 else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), _bn(c_out, track_running_stats))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.project(self.se(self.depthwise(y)))
        return x + y if self.residual else y


class ChoiceBlock(nn.ModuleDict):
    """The supernet's searchable block with independent candidates (SPOS, Cream): one module per
    choice name, each with its own weights; one of them runs per forward."""

    def forward(self, x: torch.Tensor, choice: str) -> torch.Tensor:
        return self[choice](x)

    def candidate_state(self, choice: str) -> dict[str, torch.Tensor]:
        """The state dict of the standalone module for ``choice``."""
        return self[choice].state_dict()


class _CandidateNorms(nn.Module):
    def __init__(self, mid: int, c_out: int, has_expand: bool, track_running_stats: bool) -> None:
        super().__init__()
        self.expand = _bn(mid, track_running_stats) if has_expand else None
        self.depthwise = _bn(mid, track_running_stats)
        self.project = _bn(c_out, track_running_stats)


class NestedChoiceBlock(nn.Module):
    """The supernet's searchable block with nested candidates: one set of convolutions of the largest
    kernel and expansion, every candidate a slice of it (a kernel the centre of the largest kernel,
    an expansion the first ``c_in * e`` channels), as in Once-for-All's elastic kernels and widths.

    Candidates share most of their weights, so each update trains every path a little; with
    independent candidates a block's choices each see a sixth of the updates and disagree on the
    features they hand on, which a short search cannot overcome. BatchNorm stays private per
    candidate (as in slimmable networks' switchable BN): slices of different widths and kernels
    produce activations of different scale. ``candidate_state(choice)`` gives exactly the weights
    of the standalone ``MBConv`` the slice computes.
    """

    def __init__(self, choices: Sequence[str], c_in: int, c_out: int, stride: int, se_ratio: float,
                 track_running_stats: bool) -> None:
        super().__init__()
        self.shapes = {c: tuple(int(v) for v in _CHOICE.match(c).groups()) for c in choices if c != SKIP}
        self.allows_skip = SKIP in choices
        self.max_kernel = max(k for k, _ in self.shapes.values())
        max_expansion = max(e for _, e in self.shapes.values())
        mid = c_in * max_expansion
        self.c_in, self.stride = c_in, stride
        self.expand = nn.Conv2d(c_in, mid, 1, bias=False) if max_expansion > 1 else None
        self.depthwise = nn.Conv2d(mid, mid, self.max_kernel, stride, self.max_kernel // 2, groups=mid, bias=False)
        self.se = SqueezeExcite(mid, max(1, int(c_in * se_ratio))) if se_ratio > 0 else None
        self.project = nn.Conv2d(mid, c_out, 1, bias=False)
        self.norms = nn.ModuleDict({choice: _CandidateNorms(c_in * e, c_out, e > 1, track_running_stats)
                                    for choice, (_, e) in self.shapes.items()})
        self.residual = stride == 1 and c_in == c_out

    def _weights(self, choice: str) -> dict[str, torch.Tensor]:
        kernel, expansion = self.shapes[choice]
        mid, start = self.c_in * expansion, (self.max_kernel - kernel) // 2
        weights = {"depthwise": self.depthwise.weight[:mid, :, start:start + kernel, start:start + kernel],
                   "project": self.project.weight[:, :mid]}
        if expansion > 1:
            weights["expand"] = self.expand.weight[:mid]
        if self.se is not None:
            weights.update({"se.reduce.weight": self.se.reduce.weight[:, :mid], "se.reduce.bias": self.se.reduce.bias,
                            "se.expand.weight": self.se.expand.weight[:mid], "se.expand.bias": self.se.expand.bias[:mid]})
        return weights

    def forward(self, x: torch.Tensor, choice: str) -> torch.Tensor:
        if choice == SKIP and self.allows_skip:
            return x
        kernel, expansion = self.shapes[choice]
        weights, norms = self._weights(choice), self.norms[choice]
        y = x if expansion == 1 else F.silu(norms.expand(F.conv2d(x, weights["expand"])))
        y = F.silu(norms.depthwise(F.conv2d(y, weights["depthwise"], None, self.stride, kernel // 2, 1, y.shape[1])))
        if self.se is not None:
            gate = F.relu(F.conv2d(y.mean((2, 3), keepdim=True), weights["se.reduce.weight"], weights["se.reduce.bias"]))
            y = y * torch.sigmoid(F.conv2d(gate, weights["se.expand.weight"], weights["se.expand.bias"]))
        y = norms.project(F.conv2d(y, weights["project"]))
        return x + y if self.residual else y

    def candidate_state(self, choice: str) -> dict[str, torch.Tensor]:
        """The state dict of the standalone ``MBConv`` for ``choice`` (empty for ``skip``)."""
        if choice == SKIP:
            return {}
        weights, norms = self._weights(choice), self.norms[choice]
        state = {"depthwise.0.weight": weights["depthwise"], "project.0.weight": weights["project"]}
        if "expand" in weights:
            state["expand.0.weight"] = weights["expand"]
            state.update({f"expand.1.{k}": v for k, v in norms.expand.state_dict().items()})
        state.update({f"depthwise.1.{k}": v for k, v in norms.depthwise.state_dict().items()})
        state.update({f"project.1.{k}": v for k, v in norms.project.state_dict().items()})
        state.update({k: v for k, v in weights.items() if k.startswith("se.")})
        return {k: v.detach().clone() for k, v in state.items()}


class MBConvNetwork(nn.Module):
    """The macro network. In a supernet every searchable block is a ``ChoiceBlock`` (or
    ``NestedChoiceBlock``) and ``forward``
    takes the path (an ``Architecture`` or its tuple of choices); a standalone network holds one
    module per block (``nn.Identity`` for ``skip``) and ignores ``arch``."""

    def __init__(self, stem: nn.Module, first: nn.Module, blocks: Sequence[nn.Module], head: nn.Module,
                 final: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.stem, self.first = stem, first
        self.blocks = nn.ModuleList(blocks)
        self.head, self.final, self.classifier = head, final, classifier
        self.feature_dim = classifier.in_features

    def forward_features(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        choices = arch.choices if isinstance(arch, Architecture) else arch
        x = self.first(self.stem(x))
        for i, block in enumerate(self.blocks):
            if isinstance(block, (ChoiceBlock, NestedChoiceBlock)):
                if choices is None:
                    raise NASFrameError("a MBConv supernet needs the path to run: forward(x, architecture)")
                x = block(x, choices[i])
            else:
                x = block(x)
        x = self.head(x).mean((2, 3), keepdim=True)
        return self.final(x).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, arch))


class MBConvSpace(CategoricalSearchSpace):
    """One-shot MBConv space: per searchable block, a kernel in ``kernels`` x an expansion in
    ``expansions`` (choice names ``k{kernel}_e{expansion}``), plus ``skip`` when ``allow_skip``
    (never on a stage's first block, which changes width or resolution).

    Args:
        stage_channels: output width of each searchable stage (Cream: 24, 40, 80, 96, 192).
        stage_layers: blocks per stage.
        stage_strides: stride of each stage's first block.
        stem_channels, stem_stride: the 3x3 stem (Cream: 16, stride 2; use 1 for 32x32 images).
        first_channels: width of the fixed depthwise-separable block after the stem.
        head_channels: the 1x1 conv before pooling (Cream: 320); final_channels: the 1x1 conv after
            pooling (Cream: 1280), which is the feature dimension.
        kernels, expansions, allow_skip: the per-block choices.
        se_ratio: squeeze-excite width relative to the block input (0 disables SE).
        num_classes, in_channels, image_size: the data (``input_shape`` for export and FLOPs).
        bn_track_running_stats: BatchNorm running statistics (off: batch statistics everywhere).
        weight_sharing: how a supernet block's candidates hold weights. ``"independent"`` (the
            papers': SPOS, Cream): one module per candidate. ``"nested"``: slices of one largest
            candidate (see ``NestedChoiceBlock``); a short search trains a far better supernet
            (on the partial CIFAR-10, 10 epochs: about 46% inherited accuracy of random paths
            against 20%). Standalone networks and FLOPs are the same either way.

    ``cost(arch)`` (the ``nasframe_architecture_cost`` hook; ``flops(arch)`` is its ``"flops"``) is
    the exact parameter count and ``torch.utils.flop_counter.FlopCounterMode`` count for one image
    (2 per multiply-add, convolutions and linear layers), from a per-block table built with it.
    """

    name = "mbconv"

    def __init__(self, stage_channels: Sequence[int] = (24, 40, 80, 96, 192), stage_layers: Sequence[int] = (2, 3, 4, 3, 2),
                 stage_strides: Sequence[int] = (2, 2, 2, 1, 2), stem_channels: int = 16, stem_stride: int = 2,
                 first_channels: int = 16, head_channels: int = 320, final_channels: int = 1280,
                 kernels: Sequence[int] = (3, 5, 7), expansions: Sequence[int] = (4, 6), allow_skip: bool = False,
                 se_ratio: float = 0.25, num_classes: int = 10, in_channels: int = 3, image_size: int = 32,
                 bn_track_running_stats: bool = True,
                 weight_sharing: Literal["independent", "nested"] = "independent") -> None:
        if weight_sharing not in ("independent", "nested"):
            raise NASFrameError(f"weight_sharing must be 'independent' or 'nested', got {weight_sharing!r}")
        lengths = {len(stage_channels), len(stage_layers), len(stage_strides)}
        if len(lengths) != 1 or not stage_channels:
            raise NASFrameError("stage_channels, stage_layers and stage_strides must be non-empty and of equal length; "
                                f"got {len(stage_channels)}, {len(stage_layers)}, {len(stage_strides)}")
        for name, values in (("stage_channels", stage_channels), ("stage_layers", stage_layers), ("kernels", kernels),
                             ("expansions", expansions), ("stage_strides", stage_strides)):
            if not values or any(int(v) < 1 for v in values):
                raise NASFrameError(f"{name} must hold positive integers, got {list(values)}")
        if any(int(k) % 2 == 0 for k in kernels):
            raise NASFrameError(f"kernels must be odd (same padding), got {list(kernels)}")
        self.stage_channels = [int(c) for c in stage_channels]
        self.stage_layers = [int(n) for n in stage_layers]
        self.stage_strides = [int(s) for s in stage_strides]
        self.stem_channels, self.stem_stride, self.first_channels = stem_channels, stem_stride, first_channels
        self.head_channels, self.final_channels = head_channels, final_channels
        self.kernels, self.expansions = [int(k) for k in kernels], [int(e) for e in expansions]
        self.allow_skip = allow_skip
        self.se_ratio = se_ratio
        self.num_classes, self.in_channels, self.image_size = num_classes, in_channels, image_size
        self.input_shape = (in_channels, image_size, image_size)
        self.track_running_stats = bn_track_running_stats
        self.weight_sharing = weight_sharing
        self.block_choices = [f"k{k}_e{e}" for k in self.kernels for e in self.expansions]
        # (c_in, c_out, stride, input resolution) of every searchable block
        self.block_shapes: list[tuple[int, int, int, int]] = []
        c, size = first_channels, _out_size(_out_size(image_size, stem_stride), 1)
        for c_out, layers, stride in zip(self.stage_channels, self.stage_layers, self.stage_strides):
            for j in range(layers):
                s = stride if j == 0 else 1
                self.block_shapes.append((c, c_out, s, size))
                c, size = c_out, _out_size(size, s)
        self._block_costs: dict[tuple, dict[str, float]] = {}  # the cost table (see cost)
        self._fixed_cost: dict[str, float] | None = None

    # ---- architecture values -------------------------------------------------------------------
    def position_choices(self) -> list[Sequence[str]]:
        return [self.block_choices + ([SKIP] if self.allow_skip and c_in == c_out and s == 1 else [])
                for c_in, c_out, s, _ in self.block_shapes]

    @property
    def num_blocks(self) -> int:
        return len(self.block_shapes)

    def parse(self, text: str) -> Architecture:
        """Parse ``k3_e4-k5_e6-skip-...`` (one choice per searchable block) or the JSON form."""
        if not isinstance(text, str):
            raise ArchitectureError(f"a {self.name!r} architecture string is expected, got {type(text).__name__}")
        text = text.strip()
        if text.startswith("{"):
            return super().parse(text)
        choices = tuple(part.strip() for part in text.split("-"))
        if len(choices) != self.num_blocks:
            raise ArchitectureError(f"{text!r} has {len(choices)} blocks; this {self.name!r} space has {self.num_blocks}, "
                                    f"written like {'-'.join([self.block_choices[0]] * self.num_blocks)!r}")
        return self.validate(Architecture(self.name, choices))

    def format(self, architecture: Architecture) -> str:
        return "-".join(self.validate(architecture).choices)

    # ---- networks ------------------------------------------------------------------------------
    def _operation(self, choice: str, c_in: int, c_out: int, stride: int) -> nn.Module:
        if choice == SKIP:
            return nn.Identity()
        kernel, expansion = (int(v) for v in _CHOICE.match(choice).groups())
        return MBConv(c_in, c_out, kernel, expansion, stride, self.se_ratio, self.track_running_stats)

    def _stem(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(self.in_channels, self.stem_channels, 3, self.stem_stride, 1, bias=False),
                             _bn(self.stem_channels, self.track_running_stats), nn.SiLU())

    def _first(self) -> nn.Module:
        return MBConv(self.stem_channels, self.first_channels, 3, 1, 1, self.se_ratio, self.track_running_stats)

    def _head(self) -> nn.Module:
        c = self.stage_channels[-1]
        return nn.Sequential(nn.Conv2d(c, self.head_channels, 1, bias=False),
                             _bn(self.head_channels, self.track_running_stats), nn.SiLU())

    def _final(self) -> nn.Module:
        return nn.Sequential(nn.Conv2d(self.head_channels, self.final_channels, 1), nn.SiLU())

    def _network(self, blocks: Sequence[nn.Module]) -> MBConvNetwork:
        return MBConvNetwork(self._stem(), self._first(), blocks, self._head(), self._final(),
                             nn.Linear(self.final_channels, self.num_classes))

    def build(self, architecture: Architecture) -> MBConvNetwork:
        choices = self.validate(architecture).choices
        return self._network([self._operation(choice, c_in, c_out, s)
                              for choice, (c_in, c_out, s, _) in zip(choices, self.block_shapes)])

    def supernet(self) -> MBConvNetwork:
        if self.weight_sharing == "nested":
            return self._network([NestedChoiceBlock(allowed, c_in, c_out, s, self.se_ratio, self.track_running_stats)
                                  for allowed, (c_in, c_out, s, _) in zip(self.position_choices(), self.block_shapes)])
        return self._network([ChoiceBlock({choice: self._operation(choice, c_in, c_out, s) for choice in allowed})
                              for allowed, (c_in, c_out, s, _) in zip(self.position_choices(), self.block_shapes)])

    def extract(self, supernet: nn.Module, architecture: Architecture) -> MBConvNetwork:
        """The standalone network of ``architecture`` with the supernet's weights and the BN
        statistics of the chosen candidates."""
        choices = self.validate(architecture).choices
        network = self.build(architecture)
        blocks = getattr(supernet, "blocks", None)
        if blocks is None or len(blocks) != self.num_blocks:
            raise NASFrameError(f"the supernet does not have this {self.name!r} space's {self.num_blocks} searchable blocks; "
                                "was it built by a different space?")
        own = {name: value for name, value in supernet.state_dict().items() if not name.startswith("blocks.")}
        for i, (block, choice) in enumerate(zip(blocks, choices)):
            if not isinstance(block, (ChoiceBlock, NestedChoiceBlock)):
                raise NASFrameError(f"supernet block {i} is a {type(block).__name__}, not a choice block of this space")
            own.update({f"blocks.{i}.{name}": value for name, value in block.candidate_state(choice).items()})
        try:
            network.load_state_dict(own)
        except RuntimeError as error:
            raise NASFrameError(f"the supernet's weights do not fit {self.format(architecture)!r}; was it built by a "
                                f"different {self.name!r} space? ({str(error).splitlines()[0]})") from None
        return network.to(next(supernet.parameters()).device)

    # ---- cost ------------------------------------------------------------------------------------
    def cost(self, architecture: Architecture) -> dict[str, float]:
        """Exact ``{"params", "flops"}`` of ``architecture`` (FLOPs of one image as
        ``FlopCounterMode`` counts them), summed from a table of every block shape counted once,
        so a FLOPs range can test thousands of paths. Equals the base class's count of the whole
        built network."""
        choices = self.validate(architecture).choices
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):  # building modules must not move the search's RNG
            if self._fixed_cost is None:
                shape = self.block_shapes[-1]
                last = _out_size(shape[3], shape[2])
                stem = _out_size(self.image_size, self.stem_stride)
                parts = [(self._stem(), (self.in_channels, self.image_size, self.image_size)),
                         (self._first(), (self.stem_channels, stem, stem)),
                         (self._head(), (self.stage_channels[-1], last, last)),
                         (self._final(), (self.head_channels, 1, 1)),
                         (nn.Linear(self.final_channels, self.num_classes), (self.final_channels,))]
                self._fixed_cost = _sum_costs(network_cost(module, shape) for module, shape in parts)
            total = dict(self._fixed_cost)
            for choice, (c_in, c_out, s, size) in zip(choices, self.block_shapes):
                key = (choice, c_in, c_out, s, size)
                if key not in self._block_costs:
                    self._block_costs[key] = network_cost(self._operation(choice, c_in, c_out, s), (c_in, size, size))
                total = _sum_costs([total, self._block_costs[key]])
        return total

    def flops(self, architecture: Architecture) -> int:
        """Exact FLOPs of one image through ``architecture``: ``cost(architecture)["flops"]``."""
        return self.cost(architecture)["flops"]


def _out_size(size: int, stride: int) -> int:
    return (size - 1) // stride + 1  # odd kernels with same padding


def _sum_costs(costs: Any) -> dict[str, float]:
    costs = list(costs)
    return {key: sum(c[key] for c in costs) for key in ("params", "flops")}
