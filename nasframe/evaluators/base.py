"""The evaluator base class: scores candidate architectures for sample-based strategies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from nasframe.spaces.architecture import Architecture

if TYPE_CHECKING:
    from nasframe.host import SearchHost


class Evaluator(ABC):
    """Scores architectures; higher is better, NaN where an architecture cannot be scored.

    ``evaluate`` receives the current training batch, which data-driven evaluators (zero-cost
    proxies, weight-sharing estimates) use and tabular ones ignore. ``queries`` counts distinct
    architectures scored so far, the budget unit of sample-based search.

    The contract of ``score(nas, architectures, batch)``:

    * **Return** a 1-D tensor with one number per architecture, in order (float64 is kept).
    * **Batch**: the search step's batch as the datamodule yields it, the same on every DDP rank
      (rank 0's); its formats are listed in ``nasframe.unpack_batch``, which returns
      ``(views, targets)``. A search with no datamodule hands the step index instead.
    * **Device**: compute on ``nas.device`` (where the supernet lives): ``unpack_batch(batch,
      nas.device)`` moves the inputs there; networks the evaluator builds itself go there too.
    * **Randomness**: draw only from ``nas.generator_for(architecture)`` (a generator seeded from
      the strategy's seed and the architecture alone), never from the global RNG, so that a score
      does not depend on which other architectures are scored with it, in which order, or on
      which DDP rank (each rank scores a share of the candidates).
    * **Host**: use only the ``nasframe.SearchHost`` members that its docstring allows evaluators
      (no collective calls: the ranks score different shares).
    """

    #: whether the module must build the space's supernet for this evaluator
    needs_supernet: bool = False

    def __init__(self) -> None:
        self.queried: set[Architecture] = set()

    @property
    def queries(self) -> int:
        return len(self.queried)

    def evaluate(self, nas: SearchHost, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        self.queried.update(architectures)
        return self.score(nas, architectures, batch)

    @abstractmethod
    def score(self, nas: SearchHost, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        """One score per architecture on ``batch`` (see the class docstring for batch, device and randomness)."""

    def state(self) -> dict[str, Any]:
        """What a resumed search needs besides ``queried`` (e.g. a fixed batch); saved by the strategy
        in its checkpoint state, so values must load with ``weights_only=True``."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what ``state`` returned."""
