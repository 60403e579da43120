"""Run a sample-based search without a Lightning Trainer (for benchmarks with many seeds).

The same strategy code runs here and inside ``NASModule``: this file only provides a small
stand-in for the module (hooks, optimizers, no-op logging) and calls the strategy's
``search_step`` until it stops, exactly as ``NASModule.training_step`` does.
"""

from __future__ import annotations

from typing import Any

import torch

from nasframe.plugins import NASPluginManager
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace
from nasframe.strategies.sample_based import SampleBasedStrategy


class SearchContext:
    """What a sample-based strategy uses of ``NASModule``, on one process with no trainer."""

    supernet = None

    def __init__(self, search_space: SearchSpace, strategy: SampleBasedStrategy) -> None:
        if strategy.needs_supernet:
            raise ValueError(f"{type(strategy).__name__}'s evaluator needs a supernet; run it through NASModule and a Trainer")
        self.search_space = search_space
        self.strategy = strategy
        self.stopped = False
        self.plugin_manager = NASPluginManager()
        for component in (search_space, strategy):
            self.plugin_manager.register(component, name=f"{type(component).__name__}-{id(component)}")
        self.plugin_manager.check_pending()
        self.hook.nasframe_setup(nas=self)
        self._optimizers: dict[str, Any] = {}
        for extra in self.hook.nasframe_configure_optimizers(nas=self):
            for name, value in (extra or {}).items():
                self._optimizers[name] = value["optimizer"] if isinstance(value, dict) else value

    @property
    def hook(self) -> Any:
        return self.plugin_manager.hook

    def optimizer(self, name: str) -> Any:
        if name not in self._optimizers:
            raise KeyError(f"no optimizer named {name!r}; configured: {list(self._optimizers)}")
        return self._optimizers[name]

    def broadcast(self, value: Any) -> Any:
        return value

    def all_ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def map_across_ranks(self, items: list[Any], score: Any) -> torch.Tensor:
        return score(list(items)).double().cpu()

    def manual_backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def log_metrics(self, metrics: dict[str, float]) -> None:
        pass

    def stop_search(self) -> None:
        self.stopped = True


def run_search(search_space: SearchSpace, strategy: SampleBasedStrategy, batch: Any = None, max_steps: int = 100_000) -> Architecture:
    """Run ``strategy`` to the end of its budget and return its final architecture; the evaluated
    architectures and scores are in ``strategy.history``. ``batch`` is handed to the evaluator
    at every step (tabular evaluators ignore it)."""
    nas = SearchContext(search_space, strategy)
    for step in range(max_steps):
        nas.hook.nasframe_search_step(nas=nas, batch=batch, batch_idx=step)
        if nas.stopped:
            break
    final = nas.hook.nasframe_final_architecture(nas=nas)
    if final is None:
        raise RuntimeError(f"{type(strategy).__name__} returned no final architecture (nothing could be scored)")
    return final
