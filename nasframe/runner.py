"""``SearchRunner``: a search on one process without a Lightning Trainer.

For what a Trainer would only slow down: benchmarks that run a sample-based search over many seeds
on a tabular benchmark, notebooks, tests. The runner is a :class:`nasframe.SearchHost`, registers
plugins and collects optimizers exactly as ``NASModule`` does (``nasframe.plugins.make_plugin_manager``,
``nasframe.host.collect_optimizers``), and calls the strategy's ``nasframe_search_step`` until the
strategy stops the search, as ``NASModule.training_step`` does under a Trainer. So the same strategy
code gives the same architectures under both hosts.

    from nasframe.runner import run_search
    final = run_search(NB201Space(), RandomSearch(TabularEvaluator(NB201Benchmark(path)), budget=100))

What it does not do: checkpoints, loggers (``runner.metrics`` keeps the last value of each logged
name), DDP, data loading (every step receives the same ``batch``), learning-rate schedulers, export.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import nn

from nasframe.errors import NASFrameError
from nasframe.host import (SearchLimits, check_finite_loss, collect_optimizers, raw_optimizer_of, seeded_generator,
                           weighted_loss_terms)
from nasframe.objectives import CrossEntropy
from nasframe.plugins import NASPluginManager, make_plugin_manager, search_components
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace
from nasframe.step import SearchStep, new_step
from nasframe.strategies.base import SearchStrategy

__all__ = ["SearchRunner", "run_search"]


class _CountedOptimizer:
    """A torch optimizer whose ``step()`` counts one ``global_step``, as Lightning's wrapper does;
    everything else is the optimizer's own (``.optimizer`` is the optimizer itself)."""

    def __init__(self, optimizer: torch.optim.Optimizer, runner: SearchRunner) -> None:
        self.optimizer = optimizer
        self._runner = runner

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        result = self.optimizer.step(closure)
        self._runner.global_step += 1
        return result

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


class SearchRunner:
    """A :class:`nasframe.SearchHost` on one process with no Trainer (see the module docstring).

    Args:
        search_space, strategy: as for ``NASModule``; strategies that need a supernet get one
            (``nasframe_build_supernet``), trained by the ``"weights"`` optimizer when the strategy
            trains weights.
        objectives: loss-term contributors for ``compute_loss``; default ``[CrossEntropy()]``.
        plugins: entry-point plugin names that must be present and plugin objects, as for ``NASModule``.
        optimizer: the supernet/heads weight optimizer factory; default SGD (``nasframe.host.default_weight_optimizer``).
        device: where the supernet, the strategy, the objectives and the batch live.
    """

    def __init__(self, search_space: SearchSpace, strategy: SearchStrategy, objectives: Sequence[nn.Module] | None = None,
                 plugins: Sequence[Any] = (), optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.search_space = search_space
        self.strategy = strategy
        self.objectives = list(objectives) if objectives is not None else [CrossEntropy()]
        self.plugin_manager: NASPluginManager = make_plugin_manager(
            search_components(search_space, strategy, self.objectives), plugins)
        self._device = torch.device(device)
        self.global_step = 0  # optimizer steps, as Lightning counts them
        self.steps = 0  # search steps run
        self.stopped = False
        self.metrics: dict[str, float] = {}  # the last value of each name logged
        self._max_steps: int | None = None
        self.supernet: nn.Module | None = None
        if strategy.needs_supernet:
            self.supernet = self.hook.nasframe_build_supernet().to(self._device)
        self.hook.nasframe_setup(nas=self)
        for module in (strategy, *self.objectives):  # after setup, which may create parameters (as Lightning does)
            if isinstance(module, nn.Module):
                module.to(self._device)
        weights = [p for module in (self.supernet, *self.objectives) if isinstance(module, nn.Module)
                   for p in module.parameters() if p.requires_grad]
        configured = collect_optimizers(self, self.plugin_manager, weights, optimizer)
        unstepped = [name for name, value in configured.items() if isinstance(value, dict) and value.get("lr_scheduler")]
        if unstepped:
            warnings.warn(f"SearchRunner steps no learning-rate scheduler (it runs no epochs); the schedulers of "
                          f"optimizers {unstepped} stay at their initial learning rate", UserWarning, stacklevel=2)
        self._optimizers = {name: _CountedOptimizer(raw_optimizer_of(value), self) for name, value in configured.items()}

    # ---- the search ---------------------------------------------------------------------------
    def run(self, batch: Any = None, max_steps: int = 100_000) -> Architecture:
        """Call the strategy's ``search_step`` with ``batch`` (moved to ``device``) until it stops the
        search or ``max_steps`` search steps have run; return the final architecture (validated)
        after calling ``nasframe_search_end`` with ``export_dir=None``."""
        if max_steps < 1:
            raise NASFrameError(f"max_steps must be at least 1, got {max_steps}")
        self._max_steps = max_steps
        batch = move_data_to_device(batch, self._device)
        while self.steps < max_steps and not self.stopped:
            self.hook.nasframe_search_step(nas=self, batch=batch, batch_idx=self.steps)
            self.steps += 1
            if not self._optimizers:  # nothing to train: each search step counts, as under NASModule
                self.global_step += 1
        architecture = self.decide()
        self.hook.nasframe_search_end(nas=self, architecture=architecture, export_dir=None)
        return architecture

    def decide(self) -> Architecture:
        """The strategy's final architecture, validated by the space."""
        architecture = self.hook.nasframe_final_architecture(nas=self)
        if architecture is None:
            raise NASFrameError(f"{type(self.strategy).__name__} returned no final architecture "
                                "(did the search evaluate anything it could score?)")
        return self.search_space.validate(architecture)

    # ---- SearchHost ---------------------------------------------------------------------------
    @property
    def hook(self) -> Any:
        return self.plugin_manager.hook

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def current_epoch(self) -> int:
        return 0

    @property
    def is_global_zero(self) -> bool:
        return True

    @property
    def world_size(self) -> int:
        return 1

    @property
    def datamodule(self) -> None:
        return None

    def search_limits(self) -> SearchLimits:
        """One "epoch" of ``max_steps`` search steps (unknown before ``run``)."""
        if self._max_steps is None:
            return SearchLimits(None, None, None)
        return SearchLimits(None, 1, float(self._max_steps))

    def new_step(self, batch: Any, architecture: Any, stage: str = "train", network: nn.Module | None = None) -> SearchStep:
        return new_step(self.supernet, batch, architecture, stage, network)

    def compute_loss(self, step: SearchStep, log: bool = True) -> torch.Tensor:
        terms, total = weighted_loss_terms(self.plugin_manager, step)
        if total is None:
            names = [type(o).__name__ for o in self.objectives]
            labels = "no labels" if step.targets is None else f"{int(step.labelled.sum())} labelled"
            raise NASFrameError(f"no objective produced a loss for this {step.stage} batch ({len(step.views)} view(s), "
                                f"{labels}); objectives: {names}. Self-supervised objectives need two views, supervised "
                                "ones need labels.")
        check_finite_loss(total, terms, step.stage, self.global_step)
        if log:
            self.log_metrics({**{f"{step.stage}/{name}": float(value.detach()) for name, value in terms.items()},
                              f"{step.stage}/loss": float(total.detach())})
        return total

    def manual_backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer(self, name: str) -> Any:
        if name not in self._optimizers:
            raise NASFrameError(f"no optimizer named {name!r}; configured: {list(self._optimizers)}")
        return self._optimizers[name]

    def raw_optimizer(self, name: str) -> torch.optim.Optimizer:
        return self.optimizer(name).optimizer

    def count_step(self, name: str | None = None) -> None:
        if name is not None:
            self.optimizer(name)  # an unknown name fails as it would under a Trainer
        self.global_step += 1

    def batch_accuracy(self, step: SearchStep) -> float | None:
        mask = step.labelled
        if mask is None or not bool(mask.any()):
            return None
        correct = (step.logits(0).detach()[mask].argmax(1) == step.targets[mask]).sum()
        return float(correct) / int(mask.sum()) * 100.0

    def all_ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        return value

    def broadcast(self, value: Any) -> Any:
        return value

    def map_across_ranks(self, items: Sequence[Any], score: Callable[[list[Any]], torch.Tensor]) -> torch.Tensor:
        return score(list(items)).double().cpu()

    def log_metrics(self, metrics: dict[str, float], prog_bar: bool = False) -> None:
        self.metrics.update({name: float(value) for name, value in metrics.items()})

    def stop_search(self) -> None:
        self.stopped = True

    def generator_for(self, architecture: Architecture, salt: str = "", device: torch.device | str | None = None) -> torch.Generator:
        return seeded_generator(getattr(self.strategy, "seed", 0), architecture, salt, device)


def run_search(search_space: SearchSpace, strategy: SearchStrategy, batch: Any = None, plugins: Sequence[Any] = (),
               max_steps: int = 100_000, **runner_args: Any) -> Architecture:
    """Run ``strategy`` on ``search_space`` with no Trainer until it stops (a sample-based strategy:
    its budget is spent) or ``max_steps`` search steps have run, and return its final architecture;
    a sample-based strategy's evaluated architectures and scores are in ``strategy.history``.
    ``batch`` is handed to every step (tabular evaluators ignore it); ``runner_args`` go to
    ``SearchRunner`` (``objectives``, ``optimizer``, ``device``)."""
    return SearchRunner(search_space, strategy, plugins=plugins, **runner_args).run(batch, max_steps)
