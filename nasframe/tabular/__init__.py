"""Tabular benchmarks: recorded results of whole search spaces, read from a local path."""

from nasframe.tabular.base import TabularBenchmark
from nasframe.tabular.nb101 import NB101Benchmark
from nasframe.tabular.nb201 import NB201Benchmark

__all__ = ["NB101Benchmark", "NB201Benchmark", "TabularBenchmark"]
