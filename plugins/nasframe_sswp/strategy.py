"""SSWP-NAS search strategy: binary-gate (or DARTS-mixture) search on the DARTS supernet with a
warm-up / search / progressive-pruning schedule. The objective is whatever the config gives (the
paper's: SimCLR, no labels); the strategy never looks at targets."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from nasframe.errors import NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.capabilities import CellParameterSpace, require_protocol
from nasframe.spaces.darts import EDGE_INDEX, OPERATIONS, PathWeights
from nasframe.strategies import DifferentiableStrategy

from nasframe_sswp.gates import GateSample, binary_gates, rescale_, single_paths
from nasframe_sswp.schedule import Schedule

if TYPE_CHECKING:
    from nasframe.module import NASModule

PHASE_NAMES = {"warmup": "warm-up", "search": "search", "prune": "pruning"}


class SSWPStrategy(DifferentiableStrategy):
    """Self-supervised, weight-preserving one-stage search (SSWP-NAS) on ``DARTSSpace``.

    Args:
        seed: seeds every sampling decision (identical on every rank and after a resume).
        relaxation: ``"binary_gates"`` (the paper: ``paths`` ops per edge in memory, one active) or
            ``"mixture"`` (DARTS's continuous relaxation, all 7 ops weighted; for comparison).
        paths: operations sampled per edge in an architecture step of ``binary_gates``.
        architecture_every: one architecture step every this many weight steps (on the
            datamodule's architecture split when it has one).
        architecture_lr, architecture_betas, architecture_weight_decay: Adam for alpha. beta1 = 0
            keeps unsampled ops still: their gradient is 0 and no momentum moves them.
        warmup, search: fractions of the weight steps (the rest prunes progressively).
        total_steps: weight steps of the whole search; default: the most that the trainer's
            ``max_epochs`` (epochs x batches) and ``max_steps`` (which counts architecture steps
            too) both allow. The search stops when its schedule ends; a trainer that stops before
            (``max_time``, an interruption, a ``max_steps`` below a given ``total_steps``) fails the
            search with a ``NASFrameError`` naming the phase that was cut: a cut schedule is no result.
        prune_order: which cell freezes next: ``"confidence"`` (highest mean best-op probability
            first) or ``"sequential"`` (input to output).
        rescale: after each architecture step, restore the sampled ops' total exp-mass per edge.
    """

    def __init__(self, seed: int = 0, relaxation: Literal["binary_gates", "mixture"] = "binary_gates", paths: int = 2,
                 architecture_every: int = 5, architecture_lr: float = 1e-3,
                 architecture_betas: tuple[float, float] = (0.0, 0.999), architecture_weight_decay: float = 0.0,
                 warmup: float = 0.2, search: float = 0.4, total_steps: int | None = None,
                 prune_order: Literal["confidence", "sequential"] = "confidence", rescale: bool = True) -> None:
        super().__init__(seed, architecture_every, architecture_lr, architecture_betas, architecture_weight_decay)
        if relaxation not in ("binary_gates", "mixture"):
            raise ValueError(f"SSWPStrategy: relaxation must be 'binary_gates' or 'mixture', got {relaxation!r}")
        if prune_order not in ("confidence", "sequential"):
            raise ValueError(f"SSWPStrategy: prune_order must be 'confidence' or 'sequential', got {prune_order!r}")
        if architecture_every < 1:
            raise ValueError(f"SSWPStrategy: architecture_every must be >= 1, got {architecture_every}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"SSWPStrategy: total_steps must be a positive integer or null, got {total_steps}")
        self.mode = relaxation
        self.paths = paths
        self.schedule = Schedule(warmup, search)
        self.total_steps = total_steps
        self.prune_order = prune_order
        self.rescale = rescale
        self.frozen: dict[int, tuple] = {}  # cell index -> its genes, fixed by pruning
        self.alpha: nn.Parameter | None = None
        self.op_steps: torch.Tensor | None = None  # (cells, edges, ops): weight steps in which each op was on the path
        self._space: Any = None
        self._resolved_total: int | None = None
        self._pending: GateSample | None = None

    # ---- setup ------------------------------------------------------------------------------
    def setup(self, nas: NASModule) -> None:
        space = nas.search_space
        require_protocol(space, CellParameterSpace, "parameter_shape", "SSWPStrategy (per-cell DARTS parameters)")
        self._space = space
        if self.alpha is None:
            self.alpha = nn.Parameter(torch.zeros(space.parameter_shape))
        if self.op_steps is None:
            self.op_steps = torch.zeros(space.parameter_shape, dtype=torch.long)

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alpha]

    def distribution(self, nas: NASModule) -> dict[str, Any] | None:
        """softmax(alpha) per cell and edge, named ``c<cell> <from>-><to>`` (DARTS nodes: 0, 1 the
        cell's inputs, 2-5 its own), for the run record."""
        distribution = super().distribution(nas)
        if distribution is not None:
            edges = [f"c{c} {source}->{node + 2}" for c in range(self.alpha.shape[0]) for node, source in EDGE_INDEX]
            distribution.update(edges=edges, ops=list(OPERATIONS))
        return distribution

    # ---- schedule -----------------------------------------------------------------------------
    def total(self, nas: NASModule) -> int:
        """Weight steps of the whole search (resolved once from the trainer, then kept)."""
        if self.total_steps is not None:
            return self.total_steps
        if self._resolved_total is None:
            limits = nas.search_limits()
            candidates = []
            batches = limits.batches_per_epoch
            if limits.max_epochs is not None and batches is not None and math.isfinite(batches):
                candidates.append(int(limits.max_epochs * batches))
            if limits.max_steps is not None:
                candidates.append(self.schedule.total_within(limits.max_steps, self._space.cells, self.architecture_every))
            if not candidates:
                raise NASFrameError("SSWPStrategy needs the search length: set trainer max_epochs or max_steps, "
                                    "or the strategy's total_steps")
            self._resolved_total = max(1, min(candidates))
        return self._resolved_total

    def phase(self, nas: NASModule) -> str:
        return self.schedule.phase(self.step_count, self.total(nas))

    def _known_total(self) -> int | None:
        """The schedule's length if it is known without a trainer (given, or resolved by a run)."""
        return self.total_steps if self.total_steps is not None else self._resolved_total

    def schedule_report(self) -> dict[str, int]:
        """Weight steps done per phase, of how many planned, and the frozen cells."""
        total = self._known_total() or 0
        done = self.schedule.steps_per_phase(self.step_count, total)
        planned = self.schedule.steps_per_phase(total, total)
        return {**{f"{phase}_steps": done[phase] for phase in done}, **{f"{phase}_planned": planned[phase] for phase in planned},
                "frozen_cells": len(self.frozen), "cells": self._space.cells if self._space is not None else 0,
                **self.chosen_op_steps()}

    def chosen_op_steps(self) -> dict[str, float]:
        """How many weight steps trained the ops the search keeps (mean and least over the chosen
        (cell, edge, op)): the training their concomitant weights got, against ``step_count`` for
        a network trained alone. Single-path weight steps share the steps among the 7 ops of an edge."""
        if self.op_steps is None or self._space is None or not self.op_steps.any():
            return {}
        steps = [int(self.op_steps[cell, EDGE_INDEX[(g // 2, source)], OPERATIONS.index(op)])
                 for cell, genes in enumerate(self._derived_cells()) for g, (op, source) in enumerate(genes)]
        return {"chosen_op_steps_mean": sum(steps) / len(steps), "chosen_op_steps_min": min(steps)}

    def _derived_cells(self) -> tuple:
        return tuple(self.frozen.get(c) or self._space.derive_cell(self.alpha[c]) for c in range(self._space.cells))

    def check_complete(self) -> None:
        """Raise a ``NASFrameError`` naming the phase that was cut when the schedule has not run to its end."""
        total = self._known_total()
        if total is not None and self.step_count >= total:
            return
        done = self.schedule_report()
        phase = PHASE_NAMES[self.schedule.phase(self.step_count, total)] if total else "warm-up"
        steps = ", ".join(f"{PHASE_NAMES[p]} {done[p + '_steps']}/{done[p + '_planned']}" for p in PHASE_NAMES)
        raise NASFrameError(
            f"the SSWP schedule was cut in its {phase} phase: {self.step_count} of {total or '?'} weight steps done "
            f"({steps}; {done['frozen_cells']} of {done['cells']} cells frozen). "
            "The trainer stopped before the schedule ended (max_time, max_steps, or an interruption): resume with "
            "--ckpt_path last, or give the search a length it can finish (trainer max_epochs/max_steps, or the "
            "strategy's total_steps); its architecture is not a search result")

    def _freeze_due_cells(self, nas: NASModule) -> None:
        due = self.schedule.frozen_cells(self.step_count, self.total(nas), self._space.cells)
        while len(self.frozen) < due:
            open_cells = [c for c in range(self._space.cells) if c not in self.frozen]
            if self.prune_order == "sequential":
                cell = open_cells[0]
            else:
                confidence = self.alpha.detach().softmax(-1).amax(-1).mean(-1)
                cell = max(open_cells, key=lambda c: (float(confidence[c]), -c))
            self.frozen[cell] = self._space.derive_cell(self.alpha[cell])

    def _frozen_paths(self) -> PathWeights | None:
        """One-hot weights of the frozen cells' chosen (edge, op) pairs, and their mask."""
        if not self.frozen:
            return None
        active = torch.zeros(self.alpha.shape, dtype=torch.bool)
        for cell, genes in self.frozen.items():
            for g, (op, source) in enumerate(genes):
                active[cell, EDGE_INDEX[(g // 2, source)], OPERATIONS.index(op)] = True
        active = active.to(self.alpha.device)
        return PathWeights(active.to(self.alpha.dtype), active)

    def _with_frozen(self, paths: PathWeights) -> PathWeights:
        frozen = self._frozen_paths()
        if frozen is None:
            return paths
        mask = torch.zeros(self.alpha.shape[0], 1, 1, dtype=torch.bool, device=self.alpha.device)
        mask[list(self.frozen)] = True
        detached = paths.detached if paths.detached is not None else torch.zeros_like(paths.active)
        return PathWeights(torch.where(mask, frozen.weights, paths.weights), torch.where(mask, frozen.active, paths.active),
                           detached & ~mask)

    # ---- the bi-level loop ----------------------------------------------------------------------
    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> torch.Tensor:
        self._freeze_due_cells(nas)
        loss = super().search_step(nas, batch, batch_idx)
        nas.log_metrics({"search/frozen_cells": float(len(self.frozen)),
                         "search/alpha_confidence": float(self.alpha.detach().softmax(-1).amax(-1).mean())})
        if self.step_count >= self.total(nas):
            nas.stop_search()  # the schedule is complete; steps beyond it would only train the derived network
        return loss

    def updates_architecture(self, nas: NASModule, batch_idx: int) -> bool:
        return (self.phase(nas) != "warmup" and len(self.frozen) < self._space.cells
                and self.step_count % self.architecture_every == 0)

    def relaxation(self, nas: NASModule, stage: str) -> PathWeights:
        if self.mode == "mixture":
            weights = self.alpha.softmax(-1)
            weights = weights if stage == "architecture" else weights.detach()
            return self._with_frozen(PathWeights(weights, torch.ones_like(weights, dtype=torch.bool)))
        if stage == "architecture":
            paths, self._pending = binary_gates(self.alpha, self.generator, self.paths)
            return self._with_frozen(paths)
        # weight step: one path per edge, uniform in the warm-up, then from softmax(alpha)
        probs = torch.ones_like(self.alpha) if self.phase(nas) == "warmup" else self.alpha.detach().softmax(-1)
        paths = self._with_frozen(single_paths(probs, self.generator))
        self.op_steps += paths.active.cpu().long()
        return paths

    def after_architecture_step(self, nas: NASModule) -> None:
        if self.mode == "binary_gates" and self.rescale and self._pending is not None:
            rescale_(self.alpha, self._pending)
        self._pending = None

    # ---- result -------------------------------------------------------------------------------
    def final_architecture(self, nas: NASModule) -> Architecture:
        self.check_complete()
        return self.current_architecture(nas)

    @hookimpl(specname="nasframe_search_report")
    def report(self, nas: NASModule) -> dict[str, float]:
        """Steps done per phase and cells frozen, for the summary and the loggers."""
        done = self.schedule_report()
        keys = ("warmup_steps", "search_steps", "prune_steps", "frozen_cells", "chosen_op_steps_mean", "chosen_op_steps_min")
        return {f"schedule/{key}": float(done[key]) for key in keys if key in done}

    def current_architecture(self, nas: NASModule) -> Architecture:
        return self._space.validate(Architecture(self._space.name, self._derived_cells()))

    # ---- checkpoint state beyond alpha -----------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        return {**super().search_state(),
                "frozen": {str(c): [list(g) for g in genes] for c, genes in self.frozen.items()},
                "op_steps": self.op_steps.clone() if self.op_steps is not None else torch.zeros(0, dtype=torch.long),
                "resolved_total": self._resolved_total if self._resolved_total is not None else -1}

    def load_search_state(self, state: dict[str, Any]) -> None:
        super().load_search_state(state)
        self.frozen = {int(c): tuple((str(op), int(i)) for op, i in genes) for c, genes in state.get("frozen", {}).items()}
        if "op_steps" in state and state["op_steps"].numel() and self.op_steps is not None:
            self.op_steps.copy_(state["op_steps"])
        total = int(state.get("resolved_total", -1))
        self._resolved_total = total if total > 0 else None
