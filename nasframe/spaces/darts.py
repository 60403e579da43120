"""The DARTS cell space (Liu et al., ICLR 2019) with per-cell architectures.

A cell reads the outputs of the two previous cells (inputs 0 and 1), has 4 intermediate nodes and
outputs their concatenation. Node ``j`` (0..3) may read from any of inputs ``0 .. j+1``: 2 + 3 + 4 + 5
= 14 edges, each one of 7 operations. A derived cell keeps 2 incoming edges per node, so an
architecture is, per cell, 8 genes ``(operation, input)`` (node ``j`` owns genes ``2j`` and ``2j+1``).
Every cell has its own genes (not one normal and one reduction genotype); reduction cells sit at 1/3
and 2/3 of the depth.

JSON form: ``{"space": "darts", "choices": [[["sep_conv_3x3", 0], ["skip_connect", 1], ...8], ...cells]}``.
String form: cells joined by ``;``, each ``|op~i|op~i|+|op~i|op~i|+|...|`` (4 ``+``-separated node groups).

The supernet's ``forward(x, arch)`` takes a discrete ``Architecture`` (single path) or a
``PathWeights`` (a weighted set of operations per edge), which covers the DARTS continuous
relaxation, binary gates with detached paths, and partially frozen cells.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasframe.errors import ArchitectureError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace

OPERATIONS = ("skip_connect", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
POOLS = ("max_pool_3x3", "avg_pool_3x3")
PARAMETRIC = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NODES = 4
GENES_PER_CELL = 2 * NODES
#: (node, input) of every edge, node-major: node j reads inputs 0..j+1
EDGES: tuple[tuple[int, int], ...] = tuple((j, i) for j in range(NODES) for i in range(j + 2))
EDGE_INDEX = {edge: k for k, edge in enumerate(EDGES)}


# ---------------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------------
def _bn(channels: int, affine: bool) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, affine=affine)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(nn.ReLU(), nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), _bn(c_out, affine))


class DilConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_in, kernel, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            _bn(c_out, affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions, the first one strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(DilConv(c_in, c_in, kernel, stride, padding, 1, affine), DilConv(c_in, c_out, kernel, 1, padding, 1, affine))


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset strided 1x1 convolutions (the strided skip connection)."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        if x.shape[-1] % 2 or x.shape[-2] % 2:  # odd sizes: pad so both offsets give the same shape
            x = F.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def make_operation(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        kernel = int(name[-1])
        return SepConv(channels, channels, kernel, stride, kernel // 2, affine)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        kernel = int(name[-1])
        return DilConv(channels, channels, kernel, stride, 2 * (kernel // 2), 2, affine)
    raise ArchitectureError(f"unknown DARTS operation {name!r}; accepted: {list(OPERATIONS)}")


# ---------------------------------------------------------------------------------------------------
# Relaxations the supernet accepts besides a discrete Architecture
# ---------------------------------------------------------------------------------------------------
@dataclass
class PathWeights:
    """Which operations of every edge run, and with what weight, for one supernet forward.

    ``weights``, ``active`` and ``detached`` have shape ``(cells, 14, 7)``. An edge outputs
    ``sum_k weights[k] * op_k(x)`` over its active operations; a detached operation runs without
    autograd (its output still carries the gradient to its weight, not to its parameters), so only
    the non-detached paths keep their activations in memory. An edge with no active operation is
    dropped. Examples: DARTS mixture = softmax weights, all active; binary gates = gate values, two
    active, one of them detached; a frozen cell = one active operation on its 8 chosen edges.
    """

    weights: torch.Tensor
    active: torch.Tensor
    detached: torch.Tensor | None = None

    def cell(self, index: int) -> list[Any]:
        """[weights, active op indices per edge, detached op indices per edge] of one cell."""
        active = self.active[index].cpu()
        detached = self.detached[index].cpu() if self.detached is not None else torch.zeros_like(active)
        on = [torch.nonzero(row).flatten().tolist() for row in active]
        off = [torch.nonzero(row).flatten().tolist() for row in detached & active]
        return [self.weights[index], on, off]  # a list: a tuple is a discrete cell's genes


# ---------------------------------------------------------------------------------------------------
# Cells and the macro network
# ---------------------------------------------------------------------------------------------------
class _CellBase(nn.Module):
    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool, affine: bool) -> None:
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine)

    def stride(self, source: int) -> int:
        return 2 if self.reduction and source < 2 else 1


class DerivedCell(_CellBase):
    """A cell of the standalone network: ``ops[g]`` is gene ``g``'s operation on ``inputs[g]``."""

    def __init__(self, genes: Sequence[tuple[str, int]], c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool, affine: bool) -> None:
        super().__init__(c_prev_prev, c_prev, channels, reduction, reduction_prev, affine)
        self.inputs = [int(i) for _, i in genes]
        self.ops = nn.ModuleList(make_operation(op, channels, self.stride(i), affine) for op, i in genes)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for j in range(NODES):
            a, b = 2 * j, 2 * j + 1
            states.append(self.ops[a](states[self.inputs[a]]) + self.ops[b](states[self.inputs[b]]))
        return torch.cat(states[2:], dim=1)


class SuperCell(_CellBase):
    """A supernet cell: ``edges[k]`` holds all 7 operations of edge ``EDGES[k]``."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, reduction: bool, reduction_prev: bool, affine: bool) -> None:
        super().__init__(c_prev_prev, c_prev, channels, reduction, reduction_prev, affine)
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: make_operation(op, channels, self.stride(i), affine) for op in OPERATIONS}) for _, i in EDGES
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, path: Any) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        if isinstance(path, tuple):  # 8 genes: single path, summed in gene order exactly as DerivedCell does
            for j in range(NODES):
                (op_a, in_a), (op_b, in_b) = path[2 * j], path[2 * j + 1]
                states.append(self.edges[EDGE_INDEX[(j, in_a)]][op_a](states[in_a]) + self.edges[EDGE_INDEX[(j, in_b)]][op_b](states[in_b]))
            return torch.cat(states[2:], dim=1)
        weights, on, off = path
        for j in range(NODES):
            total = None
            for i in range(j + 2):
                k = EDGE_INDEX[(j, i)]
                for op in on[k]:
                    module = self.edges[k][OPERATIONS[op]]
                    if op in off[k]:
                        with torch.no_grad():
                            out = module(states[i])
                    else:
                        out = module(states[i])
                    term = weights[k, op] * out
                    total = term if total is None else total + term
            if total is None:
                raise ArchitectureError(f"node {j} of a DARTS cell has no active incoming operation in the given PathWeights")
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DARTSNetwork(nn.Module):
    """Stem, ``len(cells)`` cells (reductions at 1/3 and 2/3 depth), global pooling, linear classifier.

    With ``genes`` (one 8-gene tuple per cell) it is a standalone network; without, a supernet whose
    ``forward`` needs ``arch``: an ``Architecture`` of the space or a ``PathWeights``.
    """

    def __init__(self, in_channels: int, channels: int, num_cells: int, num_classes: int, stem_multiplier: int,
                 affine: bool, genes: Sequence[Sequence[tuple[str, int]]] | None = None) -> None:
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), _bn(c_stem, affine))
        c_prev_prev, c_prev, c = c_stem, c_stem, channels
        reduction_prev = False
        cells: list[nn.Module] = []
        for index in range(num_cells):
            reduction = index in reduction_indices(num_cells)
            c = 2 * c if reduction else c
            if genes is None:
                cells.append(SuperCell(c_prev_prev, c_prev, c, reduction, reduction_prev, affine))
            else:
                cells.append(DerivedCell(genes[index], c_prev_prev, c_prev, c, reduction, reduction_prev, affine))
            c_prev_prev, c_prev, reduction_prev = c_prev, NODES * c, reduction
        self.cells = nn.ModuleList(cells)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)
        self.feature_dim = c_prev
        self.is_supernet = genes is None

    def forward_features(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        paths = self._paths(arch)
        s0 = s1 = self.stem(x)
        for cell, path in zip(self.cells, paths):
            s0, s1 = s1, (cell(s0, s1) if path is None else cell(s0, s1, path))
        return self.pool(s1).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor, arch: Any = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(x, arch))

    def _paths(self, arch: Any) -> list[Any]:
        if not self.is_supernet:
            if arch is not None:
                raise ArchitectureError("a standalone DARTS network has a fixed architecture; call it without `arch`")
            return [None] * len(self.cells)
        if isinstance(arch, Architecture):
            if len(arch.choices) != len(self.cells):
                raise ArchitectureError(f"this supernet has {len(self.cells)} cells, the architecture {len(arch.choices)}")
            return list(arch.choices)
        if isinstance(arch, PathWeights):
            if tuple(arch.weights.shape) != (len(self.cells), len(EDGES), len(OPERATIONS)):
                raise ArchitectureError(f"PathWeights must have shape {(len(self.cells), len(EDGES), len(OPERATIONS))}, "
                                        f"got {tuple(arch.weights.shape)}")
            return [arch.cell(i) for i in range(len(self.cells))]
        raise ArchitectureError(f"a DARTS supernet runs an Architecture or a PathWeights, got {type(arch).__name__}")


def reduction_indices(num_cells: int) -> tuple[int, ...]:
    """Cells that halve the resolution: at 1/3 and 2/3 of the depth (none for fewer than 3 cells)."""
    return (num_cells // 3, 2 * num_cells // 3) if num_cells >= 3 else ()


# ---------------------------------------------------------------------------------------------------
# The space
# ---------------------------------------------------------------------------------------------------
class DARTSSpace(SearchSpace):
    """The DARTS cell space with an architecture per cell.

    Args:
        cells: number of cells (20 is the CIFAR evaluation network, 8 the DARTS search network).
        channels: C, the width of the first cells (doubled at each reduction).
        stem_multiplier: the stem outputs ``stem_multiplier * C`` channels.
        num_classes, in_channels, image_size: the data (``input_shape`` for export).
        max_skips, max_pools: at most this many ``skip_connect`` / pooling genes per cell (the
            derivation rule's caps; ``validate`` and ``sample`` respect them). ``None``: no cap.
        supernet_affine: BatchNorm affine parameters in the supernet (off in DARTS-style searches,
            where they would rescale operations against the architecture weights). Standalone
            networks always have them; ``extract`` sets them to the identity (1, 0).
    """

    name = "darts"

    def __init__(self, cells: int = 20, channels: int = 36, stem_multiplier: int = 3, num_classes: int = 10,
                 in_channels: int = 3, image_size: int = 32, max_skips: int | None = 2, max_pools: int | None = 2,
                 supernet_affine: bool = False) -> None:
        for key, value in (("cells", cells), ("channels", channels), ("stem_multiplier", stem_multiplier),
                           ("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DARTSSpace: {key} must be a positive integer, got {value!r}")
        for key, value in (("max_skips", max_skips), ("max_pools", max_pools)):
            if value is not None and not 0 <= value <= GENES_PER_CELL:
                raise ValueError(f"DARTSSpace: {key} must be None or in 0..{GENES_PER_CELL}, got {value!r}")
        self.cells = cells
        self.channels = channels
        self.stem_multiplier = stem_multiplier
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.input_shape = (in_channels, image_size, image_size)
        self.max_skips = max_skips
        self.max_pools = max_pools
        self.supernet_affine = supernet_affine

    @property
    def parameter_shape(self) -> tuple[int, int, int]:
        """Shape of per-cell architecture parameters: (cells, 14 edges, 7 operations)."""
        return (self.cells, len(EDGES), len(OPERATIONS))

    # ---- values -----------------------------------------------------------------------------
    def validate(self, architecture: Architecture) -> Architecture:
        if not isinstance(architecture, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(architecture).__name__}")
        if architecture.space != self.name:
            raise ArchitectureError(f"architecture belongs to space {architecture.space!r}, not {self.name!r}")
        if len(architecture.choices) != self.cells:
            raise ArchitectureError(f"a DARTS architecture of this space has {self.cells} cells (one gene list each), "
                                    f"got {len(architecture.choices)}")
        for index, genes in enumerate(architecture.choices):
            self.validate_cell(genes, f"cell {index}")
        return architecture

    def validate_cell(self, genes: Any, where: str = "cell") -> tuple:
        if not isinstance(genes, tuple) or len(genes) != GENES_PER_CELL:
            raise ArchitectureError(f"{where}: expected {GENES_PER_CELL} genes [operation, input] (2 per node), got {_show(genes)}")
        for g, gene in enumerate(genes):
            if not isinstance(gene, tuple) or len(gene) != 2 or not isinstance(gene[0], str) or not isinstance(gene[1], int):
                raise ArchitectureError(f"{where}, gene {g}: expected [operation, input], got {_show(gene)}")
            op, source = gene
            if op not in OPERATIONS:
                raise ArchitectureError(f"{where}, gene {g}: unknown operation {op!r}; accepted: {list(OPERATIONS)}")
            node = g // 2
            if not 0 <= source <= node + 1:
                raise ArchitectureError(f"{where}, gene {g}: node {node} reads input {source}; accepted inputs 0..{node + 1} "
                                        "(0, 1: the two previous cells, 2+: earlier nodes)")
        for node in range(NODES):
            if genes[2 * node][1] == genes[2 * node + 1][1]:
                raise ArchitectureError(f"{where}: node {node} reads input {genes[2 * node][1]} twice; its two genes need distinct inputs")
        ops = [op for op, _ in genes]
        if self.max_skips is not None and ops.count("skip_connect") > self.max_skips:
            raise ArchitectureError(f"{where}: {ops.count('skip_connect')} skip_connect genes; this space allows at most "
                                    f"{self.max_skips} (DARTSSpace max_skips)")
        pools = sum(op in POOLS for op in ops)
        if self.max_pools is not None and pools > self.max_pools:
            raise ArchitectureError(f"{where}: {pools} pooling genes; this space allows at most {self.max_pools} (DARTSSpace max_pools)")
        return genes

    def parse(self, text: str) -> Architecture:
        """Parse the string form (``|op~i|op~i|+...`` per cell, cells joined by ``;``) or the JSON form."""
        if not isinstance(text, str):
            raise ArchitectureError(f"a DARTS architecture string is expected, got {type(text).__name__}")
        if text.lstrip().startswith("{"):
            return self.validate(Architecture.from_json(text))
        expected = "cells joined by ';', each '|op~i|op~i|+|op~i|op~i|+|op~i|op~i|+|op~i|op~i|'"
        cells = []
        for c, cell in enumerate(text.strip().split(";")):
            groups = cell.strip().split("+")
            if len(groups) != NODES:
                raise ArchitectureError(f"cell {c} of a DARTS architecture has {len(groups)} node groups, expected {NODES}; format: {expected}")
            genes = []
            for node, group in enumerate(groups):
                group = group.strip()
                parts = group.strip("|").split("|")
                if not (group.startswith("|") and group.endswith("|")) or len(parts) != 2:
                    raise ArchitectureError(f"cell {c}, node {node}: malformed group {group!r}; expected '|op~i|op~i|'")
                for part in parts:
                    op, sep, source = part.partition("~")
                    if not sep or not (source.isascii() and source.isdigit()):  # isdigit alone takes '٣', '²'...
                        raise ArchitectureError(f"cell {c}, node {node}: malformed gene {part!r}; expected 'op~input'")
                    genes.append((op, int(source)))
            cells.append(tuple(genes))
        return self.validate(Architecture(self.name, tuple(cells)))

    def format(self, architecture: Architecture) -> str:
        cells = self.validate(architecture).choices
        return ";".join("+".join(f"|{g[2 * j][0]}~{g[2 * j][1]}|{g[2 * j + 1][0]}~{g[2 * j + 1][1]}|" for j in range(NODES))
                        for g in cells)

    # ---- sampling ---------------------------------------------------------------------------
    def _random_cell(self, generator: torch.Generator) -> tuple:
        while True:  # rejection keeps the draw uniform over the cells within the caps
            genes = []
            for node in range(NODES):
                a, b = torch.randperm(node + 2, generator=generator)[:2].tolist()
                for source in sorted((a, b)):
                    genes.append((OPERATIONS[int(torch.randint(len(OPERATIONS), (), generator=generator))], source))
            try:
                return self.validate_cell(tuple(genes))
            except ArchitectureError:
                continue

    def sample(self, generator: torch.Generator) -> Architecture:
        return Architecture(self.name, tuple(self._random_cell(generator) for _ in range(self.cells)))

    def mutate(self, architecture: Architecture, generator: torch.Generator) -> Architecture:
        """Change one gene of one cell: its operation or its input (to another valid, unused one)."""
        cells = [list(genes) for genes in self.validate(architecture).choices]
        while True:
            c = int(torch.randint(self.cells, (), generator=generator))
            g = int(torch.randint(GENES_PER_CELL, (), generator=generator))
            op, source = cells[c][g]
            if int(torch.randint(2, (), generator=generator)):
                others = [o for o in OPERATIONS if o != op]
                gene = (others[int(torch.randint(len(others), (), generator=generator))], source)
            else:
                partner = cells[c][g ^ 1][1]
                free = [i for i in range(g // 2 + 2) if i not in (source, partner)]
                if not free:
                    continue
                gene = (op, free[int(torch.randint(len(free), (), generator=generator))])
            candidate = [list(genes) for genes in cells]
            candidate[c][g] = gene
            try:
                self.validate_cell(tuple(candidate[c]))
            except ArchitectureError:
                continue
            return Architecture(self.name, tuple(tuple(genes) for genes in candidate))

    # ---- tokens: per cell, per node: input_a, op_a, input_b, op_b ----------------------------------
    def token_choices(self) -> list[Sequence[str]]:
        positions: list[Sequence[str]] = []
        for _ in range(self.cells):
            for node in range(NODES):
                inputs = tuple(f"input{i}" for i in range(node + 2))
                positions += [inputs, OPERATIONS, inputs, OPERATIONS]
        return positions

    def to_tokens(self, architecture: Architecture) -> list[int]:
        values: list[int] = []
        for genes in self.validate(architecture).choices:
            for node in range(NODES):
                for op, source in (genes[2 * node], genes[2 * node + 1]):
                    values += [source, OPERATIONS.index(op)]
        return [self.token_offset(p) + v for p, v in enumerate(values)]

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        positions = self.token_choices()
        if len(tokens) != len(positions):
            raise ArchitectureError(f"a DARTS token sequence of this space has {len(positions)} tokens, got {len(tokens)}")
        values = []
        for p, token in enumerate(tokens):
            if int(token) not in self.token_range(p):
                raise ArchitectureError(f"token {int(token)} is not valid at position {p}; accepted: {list(self.token_range(p))}")
            values.append(int(token) - self.token_offset(p))
        per_cell = 4 * NODES
        cells = []
        for c in range(self.cells):
            v = values[c * per_cell:(c + 1) * per_cell]
            cells.append(tuple((OPERATIONS[v[q + 1]], v[q]) for q in range(0, per_cell, 2)))
        return self.validate(Architecture(self.name, tuple(cells)))

    # ---- derivation ---------------------------------------------------------------------------
    def derive_cell(self, alpha: torch.Tensor) -> tuple:
        """The derivation rule for one cell's ``(14, 7)`` parameters: per node the 2 incoming edges
        with the highest best-operation probability, each with its most probable operation; then
        the lowest-probability skips / pools beyond the caps become the edge's best parametric op."""
        probs = alpha.detach().float().cpu().softmax(-1)
        genes: list[list[Any]] = []
        for node in range(NODES):
            edges = [EDGE_INDEX[(node, i)] for i in range(node + 2)]
            strength = torch.stack([probs[k].max() for k in edges])
            keep = sorted(torch.argsort(strength, descending=True, stable=True)[:2].tolist())
            genes += [[OPERATIONS[int(probs[edges[i]].argmax())], i] for i in keep]

        def cap(kinds: Sequence[str], limit: int | None) -> None:
            if limit is None:
                return
            hits = [g for g, (op, _) in enumerate(genes) if op in kinds]
            hits.sort(key=lambda g: -float(probs[EDGE_INDEX[(g // 2, genes[g][1])], OPERATIONS.index(genes[g][0])]))
            for g in hits[limit:]:
                row = probs[EDGE_INDEX[(g // 2, genes[g][1])]]
                genes[g][0] = max(PARAMETRIC, key=lambda op: (float(row[OPERATIONS.index(op)]), -PARAMETRIC.index(op)))

        cap(("skip_connect",), self.max_skips)
        cap(POOLS, self.max_pools)
        return self.validate_cell(tuple((op, i) for op, i in genes))

    def derive(self, alphas: torch.Tensor) -> Architecture:
        """The derived architecture of per-cell parameters of shape ``(cells, 14, 7)``."""
        if tuple(alphas.shape) != self.parameter_shape:
            raise ArchitectureError(f"architecture parameters must have shape {self.parameter_shape}, got {tuple(alphas.shape)}")
        return Architecture(self.name, tuple(self.derive_cell(alphas[c]) for c in range(self.cells)))

    # ---- networks -----------------------------------------------------------------------------
    def build(self, architecture: Architecture) -> DARTSNetwork:
        genes = self.validate(architecture).choices
        return DARTSNetwork(self.in_channels, self.channels, self.cells, self.num_classes, self.stem_multiplier, True, genes)

    def supernet(self) -> DARTSNetwork:
        return DARTSNetwork(self.in_channels, self.channels, self.cells, self.num_classes, self.stem_multiplier, self.supernet_affine)

    def extract(self, supernet: nn.Module, architecture: Architecture) -> DARTSNetwork:
        """The standalone network with the supernet's weights of the chosen operations, the stem,
        the preprocessing, the classifier and every BatchNorm's running statistics. Where the
        supernet's BatchNorm has no affine parameters they start at the identity, so in eval mode
        the outputs equal ``supernet(x, architecture)``."""
        cells = self.validate(architecture).choices
        network = self.build(architecture)
        shared = supernet.state_dict()
        own: dict[str, torch.Tensor] = {}
        for name, value in network.state_dict().items():
            parts = name.split(".")
            if parts[0] == "cells" and parts[2] == "ops":  # cells.<c>.ops.<g>.<rest> <- cells.<c>.edges.<k>.<op>.<rest>
                c, g = int(parts[1]), int(parts[3])
                op, source = cells[c][g]
                parts = [*parts[:2], "edges", str(EDGE_INDEX[(g // 2, source)]), op, *parts[4:]]
            source_name = ".".join(parts)
            if source_name in shared:
                own[name] = shared[source_name].detach().clone()
            elif parts[-1] in ("weight", "bias") and isinstance(_module(network, name), nn.BatchNorm2d):
                own[name] = torch.ones_like(value) if parts[-1] == "weight" else torch.zeros_like(value)
            else:
                raise ArchitectureError(f"the supernet has no {source_name!r} for {name!r}; was it built by this space's supernet()?")
        network.load_state_dict(own)
        return network


def _module(network: nn.Module, parameter_name: str) -> nn.Module:
    return network.get_submodule(parameter_name.rpartition(".")[0])


def _show(value: Any) -> str:
    try:
        return json.dumps(value)[:120]
    except TypeError:
        return repr(value)[:120]
