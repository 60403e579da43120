"""epsinas on many NAS-Bench-201 architectures with the work they share computed once.

Every weight holds the same constant, so two operations of the same kind compute the same function
wherever they sit in the network. Three kinds of sharing follow, all exact up to the order of a
floating-point sum:

* **Equal cells.** A cell's output is a sum of operations applied to earlier nodes. Written as a
  canonical expression (``none`` and any operation on a zero tensor vanish, ``skip_connect`` passes
  its input's terms through, a node's terms form a multiset), 15,625 architectures have 4,930
  distinct cell functions (341 of them zero). Every cell of a network is the same, so architectures
  with equal expressions have equal outputs: each function is computed once.
* **Equal operations in a cell.** Edges that apply the same operation to the same node (``conv(x)``
  into nodes 1, 2 and 3) compute it once.
* **The first cell across architectures.** Its input (the stem's output) is the same for every
  architecture, so the value of each of its operations depends only on the operations of the edges
  that lead to it. Those tensors are kept, least recently used dropped after ``memo_size``, and
  architectures are processed sorted by their first nodes' expressions, so neighbours reuse them.

The computation runs the narrow supernet's own modules (``score._Network``): the same box sums,
exponent tracking and BatchNorm as one architecture at a time, bitwise equal for an architecture
whose sums are in the same order.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb201 import EDGES, Cell
from nasframe_epsinas.score import _Network, _renormalise

__all__ = ["NB201SharedForward", "cell_plan"]

INPUT = 0  # the expression id of the cell's input


class _Interner:
    """Small integer ids for hashable expressions (fast to hash and compare)."""

    def __init__(self) -> None:
        self.ids: dict[Any, int] = {("input",): INPUT}

    def __call__(self, key: Any) -> int:
        return self.ids.setdefault(key, len(self.ids))


class CellPlan:
    """What one architecture's cell computes: per node, its non-zero terms ``(edge, op, source node)``
    in edge order, each term's sharing key, and the cell function's id (``None``: the zero function)."""

    __slots__ = ("terms", "node_keys", "function")

    def __init__(self, terms: list[list[tuple[int, str, int, int]]], node_keys: list[tuple], function: int | None) -> None:
        self.terms, self.node_keys, self.function = terms, node_keys, function


def cell_plan(ops: Sequence[str], intern: _Interner) -> CellPlan:
    """The canonical form of a cell with operations ``ops`` (in ``EDGES`` order)."""
    multisets: list[tuple[int, ...]] = [(INPUT,)]
    node_ids = [intern(("node", (INPUT,)))]  # skip_connect(x) is the same node as x
    terms: list[list[tuple[int, str, int, int]]] = [[]]
    for node in (1, 2, 3):
        parts: list[int] = []
        own: list[tuple[int, str, int, int]] = []
        for k, (to, source) in enumerate(EDGES):
            op = ops[k]
            if to != node or op == "none" or not multisets[source]:
                continue  # no edge here, or a zero term: none(x) = 0 and op(0) = 0 for every op
            if op == "skip_connect":
                parts.extend(multisets[source])
                own.append((k, op, source, -1))
            else:
                term = intern(("op", op, node_ids[source]))
                parts.append(term)
                own.append((k, op, source, term))
        multisets.append(tuple(sorted(parts)))
        node_ids.append(intern(("node", multisets[-1])) if parts else -1)
        terms.append(own)
    return CellPlan(terms, [multisets[1], multisets[2]], node_ids[3] if multisets[3] else None)


class NB201SharedForward:
    """The outputs of many NAS-Bench-201 architectures through the narrow supernets of an
    ``EpsinasScorer`` (one ``_Network`` per constant), sharing work as the module docstring says.

    Args:
        networks: the two filled-per-constant supernets (``NB201Network`` inside).
        constants: the two weight values.
        rescale: whether the networks track the exponent at each stage (``rescale_at="layers"``).
        memo_size: first-cell tensors kept per constant (each ``B x H x W`` numbers).
    """

    def __init__(self, networks: Sequence[_Network], constants: Sequence[float], rescale: bool, memo_size: int = 24) -> None:
        self.networks = list(networks)
        self.constants = tuple(constants)
        self.rescale = rescale
        self.memo_size = memo_size
        self.intern = _Interner()
        self.plans: dict[tuple, CellPlan] = {}
        self.counts = {"architectures": 0, "functions": 0, "operations": 0, "reused": 0}

    def plan(self, architecture: Architecture) -> CellPlan:
        ops = architecture.choices
        plan = self.plans.get(ops)
        if plan is None:
            plan = self.plans[ops] = cell_plan(ops, self.intern)
        return plan

    def outputs(self, architectures: Sequence[Architecture], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outputs ``(N, 2, B)`` at the tracked scale and exponents ``(N, 2)``, as ``EpsinasScorer._raw``."""
        plans = [self.plan(a) for a in architectures]
        functions: dict[int, CellPlan] = {}
        for plan in plans:
            if plan.function is not None:
                functions.setdefault(plan.function, plan)
        # neighbours share first-cell nodes: sort by the expressions of nodes 1 and 2
        order = sorted(functions.values(), key=lambda p: p.node_keys)
        outputs = x.new_zeros(len(architectures), 2, len(x))  # the zero function: a constant output
        exponents = torch.zeros(len(architectures), 2, dtype=torch.long)
        self.counts["architectures"] += len(architectures)
        self.counts["functions"] += len(order)
        if not order:
            return outputs, exponents
        rows = {plan.function: i for i, plan in enumerate(order)}
        where = torch.tensor([rows.get(p.function, -1) for p in plans])
        computed = x.new_zeros(len(order), 2, len(x))
        computed_k = torch.zeros(len(order), 2, dtype=torch.long)
        for index, (net, constant) in enumerate(zip(self.networks, self.constants)):
            computed[:, index], computed_k[:, index] = self._one_constant(net, constant, order, x)
        known = where >= 0
        outputs[known] = computed[where[known]]
        exponents[known] = computed_k[where[known]]
        return outputs, exponents

    def _one_constant(self, net: _Network, constant: float, order: list[CellPlan], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        module, scale = net.module, net.scale
        net.fill(constant)
        scale.k = 0
        stem = module.stem(x)  # the same for every architecture
        layers = list(module.layers)
        if self.rescale:
            (stem,) = _renormalise(scale, layers[0], (stem,))
        stem_k = scale.k
        memo: OrderedDict[int, torch.Tensor] = OrderedDict()  # first-cell terms, per batch and constant
        results, exponents = [], []
        head = constant * net.head_multiplier
        for plan in order:
            scale.k = stem_k
            h = stem
            for index, layer in enumerate(layers):
                if index and self.rescale:
                    (h,) = _renormalise(scale, layer, (h,))
                if isinstance(layer, Cell):
                    h = self._cell(layer, h, plan, memo if index == 0 else None)
                else:
                    h = layer.forward(h)  # forward, not __call__: the rescaling pre-hook has run above
            features = module.pool(module.last_act(h)).flatten(1)
            results.append(features.sum(1) * head)
            exponents.append(scale.k)
        return torch.stack(results), torch.tensor(exponents, dtype=torch.long)

    def _cell(self, cell: Cell, x: torch.Tensor, plan: CellPlan, memo: OrderedDict[int, torch.Tensor] | None) -> torch.Tensor:
        nodes: list[torch.Tensor | None] = [x]
        local: dict[int, torch.Tensor] = {}
        for node in (1, 2, 3):
            total = None
            for k, op, source, key in plan.terms[node]:
                value = nodes[source]
                if op != "skip_connect":
                    value = self._term(cell, k, op, value, key, local, memo)
                total = value if total is None else total + value
            nodes.append(total)
        return nodes[3]

    def _term(self, cell: Cell, k: int, op: str, source: torch.Tensor, key: int, local: dict[int, torch.Tensor],
              memo: OrderedDict[int, torch.Tensor] | None) -> torch.Tensor:
        value = local.get(key)
        if value is None and memo is not None:
            value = memo.get(key)
            if value is not None:
                memo.move_to_end(key)
        if value is not None:
            self.counts["reused"] += 1
            return value
        value = local[key] = cell.edges[k][op](source)
        self.counts["operations"] += 1
        if memo is not None:
            memo[key] = value
            while len(memo) > self.memo_size:
                memo.popitem(last=False)
        return value
