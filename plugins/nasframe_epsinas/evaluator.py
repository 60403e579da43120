"""``EpsinasEvaluator``: the epsinas score as an evaluator for any sample-based strategy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info

from nasframe.errors import NASFrameError
from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.step import split_batch
from nasframe_epsinas.score import ORDERINGS, EpsinasScorer, EpsinasScores, check_options


class EpsinasEvaluator(Evaluator):
    """Scores candidates with epsinas on one fixed, unlabelled batch (labels are ignored).

    The batch is the first one the evaluator sees (its first view, truncated to ``batch_size``
    images when set), or one given with ``set_batch``. Every candidate of the search is scored on that
    same batch, so scores are comparable across steps. NaN marks an architecture whose output does
    not depend on its input (constant output) or whose score is degenerate (within rounding of zero);
    strategies never choose a NaN.

    ``ordering`` sets what the search ranks by (``EpsinasScores.ordered``):

    * ``"float32_first"`` (default): the architectures a float32 computation resolves (the paper's
      protocol scores only these) first, by their epsinas score; then the ones only float64 rescues,
      by theirs, mapped into (-1, 0) as ``eps / (1 + eps) - 1``. Every input-dependent architecture
      keeps a finite score, and pick-best matches the paper's (NAS-Bench-201: 94.2 against 93.1).
    * ``"score"``: the plain epsinas score for every architecture, one ranking.

    Args: see ``EpsinasScorer`` (``constants``, ``dtype``, ``width``, ``width_arg``, ``verify_samples``,
    ``use_supernet``, ``degenerate_below``); ``batch_size``: images of the fixed batch (``None``: the
    whole first batch); ``ordering``: as above.
    """

    def __init__(self, constants: Sequence[float] = (1e-7, 1.0), dtype: str = "float64", width: int | None = 1,
                 width_arg: str = "channels", verify_samples: int = 8, use_supernet: bool = True,
                 batch_size: int | None = None, ordering: str = "float32_first", degenerate_below: float | None = None) -> None:
        super().__init__()
        if batch_size is not None and batch_size < 2:
            raise NASFrameError(f"EpsinasEvaluator batch_size must be at least 2 (min-max normalisation), got {batch_size}")
        if ordering not in ORDERINGS:
            raise NASFrameError(f"EpsinasEvaluator ordering {ordering!r} is not supported; accepted: {list(ORDERINGS)}")
        check_options(constants, dtype, width)
        self.options = dict(constants=tuple(constants), dtype=dtype, width=width, width_arg=width_arg,
                            verify_samples=verify_samples, use_supernet=use_supernet, degenerate_below=degenerate_below)
        self.batch_size = batch_size
        self.ordering = ordering
        self.batch: torch.Tensor | None = None
        self.scorer: EpsinasScorer | None = None
        self.last: EpsinasScores | None = None  # the last call's scores, flags and float32 range

    def set_batch(self, batch: Any) -> None:
        """Fix the batch every candidate is scored on (images, or ``(images, labels)``)."""
        views, _ = split_batch(batch)
        inputs = views[0]
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2:
            raise NASFrameError("EpsinasEvaluator needs a batch of image tensors; got "
                                f"{type(inputs).__name__}. Give the search a datamodule (data:) with unaugmented images")
        inputs = inputs[: self.batch_size] if self.batch_size else inputs
        if len(inputs) < 2:
            raise NASFrameError(f"EpsinasEvaluator needs at least 2 images in its batch, got {len(inputs)}")
        self.batch = inputs.detach().cpu()

    def state(self) -> dict[str, Any]:
        # the fixed batch: a resumed search must score its remaining candidates on the same images
        return {"batch": self.batch}

    def load_state(self, state: dict[str, Any]) -> None:
        self.batch = state.get("batch")

    def scorer_for(self, space: Any) -> EpsinasScorer:
        if self.scorer is None or self.scorer.space is not space:
            self.scorer = EpsinasScorer(space, **self.options)
        return self.scorer

    def score(self, nas: Any, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        if self.batch is None:
            self.set_batch(batch)
        self.last = scores = self.scorer_for(nas.search_space).evaluate(architectures, self.batch)
        constant = int((scores.eps.isnan() & ~scores.degenerate).sum())
        degenerate = int(scores.degenerate.sum())
        if constant or degenerate:  # the strategy's log counts them over the whole search (this call may score one DDP rank's share)
            rank_zero_info(f"epsinas: of {len(architectures)} architectures, {constant} have a constant output and "
                           f"{degenerate} a degenerate score (within rounding of zero): NaN, never chosen")
        return scores.ordered(self.ordering)
