"""Single-path one-shot search: one sampled path of the supernet trained per step (SPOS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from nasframe.buffers import buffers_restored
from nasframe.errors import NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.capabilities import architecture_cost
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
    ``flops_range`` (FLOPs from the ``nasframe_architecture_cost`` hook: every built-in space has
    them, any space with ``input_shape`` gets them) only paths inside it are sampled.

    A leaderboard entry is one path's accuracy on the one batch it was trained on, measured at some
    point of the search: a noisy and stale measure for the final pick. With ``final_rescore`` every
    leaderboard path is re-measured with the final weights on the same ``final_score_images``
    labelled training images (the first ones the search sees, kept as checkpoint state) before the
    best is returned: the same final re-scoring Cream's board gets, so that the two compare fairly.
    A measurement uses batch-statistics BatchNorm in chunks of ``score_images`` images (the
    supernet's running statistics mix every path) and leaves the running statistics untouched.

    Args:
        seed: seeds the path sampler.
        leaderboard_size: the number of best paths kept (by batch accuracy).
        flops_range: ``[low, high]`` FLOPs of the paths sampled (``cost(architecture)["flops"]``).
        max_resample: samples tried per step to find a path inside ``flops_range``.
        final_rescore: re-measure the leaderboard on the scoring set before picking the final path.
        score_images: images per measurement chunk (and the scoring set's size without ``final_rescore``).
        final_score_images: images of the final re-measurement; default ``score_images``.
    """

    needs_supernet = True

    def __init__(self, seed: int = 0, leaderboard_size: int = 10, flops_range: tuple[float, float] | None = None,
                 max_resample: int = 1000, final_rescore: bool = False, score_images: int = 256,
                 final_score_images: int | None = None) -> None:
        super().__init__(seed)
        if flops_range is not None and (len(flops_range) != 2 or not 0 <= flops_range[0] <= flops_range[1]):
            raise NASFrameError(f"flops_range must be [low, high] with 0 <= low <= high, got {list(flops_range)}")
        if score_images < 1:
            raise NASFrameError(f"{type(self).__name__} score_images must be >= 1, got {score_images}")
        self.leaderboard_size = leaderboard_size
        self.flops_range = tuple(flops_range) if flops_range is not None else None
        self.max_resample = max_resample
        self.leaderboard: list[tuple[float, Architecture]] = []
        self.last_architecture: Architecture | None = None
        self.final_rescore = final_rescore
        self.score_images = score_images
        self.final_score_images = max(score_images, final_score_images or score_images)
        # the scoring set: labelled training images collected from the first batches (checkpoint state)
        self.score_inputs: torch.Tensor | None = None
        self.score_targets: torch.Tensor | None = None

    def propose(self, nas: NASModule) -> Architecture:
        """A uniform sample; with ``flops_range``, uniform among the paths inside it (rejection sampling)."""
        for _ in range(self.max_resample):
            architecture = nas.hook.nasframe_sample_architecture(generator=self.generator)
            if self.within_flops_range(nas, architecture):
                return architecture
        raise NASFrameError(f"no path within flops_range {list(self.flops_range)} in {self.max_resample} samples; "
                            "widen the range (the space's flops(architecture) gives the FLOPs of a path)")

    def within_flops_range(self, nas: NASModule, architecture: Architecture) -> bool:
        if self.flops_range is None:
            return True
        flops = architecture_cost(nas, architecture, f"{type(self).__name__} flops_range")["flops"]
        return self.flops_range[0] <= flops <= self.flops_range[1]

    def before_loss(self, nas: NASModule, step: SearchStep) -> None:
        """Hook for subclasses: fill ``step.extras`` / ``step.term_weights`` before the loss."""

    def after_step(self, nas: NASModule, step: SearchStep, loss: torch.Tensor) -> None:
        """Hook for subclasses, after the weight update (``step.logits`` are from before it)."""
        if self.needs_score_set and (self.score_inputs is None or len(self.score_inputs) < self._collect_images):
            self._collect_score_set(nas, step)
        accuracy = nas.batch_accuracy(step)
        nas.hook.nasframe_search_record(nas=nas, record={"kind": "path", "architecture": nas.search_space.format(step.architecture),
                                                         "accuracy": accuracy})  # for the run record
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

    # ---- the scoring set -------------------------------------------------------------------------
    @property
    def needs_score_set(self) -> bool:
        """Whether the search collects a scoring set (subclasses that measure paths on it extend this)."""
        return self.final_rescore

    @property
    def score_set_ready(self) -> bool:
        return self.score_inputs is not None and len(self.score_inputs) >= self.score_images

    @property
    def _collect_images(self) -> int:
        return self.final_score_images if self.final_rescore else self.score_images

    def _collect_score_set(self, nas: NASModule, step: SearchStep) -> None:
        """Append this batch's labelled images to the scoring set (rank 0's, on every rank)."""
        mask = step.labelled
        if mask is None:
            return
        inputs, targets = nas.broadcast((step.views[0][mask].detach().clone(), step.targets[mask].detach().clone()))
        if self.score_inputs is not None:
            inputs = torch.cat([self.score_inputs.to(inputs.device), inputs])
            targets = torch.cat([self.score_targets.to(targets.device), targets])
        self.score_inputs, self.score_targets = inputs[: self._collect_images], targets[: self._collect_images]

    @torch.no_grad()
    def score(self, nas: NASModule, architecture: Architecture, images: int | None = None) -> float:
        """Top-1 accuracy (%) of ``architecture`` on the first ``images`` (default ``score_images``) of
        the scoring set with the current weights.

        BatchNorm uses batch statistics of chunks of ``score_images`` images (the supernet's running
        statistics mix all paths); the running statistics are restored afterwards, so scoring leaves
        no trace."""
        if self.score_inputs is None:
            raise NASFrameError(f"{type(self).__name__} has no scoring set yet (it is collected from the first training batches)")
        supernet = nas.supernet
        device = next(supernet.parameters()).device
        count = min(images or self.score_images, len(self.score_inputs))
        correct = torch.zeros((), device=device)
        with buffers_restored(supernet):
            supernet.train()
            for start in range(0, count, self.score_images):
                end = min(count, start + self.score_images)
                logits = supernet(self.score_inputs[start:end].to(device), architecture)
                correct += (logits.argmax(1) == self.score_targets[start:end].to(device)).sum()
        return float(nas.all_ranks_mean(correct / count * 100.0))

    # ---- decisions -------------------------------------------------------------------------------
    def current_architecture(self, nas: NASModule) -> Architecture:
        if self.leaderboard:
            return self.leaderboard[0][1]
        if self.last_architecture is None:  # before the first step: a fixed path for validation
            self.last_architecture = nas.hook.nasframe_sample_architecture(generator=torch.Generator().manual_seed(self.seed))
        return self.last_architecture

    def final_architecture(self, nas: NASModule) -> Architecture:
        if self.final_rescore and self.leaderboard and self.score_set_ready and nas.supernet is not None:
            rescored = [(self.score(nas, architecture, self.final_score_images), architecture)
                        for _, architecture in self.leaderboard]
            self.leaderboard = sorted(rescored, key=lambda entry: -entry[0])  # stable: ties keep their batch order
        return self.current_architecture(nas)

    # ---- checkpoint ------------------------------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        scoring_set = {} if self.score_inputs is None else {"score_inputs": self.score_inputs.cpu(),
                                                            "score_targets": self.score_targets.cpu()}
        return {
            "leaderboard_scores": [score for score, _ in self.leaderboard],
            "leaderboard": architectures_to_state([arch for _, arch in self.leaderboard]),
            "last_architecture": architectures_to_state([self.last_architecture] if self.last_architecture else []),
            **scoring_set,
        }

    def load_search_state(self, state: dict[str, Any]) -> None:
        self.leaderboard = list(zip(state["leaderboard_scores"], architectures_from_state(state["leaderboard"])))
        last = architectures_from_state(state["last_architecture"])
        self.last_architecture = last[0] if last else None
        self.score_inputs, self.score_targets = state.get("score_inputs"), state.get("score_targets")
