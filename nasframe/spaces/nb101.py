"""The NAS-Bench-101 cell space (Ying et al., ICML 2019) and its standard network.

A cell is a DAG on 7 vertices: an upper-triangular 7x7 adjacency matrix, vertex 0 the input,
vertex 6 the output, and one operation per interior vertex (conv3x3-bn-relu, conv1x1-bn-relu,
maxpool3x3). As in the benchmark, a matrix may have vertices off every input-to-output path; they
are pruned, and validity is judged on the pruned graph: the input reaches the output and at most
``max_edges`` (9) edges remain. Architectures are kept unpruned (the benchmark's own spec), so
distinct architectures may prune to the same network.

The network (the benchmark's): a 3x3 conv-bn-relu stem of 128 channels, 3 stacks of 3 cells, a
2x2 max-pool halving the resolution and the cells doubling the channels between stacks, global
average pooling and a linear classifier.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace

OPERATIONS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
INPUT, OUTPUT = "input", "output"
VERTICES = 7
INTERIOR = VERTICES - 2
EDGES = tuple((i, j) for j in range(1, VERTICES) for i in range(j))  # 21 possible edges, grouped by target


def prune(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> tuple[list[list[int]], list[str]] | None:
    """Keep the vertices on some input-to-output path; ``None`` when the output is unreachable.
    ``ops`` names all 7 vertices (``input`` ... ``output``)."""
    n = len(matrix)
    forward = {0}
    for j in range(1, n):
        if any(matrix[i][j] and i in forward for i in range(j)):
            forward.add(j)
    if n - 1 not in forward:
        return None
    backward = {n - 1}
    for i in range(n - 2, -1, -1):
        if any(matrix[i][j] and j in backward for j in range(i + 1, n)):
            backward.add(i)
    keep = sorted(forward & backward)
    return [[matrix[i][j] for j in keep] for i in keep], [ops[i] for i in keep]


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def vertex_channels(c_in: int, c_out: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """Channels of each vertex of a pruned cell, as the benchmark assigns them: the vertices feeding
    the output split ``c_out`` between them (their concatenation is the output); every other
    interior vertex takes the largest width among its successors."""
    n = len(matrix)
    channels = [c_in] + [0] * (n - 2) + [c_out]
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    for k, v in enumerate(feeding):
        channels[v] = c_out // len(feeding) + (1 if k < c_out % len(feeding) else 0)
    for v in range(n - 2, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if matrix[v][w])
    return channels


class NB101Cell(nn.Module):
    """One cell: interior vertices sum their inputs (the input vertex through a 1x1 projection,
    wider vertices truncated), apply their operation; the output concatenates the vertices that
    feed it and adds the projected input when the input feeds it directly."""

    def __init__(self, c_in: int, c_out: int, matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> None:
        super().__init__()
        self.matrix = [list(row) for row in matrix]
        self.channels = vertex_channels(c_in, c_out, self.matrix)
        n = len(self.matrix)
        self.ops = nn.ModuleList([nn.Identity()])
        self.projections = nn.ModuleList([nn.Identity()])
        for v in range(1, n):
            c = self.channels[v]
            self.projections.append(ConvBNReLU(c_in, c, 1) if self.matrix[0][v] else nn.Identity())
            if v == n - 1:
                self.ops.append(nn.Identity())
            elif ops[v] == "conv3x3-bn-relu":
                self.ops.append(ConvBNReLU(c, c, 3))
            elif ops[v] == "conv1x1-bn-relu":
                self.ops.append(ConvBNReLU(c, c, 1))
            else:
                self.ops.append(nn.MaxPool2d(3, stride=1, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.matrix)
        outputs: list[torch.Tensor] = [x]
        for v in range(1, n - 1):
            c = self.channels[v]
            inputs = [outputs[u][:, :c] for u in range(1, v) if self.matrix[u][v]]
            if self.matrix[0][v]:
                inputs.append(self.projections[v](x))
            outputs.append(self.ops[v](sum(inputs)))
        feeding = [outputs[u] for u in range(1, n - 1) if self.matrix[u][n - 1]]
        out = torch.cat(feeding, dim=1) if feeding else 0
        if self.matrix[0][n - 1]:
            out = out + self.projections[n - 1](x)
        return out


class NB101Network(nn.Module):
    def __init__(self, matrix: Sequence[Sequence[int]], ops: Sequence[str], stem_channels: int, stacks: int,
                 cells_per_stack: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        layers: list[nn.Module] = []
        c_in = c_out = stem_channels
        for stack in range(stacks):
            if stack:
                layers.append(nn.MaxPool2d(2, 2))
                c_out *= 2
            for _ in range(cells_per_stack):
                layers.append(NB101Cell(c_in, c_out, matrix, ops))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_out, num_classes)
        self.feature_dim = c_out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.layers(self.stem(x))).flatten(1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class NB101Space(SearchSpace):
    """NAS-Bench-101 cells. An architecture's choices are ``(matrix, ops)``: the 7x7 adjacency
    matrix (rows of 0/1) and the 5 interior operations.

    Args:
        max_edges: edges allowed in the pruned graph (9 in the benchmark).
        stem_channels, stacks, cells_per_stack: the network (128, 3, 3 in the benchmark).
        num_classes, in_channels, image_size: the data it runs on (``input_shape`` for export).
    """

    name = "nb101"

    def __init__(self, max_edges: int = 9, stem_channels: int = 128, stacks: int = 3, cells_per_stack: int = 3,
                 num_classes: int = 10, in_channels: int = 3, image_size: int = 32) -> None:
        for key, value in (("max_edges", max_edges), ("stem_channels", stem_channels), ("stacks", stacks),
                           ("cells_per_stack", cells_per_stack), ("num_classes", num_classes), ("in_channels", in_channels),
                           ("image_size", image_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"NB101Space: {key} must be a positive integer, got {value!r}")
        if stem_channels < INTERIOR:  # a cell splits its output channels between up to 5 vertices
            raise NASFrameError(f"NB101Space: stem_channels must be at least {INTERIOR}, got {stem_channels}: a cell "
                                f"splits its output channels between up to {INTERIOR} vertices, and each needs one")
        self.max_edges = max_edges
        self.stem_channels, self.stacks, self.cells_per_stack = stem_channels, stacks, cells_per_stack
        self.num_classes, self.in_channels = num_classes, in_channels
        self.input_shape = (in_channels, image_size, image_size)

    # ---- values ----------------------------------------------------------------------------------
    def make(self, matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> Architecture:
        """An architecture from a matrix and the 5 interior operations (or all 7 with input/output)."""
        ops = list(ops)
        if len(ops) == VERTICES and ops[0] == INPUT and ops[-1] == OUTPUT:
            ops = ops[1:-1]
        try:  # only integers become ints: int() would also read '1', 1.7 or a non-ASCII digit such as '١'
            rows = tuple(tuple(int(v) if isinstance(v, numbers.Integral) else v for v in row) for row in matrix)
        except TypeError:
            raise ArchitectureError(f"the NAS-Bench-101 matrix must be {VERTICES} rows of {VERTICES} 0/1 entries, got {matrix!r:.80}") from None
        return self.validate(Architecture(self.name, (rows, tuple(ops))))

    def validate(self, architecture: Architecture) -> Architecture:
        if not isinstance(architecture, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(architecture).__name__}")
        if architecture.space != self.name:
            raise ArchitectureError(f"architecture belongs to space {architecture.space!r}, not {self.name!r}")
        choices = architecture.choices
        if len(choices) != 2:
            raise ArchitectureError(f"a NAS-Bench-101 architecture is (matrix, ops), got {len(choices)} choices")
        matrix, ops = choices
        if len(matrix) != VERTICES or any(not isinstance(row, tuple) or len(row) != VERTICES for row in matrix):
            raise ArchitectureError(f"the NAS-Bench-101 matrix must be {VERTICES}x{VERTICES}")
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                if value not in (0, 1):
                    raise ArchitectureError(f"matrix entry ({i}, {j}) is {value!r}; accepted: 0, 1")
                if value and j <= i:
                    raise ArchitectureError(f"matrix entry ({i}, {j}) is 1; only edges i -> j with i < j are accepted (upper triangular)")
        if len(ops) != INTERIOR or any(op not in OPERATIONS for op in ops):
            raise ArchitectureError(f"a NAS-Bench-101 cell has {INTERIOR} interior operations from {list(OPERATIONS)}, got {list(ops)}")
        pruned = prune(matrix, self.all_ops(architecture))
        if pruned is None:
            raise ArchitectureError("the NAS-Bench-101 cell's input does not reach its output")
        edges = sum(map(sum, pruned[0]))
        if edges > self.max_edges:
            raise ArchitectureError(f"the pruned NAS-Bench-101 cell has {edges} edges; at most {self.max_edges} are accepted")
        return architecture

    @staticmethod
    def all_ops(architecture: Architecture) -> list[str]:
        return [INPUT, *architecture.choices[1], OUTPUT]

    def pruned(self, architecture: Architecture) -> tuple[list[list[int]], list[str]]:
        """The network the architecture stands for: its vertices on an input-to-output path."""
        self.validate(architecture)
        return prune(architecture.choices[0], self.all_ops(architecture))  # type: ignore[return-value]

    def parse(self, text: str) -> Architecture:
        """Parse ``{"matrix": [[...7 rows...]], "ops": ["input", ..., "output"]}`` (or the
        generic architecture JSON)."""
        try:
            data = json.loads(text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ArchitectureError(f"a NAS-Bench-101 architecture is JSON {{\"matrix\": ..., \"ops\": ...}}, got {text!r:.80} ({exc})") from None
        if isinstance(data, dict) and set(data) == {"matrix", "ops"}:
            return self.make(data["matrix"], data["ops"])
        return self.validate(Architecture.from_dict(data))

    def format(self, architecture: Architecture) -> str:
        self.validate(architecture)
        return json.dumps({"matrix": [list(row) for row in architecture.choices[0]], "ops": self.all_ops(architecture)})

    # ---- sampling ----------------------------------------------------------------------------------
    def sample(self, generator: torch.Generator) -> Architecture:
        """Uniform over raw specs that pass validation (the benchmark's generator): random
        upper-triangular bits and operations, redrawn until valid."""
        for _ in range(10_000):
            bits = torch.randint(2, (len(EDGES),), generator=generator).tolist()
            ops = [OPERATIONS[int(i)] for i in torch.randint(len(OPERATIONS), (INTERIOR,), generator=generator)]
            matrix = [[0] * VERTICES for _ in range(VERTICES)]
            for (i, j), bit in zip(EDGES, bits):
                matrix[i][j] = bit
            try:
                return self.make(matrix, ops)
            except ArchitectureError:
                continue
        raise ArchitectureError(f"no valid NAS-Bench-101 cell in 10,000 draws with max_edges={self.max_edges}")

    def mutate(self, architecture: Architecture, generator: torch.Generator) -> Architecture:
        """Flip one edge or change one operation, redrawn until the result is valid and different."""
        tokens = self.to_tokens(self.validate(architecture))
        for _ in range(10_000):
            position = int(torch.randint(len(tokens), (), generator=generator))
            valid = [t for t in self.token_range(position) if t != tokens[position]]
            changed = list(tokens)
            changed[position] = valid[int(torch.randint(len(valid), (), generator=generator))]
            try:
                return self.from_tokens(changed)
            except ArchitectureError:
                continue
        raise ArchitectureError("no valid NAS-Bench-101 neighbour found")

    # ---- token view: per target vertex j, its incoming edge bits, then its operation -------------------
    def _layout(self) -> list[tuple[str, Any]]:
        layout: list[tuple[str, Any]] = []
        for j in range(1, VERTICES):
            layout += [("edge", (i, j)) for i in range(j)]
            if j < VERTICES - 1:
                layout.append(("op", j))
        return layout

    def token_choices(self) -> list[Sequence[str]]:
        return [("0", "1") if kind == "edge" else OPERATIONS for kind, _ in self._layout()]

    def to_tokens(self, architecture: Architecture) -> list[int]:
        matrix, ops = self.validate(architecture).choices
        values = [matrix[where[0]][where[1]] if kind == "edge" else OPERATIONS.index(ops[where - 1]) for kind, where in self._layout()]
        return [self.token_offset(p) + v for p, v in enumerate(values)]

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        layout = self._layout()
        if len(tokens) != len(layout):
            raise ArchitectureError(f"a NAS-Bench-101 token sequence has {len(layout)} tokens, got {len(tokens)}")
        matrix = [[0] * VERTICES for _ in range(VERTICES)]
        ops = [OPERATIONS[0]] * INTERIOR
        for p, ((kind, where), token) in enumerate(zip(layout, tokens)):
            if int(token) not in self.token_range(p):
                raise ArchitectureError(f"token {int(token)} is not valid at position {p}; accepted: {list(self.token_range(p))}")
            value = int(token) - self.token_offset(p)
            if kind == "edge":
                matrix[where[0]][where[1]] = value
            else:
                ops[where - 1] = OPERATIONS[value]
        return self.make(matrix, ops)

    # ---- network ----------------------------------------------------------------------------------------
    def build(self, architecture: Architecture) -> NB101Network:
        matrix, ops = self.pruned(architecture)
        return NB101Network(matrix, ops, self.stem_channels, self.stacks, self.cells_per_stack, self.num_classes, self.in_channels)
