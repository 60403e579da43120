"""The tabular-benchmark base class: recorded results of every architecture of a space."""

from __future__ import annotations

from abc import ABC, abstractmethod

from nasframe.errors import NASFrameError
from nasframe.spaces.architecture import Architecture


class TabularBenchmark(ABC):
    """Looks up recorded metrics (e.g. ``cifar10_test_acc``) of architectures by value."""

    @property
    @abstractmethod
    def metrics(self) -> list[str]: ...

    @abstractmethod
    def query(self, architecture: Architecture, metric: str) -> float:
        """The recorded ``metric`` of ``architecture``; raises ``ArchitectureError`` if it is not in the table."""

    @abstractmethod
    def architectures(self) -> list[Architecture]:
        """Every architecture in the table, in table order."""

    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            raise NASFrameError(f"unknown metric {metric!r} for {type(self).__name__}; accepted: {self.metrics}")
        return metric
