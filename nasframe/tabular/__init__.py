"""Tabular benchmarks: recorded results of whole search spaces, read from a local path."""

from nasframe.tabular.base import TabularBenchmark

__all__ = ["TabularBenchmark"]
