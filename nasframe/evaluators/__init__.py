"""Evaluators score candidate architectures for sample-based strategies."""

from nasframe.evaluators.base import Evaluator
from nasframe.evaluators.tabular import TabularEvaluator
from nasframe.evaluators.weight_sharing import WeightSharingEvaluator

__all__ = ["Evaluator", "TabularEvaluator", "WeightSharingEvaluator"]
