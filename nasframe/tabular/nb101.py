"""A NAS-Bench-101 sample read from NASLib's zero-cost JSON (``naslib_zc_nasbench101.json``)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from nasframe.errors import ArchitectureError, DataError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb101 import OPERATIONS, VERTICES, NB101Space, prune
from nasframe.tabular.base import TabularBenchmark

DEFAULT_PATH = "../shared/data/nb101/naslib_zc_nasbench101.json"
# NASLib's op codes for the 7 vertices
OP_CODES = {0: "input", 1: "output", 2: "maxpool3x3", 3: "conv1x1-bn-relu", 4: "conv3x3-bn-relu"}


class NB101Benchmark(TabularBenchmark):
    """Recorded metrics of the architectures in a NASLib NAS-Bench-101 file: ``val_accuracy``
    (108-epoch validation accuracy), ``flops``, ``params`` and each zero-cost proxy's score.

    Keys are NASLib's: the unpruned 7x7 matrix flattened row by row, then 7 op codes. A query for
    an architecture not stored as such falls back to one with the same pruned cell.

    Args:
        path: the JSON file; dataset: its top-level dataset key (``cifar10``).
    """

    def __init__(self, path: str = DEFAULT_PATH, dataset: str = "cifar10") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"NAS-Bench-101 file {str(self.path)!r} does not exist; expected NASLib's naslib_zc_nasbench101.json")
        try:
            data = json.loads(self.path.read_text())["nasbench101"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(f"{str(self.path)!r} is not a NASLib NAS-Bench-101 file (expected {{'nasbench101': {{dataset: ...}}}}): {exc!r}") from None
        if dataset not in data:
            raise DataError(f"unknown dataset {dataset!r} in {str(self.path)!r}; accepted: {sorted(data)}")
        self.space = NB101Space()
        self._rows: dict[Architecture, dict[str, float]] = {}
        self._by_pruned: dict[str, Architecture] = {}
        for key, record in data[dataset].items():
            architecture = self._parse_key(key)
            row = {name: float(value["score"] if isinstance(value, dict) else value) for name, value in record.items()}
            self._rows.setdefault(architecture, row)
            self._by_pruned.setdefault(self._pruned_key(architecture), architecture)
        if not self._rows:
            raise DataError(f"NAS-Bench-101 file {str(self.path)!r} holds no architectures for {dataset!r}")
        self._metrics = sorted(next(iter(self._rows.values())))

    def _parse_key(self, key: str) -> Architecture:
        values = ast.literal_eval(key)
        if len(values) != VERTICES * VERTICES + VERTICES:
            raise DataError(f"NAS-Bench-101 key {key[:60]!r} has {len(values)} entries; expected 56 (matrix then op codes)")
        matrix = [values[i * VERTICES:(i + 1) * VERTICES] for i in range(VERTICES)]
        ops = [OP_CODES[int(code)] for code in values[VERTICES * VERTICES:]]
        return self.space.make(matrix, ops)

    def _pruned_key(self, architecture: Architecture) -> str:
        return json.dumps(prune(architecture.choices[0], self.space.all_ops(architecture)))

    @property
    def metrics(self) -> list[str]:
        return list(self._metrics)

    def check_metric(self, metric: str) -> str:
        if metric not in self._metrics:
            raise DataError(f"unknown metric {metric!r} for the NAS-Bench-101 file; accepted: {self._metrics}")
        return metric

    def query(self, architecture: Architecture, metric: str = "val_accuracy") -> float:
        self.check_metric(metric)
        row = self._rows.get(architecture)
        if row is None and architecture.space == self.space.name:
            stored = self._by_pruned.get(self._pruned_key(self.space.validate(architecture)))
            row = self._rows.get(stored) if stored is not None else None
        if row is None:
            raise ArchitectureError(f"architecture {architecture.to_json()} is not in the NAS-Bench-101 file {str(self.path)!r}")
        return row[metric]

    def architectures(self) -> list[Architecture]:
        return list(self._rows)


__all__ = ["NB101Benchmark", "OPERATIONS"]
