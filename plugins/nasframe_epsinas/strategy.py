"""``ZeroCostSearch``: score N sampled architectures on one batch, rank them, return the best."""

from __future__ import annotations

import math
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info

from nasframe.errors import NASFrameError
from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.strategies.sample_based import SampleBasedStrategy
from nasframe_epsinas.evaluator import EpsinasEvaluator


class ZeroCostSearch(SampleBasedStrategy):
    """A zero-cost search: ``num_samples`` distinct uniformly sampled architectures, each scored once
    by ``evaluator`` (default ``EpsinasEvaluator()``) on the same unlabelled batch, ranked by score.

    The final architecture is the one with the best finite score; NaN scores (constant outputs,
    degenerate scores) are counted and reported, never chosen. The default evaluator ranks as the
    paper's protocol does, extended to every architecture: those a float32 computation resolves
    first, then those only float64 rescues (negative scores); the evaluator's ``ordering: score``
    ranks the plain epsinas scores together instead (see ``EpsinasEvaluator``). No supernet is
    trained, so the module exports the winner built with fresh weights: a training-ready model.
    ``candidates_per_step`` only sets how often progress is logged; every candidate sees the
    evaluator's fixed batch (on NAS-Bench-201 one step's candidates share their computation, so
    larger steps score faster). ``on_budget_unspent``:
    ``"warn"`` or ``"error"`` when the search ends before scoring ``num_samples`` (see ``SampleBasedStrategy``).
    """

    def __init__(self, evaluator: Evaluator | None = None, num_samples: int = 1000, candidates_per_step: int = 100,
                 top_k: int = 5, seed: int = 0, on_budget_unspent: str = "warn") -> None:
        if num_samples < 1:
            raise NASFrameError(f"ZeroCostSearch num_samples must be at least 1, got {num_samples}")
        if candidates_per_step < 1:
            raise NASFrameError(f"ZeroCostSearch candidates_per_step must be at least 1, got {candidates_per_step}")
        super().__init__(evaluator if evaluator is not None else EpsinasEvaluator(), budget=num_samples, seed=seed,
                         on_budget_unspent=on_budget_unspent)
        self.candidates_per_step = candidates_per_step
        self.top_k = top_k

    def ask(self, nas: Any) -> list[Architecture]:
        return self.sample_unseen(nas, min(self.candidates_per_step, self.remaining))  # fewer: the space is smaller

    def ranking(self) -> list[tuple[Architecture, float]]:
        """Scored architectures, best first; NaN scores last (in evaluation order)."""
        finite = sorted((item for item in self.history if not math.isnan(item[1])), key=lambda item: -item[1])
        return finite + [item for item in self.history if math.isnan(item[1])]

    def nan_count(self) -> int:
        return sum(math.isnan(s) for _, s in self.history)

    def tell(self, nas: Any, architectures: list[Architecture], scores: torch.Tensor) -> None:
        nas.log_metrics({"search/nan_scores": float(self.nan_count())})
        if self.remaining > 0 and architectures:
            return
        lines = [f"ZeroCostSearch: {len(self.history)} architectures scored, {self.nan_count()} with a NaN score "
                 f"(constant output); top {self.top_k}:"]
        space = nas.search_space
        for rank, (architecture, score) in enumerate(self.ranking()[: self.top_k], start=1):
            lines.append(f"  {rank}. {score:.6g}  {space.format(architecture)}")
        rank_zero_info("\n".join(lines))
