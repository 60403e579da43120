"""Random search: the baseline every NAS paper compares against."""

from __future__ import annotations

from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.strategies.sample_based import SampleBasedStrategy


class RandomSearch(SampleBasedStrategy):
    """Evaluates ``candidates_per_step`` uniformly sampled unseen architectures per step; returns the best.
    ``on_budget_unspent``: ``"warn"`` or ``"error"`` when the search ends before its budget (see
    ``SampleBasedStrategy``)."""

    def __init__(self, evaluator: Evaluator, budget: int = 100, candidates_per_step: int = 10, seed: int = 0,
                 on_budget_unspent: str = "warn") -> None:
        super().__init__(evaluator, budget, seed, on_budget_unspent=on_budget_unspent)
        self.candidates_per_step = candidates_per_step

    def ask(self, nas) -> list[Architecture]:
        return self.sample_unseen(nas, min(self.candidates_per_step, self.remaining))
