"""Differentiable (bi-level) search: architecture parameters with their own optimizer."""

from __future__ import annotations

import itertools
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasframe.errors import NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import CategoricalSearchSpace
from nasframe.strategies.base import SearchStrategy

if TYPE_CHECKING:
    from nasframe.module import NASModule


class DifferentiableStrategy(SearchStrategy):
    """Alternates weight steps and architecture-parameter steps (DARTS-style bi-level search).

    Batches come as ``{"weights": batch, "architecture": batch}`` (``NASDataModule`` with an
    architecture split) or as a single batch used for both. Each step updates the supernet's
    weights on ``relaxation(nas, "train")``; every ``architecture_every`` steps the architecture
    parameters (owned by the subclass, optimized by ``"architecture"``) take a step on the
    architecture batch with the same objectives. Subclasses define the parameters, the relaxation
    passed to the supernet as ``arch``, and how the final architecture is derived.
    """

    needs_supernet = True

    def __init__(self, seed: int = 0, architecture_every: int = 1, architecture_lr: float = 3e-4,
                 architecture_betas: tuple[float, float] = (0.5, 0.999), architecture_weight_decay: float = 1e-3) -> None:
        super().__init__(seed)
        self.architecture_every = architecture_every
        self._adam_args = dict(lr=architecture_lr, betas=tuple(architecture_betas), weight_decay=architecture_weight_decay)
        self.step_count = 0
        self._epoch_of_last_step: int | None = None  # the run record's final distribution is this epoch's

    @abstractmethod
    def architecture_parameters(self) -> list[torch.nn.Parameter]: ...

    @abstractmethod
    def relaxation(self, nas: NASModule, stage: str) -> Any:
        """What the supernet receives as ``arch`` for this step (mixture weights, sampled gates...)."""

    def updates_architecture(self, nas: NASModule, batch_idx: int) -> bool:
        return (self.step_count % self.architecture_every) == 0

    def after_architecture_step(self, nas: NASModule) -> None:
        """Hook for subclasses, after each architecture update (e.g. rescaling parameters)."""

    def configure_optimizers(self, nas: NASModule) -> dict[str, Any]:
        return {"architecture": torch.optim.Adam(self.architecture_parameters(), **self._adam_args)}

    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> torch.Tensor:
        if isinstance(batch, dict):
            if set(batch) != {"weights", "architecture"}:
                raise NASFrameError(f"a bi-level batch has keys 'weights' and 'architecture', got {sorted(batch)}")
            weights_batch, architecture_batch = batch["weights"], batch["architecture"]
        else:
            weights_batch = architecture_batch = batch
        if batch_idx == 0 and nas.current_epoch > 0:  # the distribution the previous epoch ended with
            self.record_distribution(nas, nas.current_epoch - 1)
        self._epoch_of_last_step = nas.current_epoch
        weights_opt, architecture_opt = nas.optimizer("weights"), nas.optimizer("architecture")

        weights_opt.zero_grad(set_to_none=True)
        loss = nas.compute_loss(nas.new_step(weights_batch, self.relaxation(nas, "train"), stage="train"))
        nas.manual_backward(loss)
        weights_opt.step()

        if self.updates_architecture(nas, batch_idx):
            architecture_opt.zero_grad(set_to_none=True)
            weights_opt.zero_grad(set_to_none=True)
            step = nas.new_step(architecture_batch, self.relaxation(nas, "architecture"), stage="architecture")
            nas.manual_backward(nas.compute_loss(step))
            architecture_opt.step()
            weights_opt.zero_grad(set_to_none=True)  # the architecture step must not leak into weights
            self.after_architecture_step(nas)
        self.step_count += 1
        return loss.detach()

    # ---- the distribution over operations, for the run record -------------------------------------
    def distribution(self, nas: NASModule) -> dict[str, Any] | None:
        """The probability of each operation per edge: ``{"edges": [name, ...], "ops": [name, ...],
        "probabilities": [[p, ...], ...]}``, one row per edge; ``None`` records nothing.

        Default: the softmax over the last dimension of each architecture parameter, edges named by
        their index (``"cell.edge"`` for a parameter of more dimensions), operations by the space's
        choices where every position of a categorical space offers the same ones (NB-201), else
        ``op0``, ``op1``... Override to name them otherwise."""
        parameters = self.architecture_parameters()
        sizes = {p.shape[-1] for p in parameters}
        if len(sizes) != 1:
            return None
        size = sizes.pop()
        ops = [f"op{i}" for i in range(size)]
        if isinstance(nas.search_space, CategoricalSearchSpace):
            positions = [tuple(c) for c in nas.search_space.position_choices()]
            if positions and len(set(positions)) == 1 and len(positions[0]) == size:
                ops = [str(c) for c in positions[0]]
        edges, rows = [], []
        for k, parameter in enumerate(parameters):
            probabilities = parameter.detach().float().softmax(-1).cpu()
            indices = itertools.product(*(range(n) for n in probabilities.shape[:-1]))
            for index, row in zip(indices, probabilities.reshape(-1, size).tolist()):
                name = ".".join(map(str, index)) or "0"
                edges.append(f"{k}:{name}" if len(parameters) > 1 else name)
                rows.append(row)
        return {"edges": edges, "ops": ops, "probabilities": rows}

    def record_distribution(self, nas: NASModule, epoch: int) -> None:
        """Report ``distribution`` as epoch ``epoch``'s (``nasframe_search_record``, kind ``"distribution"``)."""
        distribution = self.distribution(nas)
        if distribution is not None:
            nas.hook.nasframe_search_record(nas=nas, record={"kind": "distribution", "epoch": epoch, **distribution})

    @hookimpl(specname="nasframe_search_end")
    def _record_final_distribution(self, nas: NASModule, architecture: Architecture, export_dir: Path | None) -> None:
        epoch = self._epoch_of_last_step  # None: a resumed search that had no step left
        self.record_distribution(nas, epoch if epoch is not None else max(nas.current_epoch - 1, 0))

    def search_state(self) -> dict[str, Any]:
        return {"step_count": self.step_count}

    def load_search_state(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step_count"])

    @abstractmethod
    def current_architecture(self, nas: NASModule) -> Architecture:
        """The discrete architecture derived from the current parameters."""
