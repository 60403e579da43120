"""Tabular benchmarks: recorded results of whole search spaces, read from a local path."""

from nasframe.tabular.base import TabularBenchmark
from nasframe.tabular.nb201 import NB201Benchmark

__all__ = ["NB201Benchmark", "TabularBenchmark"]
