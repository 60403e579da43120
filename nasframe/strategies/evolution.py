"""Regularized (aging) evolution, Real et al. 2019."""

from __future__ import annotations

from typing import Any

import torch

from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.strategies.base import architectures_from_state, architectures_to_state
from nasframe.strategies.sample_based import SampleBasedStrategy


class RegularizedEvolution(SampleBasedStrategy):
    """Aging evolution: a population of ``population_size``; each child mutates the best of
    ``sample_size`` random members and replaces the oldest. The first population is random.
    Returns the best architecture evaluated. ``on_budget_unspent``: ``"warn"`` or ``"error"`` when
    the search ends before its budget (see ``SampleBasedStrategy``)."""

    def __init__(self, evaluator: Evaluator, budget: int = 100, population_size: int = 20, sample_size: int = 5,
                 seed: int = 0, on_budget_unspent: str = "warn") -> None:
        super().__init__(evaluator, budget, seed, on_budget_unspent=on_budget_unspent)
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be in [1, population_size={population_size}], got {sample_size}")
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: list[tuple[Architecture, float]] = []

    def ask(self, nas) -> list[Architecture]:
        if len(self.population) < self.population_size:
            # the random first population in one step: DDP ranks share out its evaluations
            return self.sample_unseen(nas, min(self.population_size - len(self.population), self.remaining))
        picks = torch.randperm(len(self.population), generator=self.generator)[: self.sample_size].tolist()
        parent = max((self.population[i] for i in picks), key=lambda member: member[1])[0]
        for _ in range(100):
            child = nas.hook.nasframe_mutate_architecture(architecture=parent, generator=self.generator)
            if child not in self.seen:
                return [child]
            parent = child  # walk on until an unseen neighbour turns up
        return self.sample_unseen(nas, 1)

    def tell(self, nas, architectures: list[Architecture], scores) -> None:
        for architecture, score in zip(architectures, scores.tolist()):
            self.population.append((architecture, float("-inf") if score != score else score))
        self.population = self.population[-self.population_size :]

    def search_state(self) -> dict[str, Any]:
        return {**super().search_state(), "population": architectures_to_state([a for a, _ in self.population]),
                "population_scores": [s for _, s in self.population]}

    def load_search_state(self, state: dict[str, Any]) -> None:
        super().load_search_state(state)
        self.population = list(zip(architectures_from_state(state["population"]), state["population_scores"]))
