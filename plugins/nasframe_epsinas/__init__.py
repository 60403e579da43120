"""epsinas ("Neural Architecture Search via Two Constant Shared Weights Initialisations") as a nasframe plugin.

A zero-cost proxy: no training, no gradients, no labels. ``EpsinasEvaluator`` scores candidates of
any sample-based strategy on one fixed batch; ``ZeroCostSearch`` scores N sampled architectures,
ranks them and returns the best. Registered under the ``nasframe`` entry-point group as ``epsinas``.
"""

from nasframe_epsinas.evaluator import EpsinasEvaluator
from nasframe_epsinas.score import ORDERINGS, EpsinasScorer, EpsinasScores, epsinas_score, fan_in_ratios, normalise
from nasframe_epsinas.strategy import ZeroCostSearch

__all__ = ["ORDERINGS", "EpsinasEvaluator", "EpsinasScorer", "EpsinasScores", "ZeroCostSearch", "epsinas_score",
           "fan_in_ratios", "normalise"]


def nasframe_components() -> dict[str, list[type]]:
    """What this plugin adds (shown by ``nasframe list``)."""
    return {"evaluators": [EpsinasEvaluator], "strategies": [ZeroCostSearch]}
