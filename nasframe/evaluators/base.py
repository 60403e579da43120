"""The evaluator base class: scores candidate architectures for sample-based strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from nasframe.spaces.architecture import Architecture

if TYPE_CHECKING:
    from nasframe.module import NASModule


class Evaluator(ABC):
    """Scores architectures; higher is better, NaN where an architecture cannot be scored.

    ``evaluate`` receives the current training batch, which data-driven evaluators (zero-cost
    proxies, weight-sharing estimates) use and tabular ones ignore. ``queries`` counts distinct
    architectures scored so far, the budget unit of sample-based search.
    """

    #: whether the module must build the space's supernet for this evaluator
    needs_supernet: bool = False

    def __init__(self) -> None:
        self.queried: set[Architecture] = set()

    @property
    def queries(self) -> int:
        return len(self.queried)

    def evaluate(self, nas: NASModule, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        self.queried.update(architectures)
        return self.score(nas, architectures, batch)

    @abstractmethod
    def score(self, nas: NASModule, architectures: list[Architecture], batch: Any) -> torch.Tensor: ...

    def state(self) -> dict[str, Any]:
        """What a resumed search needs besides ``queried`` (e.g. a fixed batch); saved by the strategy
        in its checkpoint state, so values must load with ``weights_only=True``."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""
