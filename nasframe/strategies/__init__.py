"""Search strategies: the three kinds the papers need and the baselines they compare against."""

from nasframe.strategies.base import SearchStrategy
from nasframe.strategies.differentiable import DifferentiableStrategy
from nasframe.strategies.evolution import RegularizedEvolution
from nasframe.strategies.random_search import RandomSearch
from nasframe.strategies.sample_based import SampleBasedStrategy
from nasframe.strategies.single_path import SinglePathStrategy

__all__ = ["DifferentiableStrategy", "RandomSearch", "RegularizedEvolution", "SampleBasedStrategy",
           "SearchStrategy", "SinglePathStrategy"]
