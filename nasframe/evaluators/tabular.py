"""Score by looking the architecture up in a tabular benchmark."""

from __future__ import annotations

from typing import Any

import torch

from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.tabular.base import TabularBenchmark


class TabularEvaluator(Evaluator):
    """The benchmark's recorded accuracy (``metric``) of each architecture; one query per distinct one."""

    def __init__(self, benchmark: TabularBenchmark, metric: str = "cifar10_test_acc") -> None:
        super().__init__()
        self.benchmark = benchmark
        self.metric = benchmark.check_metric(metric)

    def score(self, nas: Any, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        return torch.tensor([self.benchmark.query(a, self.metric) for a in architectures], dtype=torch.float64)
