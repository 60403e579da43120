"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020) and its macro network.

A cell has 4 nodes; node j sums one operation on every earlier node, so there are 6 edges and
5^6 = 15,625 architectures, written ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (edge ``op~i`` into
node j, one ``+``-separated group per node). The macro network is a 3x3 stem, three stages of
``cells_per_stage`` cells at C, 2C, 4C channels joined by residual reduction blocks, then
BN-ReLU, global pooling and a linear classifier.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import CategoricalSearchSpace

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node) in string order
NUM_ARCHITECTURES = len(OPERATIONS) ** len(EDGES)
_GROUP = re.compile(r"^\|(?:[a-z0-9_]+~[0-9]\|)+$")  # [0-9], not \d: \d matches any Unicode digit, which int() reads


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool, track_running_stats: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_operation(name: str, channels: int, affine: bool, track_running_stats: bool) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine, track_running_stats)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine, track_running_stats)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ArchitectureError(f"unknown NAS-Bench-201 operation {name!r}; accepted: {list(OPERATIONS)}")


class Cell(nn.Module):
    """One cell; ``edges[k]`` is edge ``EDGES[k]``: a single operation, or a ``ModuleDict`` of all
    five in the supernet."""

    def __init__(self, edges: Sequence[nn.Module]) -> None:
        super().__init__()
        self.edges = nn.ModuleList(edges)

    def forward(self, x: torch.Tensor, path: Any = None) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            total = 0
            for k, (to, src) in enumerate(EDGES):
                if to == node:
                    total = total + self._edge(k, nodes[src], path)
            nodes.append(total)
        return nodes[3]

    def _edge(self, k: int, x: torch.Tensor, path: Any) -> torch.Tensor:
        edge = self.edges[k]
        if path is None:
            return edge(x)
        if isinstance(path, Architecture):
            return edge[path.choices[k]](x)
        weights = path[k]  # a (6, 5) mixture: DARTS-style continuous relaxation
        return sum(w * edge[name](x) for w, name in zip(weights, OPERATIONS) if name != "none")


class ResidualReduction(nn.Module):
    """NAS-Bench-201's residual block that halves the resolution and doubles the channels."""

    def __init__(self, c_in: int, c_out: int, affine: bool, track_running_stats: bool) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine, track_running_stats)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine, track_running_stats)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The macro network; a supernet when its edges hold every operation (then ``forward`` needs ``arch``)."""

    def __init__(self, make_edges: Any, channels: int, cells_per_stage: int, num_classes: int, in_channels: int,
                 affine: bool, track_running_stats: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels, affine=affine, track_running_stats=track_running_stats))
        layers: list[nn.Module] = []
        c = channels
        for stage in range(3):
            if stage:
                layers.append(ResidualReduction(c, 2 * c, affine, track_running_stats))
                c *= 2
            layers.extend(Cell(make_edges(c)) for _ in range(cells_per_stage))
        self.layers = nn.ModuleList(layers)
        self.last_act = nn.Sequential(nn.BatchNorm2d(c, affine=affine, track_running_stats=track_running_stats), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.feature_dim = c

    def forward_features(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x, arch) if isinstance(layer, Cell) else layer(x)
        return self.pool(self.last_act(x)).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, arch))


class NB201Space(CategoricalSearchSpace):
    """NAS-Bench-201: 6 edges, 5 operations each.

    Args:
        channels: C, the width of the first stage (16 in the benchmark).
        cells_per_stage: N (5 in the benchmark).
        num_classes, in_channels, image_size: the data it runs on (``input_shape`` for export).
        bn_affine, bn_track_running_stats: BatchNorm options (zero-cost proxies use batch statistics).
    """

    name = "nb201"

    def __init__(self, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3,
                 image_size: int = 32, bn_affine: bool = True, bn_track_running_stats: bool = True) -> None:
        for key, value in (("channels", channels), ("cells_per_stage", cells_per_stage), ("num_classes", num_classes),
                           ("in_channels", in_channels), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:  # else torch fails deep inside the build
                raise NASFrameError(f"NB201Space: {key} must be a positive integer, got {value!r}")
        self.channels = channels
        self.cells_per_stage = cells_per_stage
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_shape = (in_channels, image_size, image_size)
        self.bn = dict(affine=bn_affine, track_running_stats=bn_track_running_stats)

    def position_choices(self) -> list[Sequence[str]]:
        return [OPERATIONS] * len(EDGES)

    # ---- the standard string and index -----------------------------------------------------------
    def parse(self, text: str) -> Architecture:
        """Parse ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        expected = "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' with op in " + ", ".join(OPERATIONS)
        if not isinstance(text, str):
            raise ArchitectureError(f"a NAS-Bench-201 architecture string is expected, got {type(text).__name__}")
        groups = text.strip().split("+")
        if len(groups) != 3 or not all(_GROUP.match(g) for g in groups):
            raise ArchitectureError(f"malformed NAS-Bench-201 architecture {text!r}; expected {expected}")
        choices = []
        for node, group in enumerate(groups, start=1):
            edges = group.strip("|").split("|")
            if len(edges) != node:
                raise ArchitectureError(f"node {node} of {text!r} has {len(edges)} inputs, expected {node}; format {expected}")
            for src, edge in enumerate(edges):
                op, _, index = edge.partition("~")
                if int(index) != src:
                    raise ArchitectureError(f"edge {edge!r} into node {node} of {text!r} should read from node {src}; format {expected}")
                if op not in OPERATIONS:
                    raise ArchitectureError(f"unknown operation {op!r} in {text!r}; accepted: {list(OPERATIONS)}")
                choices.append(op)
        return Architecture(self.name, tuple(choices))

    def format(self, architecture: Architecture) -> str:
        ops = self.validate(architecture).choices
        return "+".join("|" + "|".join(f"{ops[k]}~{src}" for k, (to, src) in enumerate(EDGES) if to == node) + "|" for node in (1, 2, 3))

    def all_architectures(self) -> list[Architecture]:
        """All 15,625 architectures (in mixed-radix order; the official benchmark index is a table
        lookup: ``nasframe.tabular.NB201Benchmark.index``)."""
        return [Architecture(self.name, ops) for ops in itertools.product(OPERATIONS, repeat=len(EDGES))]

    # ---- networks -----------------------------------------------------------------------------------
    def _network(self, make_edges: Any) -> NB201Network:
        return NB201Network(make_edges, self.channels, self.cells_per_stage, self.num_classes, self.in_channels, **self.bn)

    def build(self, architecture: Architecture) -> NB201Network:
        ops = self.validate(architecture).choices
        return self._network(lambda c: [make_operation(op, c, **self.bn) for op in ops])

    def supernet(self) -> NB201Network:
        return self._network(lambda c: [nn.ModuleDict({op: make_operation(op, c, **self.bn) for op in OPERATIONS}) for _ in EDGES])

    def extract(self, supernet: nn.Module, architecture: Architecture) -> NB201Network:
        network = self.build(architecture)
        shared = {name: value for name, value in supernet.state_dict().items()}
        own = {}
        for name in network.state_dict():
            parts = name.split(".")
            if parts[0] == "layers" and len(parts) > 3 and parts[2] == "edges":  # layers.<i>.edges.<k>.<rest>
                parts.insert(4, architecture.choices[int(parts[3])])
            own[name] = shared[".".join(parts)]
        network.load_state_dict(own)
        return network

    # ---- cost ---------------------------------------------------------------------------------------
    def cost(self, architecture: Architecture) -> dict[str, float] | None:
        """Exact ``{"params", "flops"}`` (``FlopCounterMode``, one image). Every cell runs its six
        edges on tensors of one shape and adds them (additions count no FLOPs), so the cost is the
        all-``none`` network's plus, per edge, what its operation adds: five networks are counted
        once (the base class's cached count) and every architecture is a sum."""
        ops = self.validate(architecture).choices
        empty = super().cost(Architecture(self.name, ("none",) * len(EDGES)))
        if empty is None:  # input_shape taken away: no cost model
            return None
        total = dict(empty)
        for op in ops:
            if op != "none":
                one = super().cost(Architecture(self.name, (op,) + ("none",) * (len(EDGES) - 1)))
                total = {key: total[key] + one[key] - empty[key] for key in total}
        return total
