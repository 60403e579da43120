"""NAS-Bench-201 ground truth read from a CSV (``index, arch, cifar10_test_acc, cifar100_test_acc``)."""

from __future__ import annotations

import csv
from pathlib import Path

from nasframe.errors import ArchitectureError, DataError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb201 import NB201Space
from nasframe.tabular.base import TabularBenchmark

DEFAULT_PATH = "../shared/data/nb201/nb201_test_accuracy.csv"


class NB201Benchmark(TabularBenchmark):
    """The 200-epoch test accuracy of all 15,625 NAS-Bench-201 architectures, and the official index.

    ``path`` is the CSV (default: ``../shared/data/nb201/nb201_test_accuracy.csv`` relative to the
    working directory). Every metric column becomes a queryable metric.
    """

    def __init__(self, path: str = DEFAULT_PATH) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"NAS-Bench-201 table {str(self.path)!r} does not exist; expected a CSV with columns "
                            "index, arch, cifar10_test_acc, cifar100_test_acc")
        self.space = NB201Space()
        with self.path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"index", "arch"} <= set(reader.fieldnames):
                raise DataError(f"{str(self.path)!r} lacks the columns 'index' and 'arch'; it has {reader.fieldnames}")
            self._metrics = [c for c in reader.fieldnames if c not in ("index", "arch")]
            self._rows: dict[tuple, dict[str, float]] = {}
            self._by_index: dict[int, Architecture] = {}
            for row in reader:
                architecture = self.space.parse(row["arch"])
                self._rows[architecture.choices] = {m: float(row[m]) for m in self._metrics}
                self._by_index[int(row["index"])] = architecture
                self._rows[architecture.choices]["index"] = int(row["index"])
        if not self._rows:
            raise DataError(f"NAS-Bench-201 table {str(self.path)!r} is empty")

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    def check_metric(self, metric: str) -> str:
        if metric not in self._metrics:
            raise DataError(f"unknown metric {metric!r} for the NAS-Bench-201 table; accepted: {self._metrics}")
        return metric

    def _row(self, architecture: Architecture) -> dict[str, float]:
        row = self._rows.get(architecture.choices) if architecture.space == self.space.name else None
        if row is None:
            raise ArchitectureError(f"architecture {architecture.to_json()} is not in the NAS-Bench-201 table {str(self.path)!r}")
        return row

    def query(self, architecture: Architecture, metric: str = "cifar10_test_acc") -> float:
        return self._row(architecture)[self.check_metric(metric)]

    def index(self, architecture: Architecture) -> int:
        """The official NAS-Bench-201 index of ``architecture``."""
        return int(self._row(architecture)["index"])

    def architecture(self, index: int) -> Architecture:
        if index not in self._by_index:
            raise ArchitectureError(f"NAS-Bench-201 index must be in [0, {len(self._by_index)}), got {index}")
        return self._by_index[index]

    def architectures(self) -> list[Architecture]:
        return [self._by_index[i] for i in sorted(self._by_index)]

    def best(self, metric: str = "cifar10_test_acc") -> tuple[Architecture, float]:
        """The optimum of ``metric`` in the table."""
        choices, row = max(self._rows.items(), key=lambda item: item[1][self.check_metric(metric)])
        return Architecture(self.space.name, choices), row[metric]
