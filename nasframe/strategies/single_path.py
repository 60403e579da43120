"""Single-path one-shot search: one sampled path of the supernet trained per step (SPOS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from nasframe.errors import NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.step import SearchStep
from nasframe.strategies.base import SearchStrategy, architectures_from_state, architectures_to_state

if TYPE_CHECKING:
    from nasframe.module import NASModule


class SinglePathStrategy(SearchStrategy):
    """Uniform single-path sampling (SPOS, Guo et al. 2020) on a weight-sharing supernet.

    Each step samples a path with ``propose``, lets ``before_loss`` adjust the step (teachers,
    term weights), updates the supernet's weights on that path, then calls ``after_step``. The base
    keeps the ``leaderboard_size`` paths with the best training-batch accuracy and returns the best
    as the final architecture; subclasses (e.g. a prioritized-path board) override that. With
    ``flops_range`` (needs a space with ``flops(architecture)``) only paths inside it are sampled.
    """

    needs_supernet = True

    def __init__(self, seed: int = 0, leaderboard_size: int = 10, flops_range: tuple[float, float] | None = None,
                 max_resample: int = 1000) -> None:
        super().__init__(seed)
        if flops_range is not None and (len(flops_range) != 2 or not 0 <= flops_range[0] <= flops_range[1]):
            raise NASFrameError(f"flops_range must be [low, high] with 0 <= low <= high, got {list(flops_range)}")
        self.leaderboard_size = leaderboard_size
        self.flops_range = tuple(flops_range) if flops_range is not None else None
        self.max_resample = max_resample
        self.leaderboard: list[tuple[float, Architecture]] = []
        self.last_architecture: Architecture | None = None

    def propose(self, nas: NASModule) -> Architecture:
        """A uniform sample; with ``flops_range``, uniform among the paths inside it (rejection sampling)."""
        for _ in range(self.max_resample):
            architecture = nas.hook.nasframe_sample_architecture(generator=self.generator)
            if self.within_flops_range(nas, architecture):
                return architecture
        raise NASFrameError(f"no path within flops_range {list(self.flops_range)} in {self.max_resample} samples; "
                            "widen the range (the space's flops(architecture) gives the cost of a path)")

    def within_flops_range(self, nas: NASModule, architecture: Architecture) -> bool:
        if self.flops_range is None:
            return True
        flops = getattr(nas.search_space, "flops", None)
        if flops is None:
            raise NASFrameError(f"flops_range needs a search space with a flops(architecture) method; "
                                f"{type(nas.search_space).__name__} has none")
        return self.flops_range[0] <= flops(architecture) <= self.flops_range[1]

    def before_loss(self, nas: NASModule, step: SearchStep) -> None:
        """Hook for subclasses: fill ``step.extras`` / ``step.term_weights`` before the loss."""

    def after_step(self, nas: NASModule, step: SearchStep, loss: torch.Tensor) -> None:
        """Hook for subclasses, after the weight update (``step.logits`` are from before it)."""
        accuracy = nas.batch_accuracy(step)
        if accuracy is None:
            return
        board = [entry for entry in self.leaderboard if entry[1] != step.architecture]
        board.append((accuracy, step.architecture))
        board.sort(key=lambda entry: -entry[0])
        self.leaderboard = board[: self.leaderboard_size]

    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> torch.Tensor:
        architecture = self.propose(nas)
        self.last_architecture = architecture
        step = nas.new_step(batch, architecture, stage="train")
        self.before_loss(nas, step)
        optimizer = nas.optimizer("weights")
        optimizer.zero_grad(set_to_none=True)
        loss = nas.compute_loss(step)
        nas.manual_backward(loss)
        optimizer.step()
        self.after_step(nas, step, loss.detach())
        return loss.detach()

    def current_architecture(self, nas: NASModule) -> Architecture:
        if self.leaderboard:
            return self.leaderboard[0][1]
        if self.last_architecture is None:  # before the first step: a fixed path for validation
            self.last_architecture = nas.hook.nasframe_sample_architecture(generator=torch.Generator().manual_seed(self.seed))
        return self.last_architecture

    def search_state(self) -> dict[str, Any]:
        return {
            "leaderboard_scores": [score for score, _ in self.leaderboard],
            "leaderboard": architectures_to_state([arch for _, arch in self.leaderboard]),
            "last_architecture": architectures_to_state([self.last_architecture] if self.last_architecture else []),
        }

    def load_search_state(self, state: dict[str, Any]) -> None:
        self.leaderboard = list(zip(state["leaderboard_scores"], architectures_from_state(state["leaderboard"])))
        last = architectures_from_state(state["last_architecture"])
        self.last_architecture = last[0] if last else None
