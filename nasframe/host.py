"""``SearchHost``: everything strategies, evaluators and observers may use of the ``nas`` object.

Every hook that takes ``nas`` receives a search host: :class:`nasframe.NASModule` under a Lightning
Trainer (one process or DDP), or :class:`nasframe.runner.SearchRunner` (one process, no Trainer:
benchmarks over many seeds, notebooks, tests). A plugin that uses only the members declared here
runs under both hosts, and keeps working when either changes. Anything else on ``nas`` (Lightning's
own attributes, names starting with ``_``) is not part of the contract and may change.

Who may call what:

* **strategies** (inside their hooks: ``nasframe_setup``, ``nasframe_configure_optimizers``,
  ``nasframe_search_step``, ...): every member. Optimizers exist from the first ``search_step`` on.
* **evaluators** (inside ``Evaluator.score``): the read-only members (``search_space``,
  ``supernet``, ``device``, ``hook``, the rank and step counters), ``generator_for`` and
  ``log_metrics``. Collective members (``all_ranks_mean``, ``broadcast``, ``map_across_ranks``,
  ``batch_accuracy``) are off limits there: under DDP each rank scores its own share of the
  candidates, so a collective call would wait for ranks that never make it.
* **observers** (``nasframe_candidates_evaluated``, ``nasframe_search_record``,
  ``nasframe_search_report``, ``nasframe_search_end``): the read-only members and ``log_metrics``.
* **objectives** receive a :class:`nasframe.SearchStep`, not the host.

Shared machinery both hosts use (optimizer collection, the weighted loss, per-architecture seeds)
lives below the protocol, so that the two cannot drift apart.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import torch

from nasframe.errors import NASFrameError

if TYPE_CHECKING:
    from torch import nn

    from nasframe.plugins import NASPluginManager
    from nasframe.spaces.architecture import Architecture
    from nasframe.spaces.base import SearchSpace
    from nasframe.step import SearchStep
    from nasframe.strategies.base import SearchStrategy

__all__ = ["SearchHost", "SearchLimits", "architecture_seed", "collect_optimizers", "weighted_loss_terms"]


class SearchLimits(NamedTuple):
    """How long the run may go on, as far as the host knows (``None``: unbounded or unknown).

    ``max_steps`` counts in ``global_step`` units (optimizer steps, see ``SearchHost.count_step``);
    ``max_epochs`` times ``batches_per_epoch`` is the number of search steps (training batches)."""

    max_steps: int | None
    max_epochs: int | None
    batches_per_epoch: float | None


@runtime_checkable
class SearchHost(Protocol):
    """What the ``nas`` argument of every hook offers (see the module docstring for who may call what).

    Implemented by ``NASModule`` and ``SearchRunner``; ``isinstance(nas, SearchHost)`` checks that
    an object has every member."""

    #: The hook caller: ``nas.hook.nasframe_<name>(**kwargs)`` calls every plugin's implementation.
    hook: Any
    #: The space searched (also a registered plugin).
    search_space: SearchSpace
    #: The weight-sharing supernet, or ``None`` when the strategy needs none (``needs_supernet``).
    supernet: nn.Module | None
    #: The search strategy (also a registered plugin).
    strategy: SearchStrategy

    @property
    def device(self) -> torch.device:
        """Where the supernet, the strategy's parameters and the step's batch live. Evaluators and
        strategies run their computations here (``unpack_batch(batch, nas.device)`` moves inputs)."""

    @property
    def global_step(self) -> int:
        """Optimizer steps so far (Lightning's counter: every ``optimizer(name).step()`` and every
        ``count_step``). Read-only."""

    @property
    def current_epoch(self) -> int:
        """The training epoch (0 without a Trainer). Read-only."""

    @property
    def is_global_zero(self) -> bool:
        """Whether this process is global rank 0 (True on one process): the rank that exports,
        prints and writes files."""

    @property
    def world_size(self) -> int:
        """The number of processes running the search (1 without DDP)."""

    @property
    def datamodule(self) -> Any:
        """The run's datamodule, or ``None`` (a tabular search, a search without a Trainer)."""

    def search_limits(self) -> SearchLimits:
        """How long the run may go on (the Trainer's ``max_steps``/``max_epochs`` and batches per
        epoch), for strategies whose schedule depends on the search's length. Strategies, in
        ``search_step`` (the batches per epoch are known once training has started)."""

    def new_step(self, batch: Any, architecture: Any, stage: str = "train", network: nn.Module | None = None) -> SearchStep:
        """A :class:`SearchStep`: ``batch`` run by ``network`` (default the supernet) under
        ``architecture`` (whatever the network takes as ``arch``), for ``compute_loss`` and
        ``batch_accuracy``. ``stage`` is ``"train"``, ``"architecture"`` or ``"val"``. Strategies."""

    def compute_loss(self, step: SearchStep, log: bool = True) -> torch.Tensor:
        """The weighted loss of ``step``: the sum over every objective's ``nasframe_loss_terms`` of
        ``step.term_weights.get(name, 1.0) * term``. Raises a ``NASFrameError`` when no objective
        produced a term (e.g. no labels) or the loss is not finite. With ``log`` each term is logged
        as ``<stage>/<name>``; ``log=False`` is for auxiliary passes (a simulated inner step of
        meta-learning), which are neither logged nor counted. Strategies."""

    def manual_backward(self, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` (use it instead of ``loss.backward()``: under a Trainer it
        applies precision scaling and DDP's gradient synchronisation). Strategies."""

    def optimizer(self, name: str) -> Any:
        """The optimizer registered under ``name`` (``"weights"`` for the supernet and the
        objectives' heads, or one a plugin returned from ``nasframe_configure_optimizers``). Under a
        Trainer it is Lightning's wrapper: each ``step()`` counts one ``global_step``. An unknown
        name fails listing the configured ones. Strategies, from their first ``search_step``."""

    def raw_optimizer(self, name: str) -> torch.optim.Optimizer:
        """The ``torch.optim.Optimizer`` under ``name`` itself: its steps do not count as
        ``global_step`` (inner loops, meta-updates, predictor training). Strategies."""

    def count_step(self, name: str | None = None) -> None:
        """Count one step of optimizer ``name`` that updates nothing (a search step whose work
        went through ``raw_optimizer``, or a step with nothing to train), so that ``global_step``,
        ``max_steps`` and the checkpoint cadence count search steps. ``None``: the host's own
        counter (what a search with no optimizer uses). Strategies, once per ``search_step`` at most."""

    def batch_accuracy(self, step: SearchStep) -> float | None:
        """Top-1 accuracy (%) of ``step``'s logits on the labelled samples of every rank's batch
        together, ``None`` when no rank has a label. Collective: every rank must call it. Strategies."""

    def all_ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the ranks (``value`` itself on one process), so that decisions
        taken from it agree everywhere. Collective. Strategies."""

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (``value`` itself on one process): data a strategy
        stores, such as images. Collective. Strategies."""

    def map_across_ranks(self, items: Sequence[Any], score: Callable[[list[Any]], torch.Tensor]) -> torch.Tensor:
        """``score(items)`` with the items shared out between ranks; every rank receives all the
        scores in item order as a 1-D float64 CPU tensor. Collective. Strategies."""

    def log_metrics(self, metrics: dict[str, float], prog_bar: bool = False) -> None:
        """Log ``{name: number}`` at this step to the run's loggers (``prog_bar``: also show them on
        the progress bar). Safe with no Trainer: ``NASModule`` then logs nothing, ``SearchRunner``
        keeps the last value of each name in ``runner.metrics``. Anyone, during a search step
        (Lightning refuses logging from ``nasframe_search_end``)."""

    def stop_search(self) -> None:
        """End the search after this step (the budget is spent). Strategies."""

    def generator_for(self, architecture: Architecture, salt: str = "", device: torch.device | str | None = None) -> torch.Generator:
        """A fresh ``torch.Generator`` seeded from the strategy's seed, ``architecture`` and
        ``salt`` only: the same draws for an architecture whichever other architectures are scored
        with it, in whatever order, on whichever rank, resumed or not. ``device`` (default CPU) is
        where the generator draws (pass ``nas.device`` to draw on the accelerator). Evaluators and
        strategies."""


# --------------------------------------------------------------------------------------------
# Shared by the hosts
# --------------------------------------------------------------------------------------------
def architecture_seed(seed: int, architecture: Architecture, salt: str = "") -> int:
    """A 63-bit seed that depends only on ``seed``, ``architecture`` and ``salt`` (not on Python's
    per-process string hashing), so every process and every resumed run derives the same one."""
    digest = hashlib.sha256(f"{seed}\0{salt}\0{architecture.to_json()}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def seeded_generator(seed: int, architecture: Architecture, salt: str = "", device: torch.device | str | None = None) -> torch.Generator:
    """``SearchHost.generator_for`` for a strategy seeded with ``seed``."""
    return torch.Generator(device=device if device is not None else "cpu").manual_seed(architecture_seed(seed, architecture, salt))


def default_weight_optimizer(parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The supernet/heads optimizer when the config gives none: SGD, lr 0.025, momentum 0.9, weight decay 3e-4."""
    return torch.optim.SGD(parameters, lr=0.025, momentum=0.9, weight_decay=3e-4)


def collect_optimizers(nas: Any, manager: NASPluginManager, weights: list[torch.nn.Parameter],
                       optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
                       lr_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None) -> dict[str, Any]:
    """The search's optimizers by name, in order: ``"weights"`` over ``weights`` (when the strategy
    ``trains_weights`` and there is something to train; built by ``optimizer``, default
    ``default_weight_optimizer``, with ``lr_scheduler`` when given) and every plugin's
    ``nasframe_configure_optimizers``. A value is an optimizer or ``{"optimizer": ..., "lr_scheduler":
    ...}``. A name configured twice fails naming both plugins. Used by ``NASModule`` and ``SearchRunner``."""
    from nasframe.plugins import merge_results

    own: dict[str, Any] = {}
    if weights and nas.strategy.trains_weights:
        built = (optimizer or default_weight_optimizer)(weights)
        own["weights"] = built if lr_scheduler is None else {"optimizer": built, "lr_scheduler": lr_scheduler(built)}
    contributions = manager.call_each("nasframe_configure_optimizers", nas=nas)
    return merge_results("nasframe_configure_optimizers", [("nasframe (the weights optimizer)", own), *contributions])


def raw_optimizer_of(value: Any) -> torch.optim.Optimizer:
    """The torch optimizer inside a ``collect_optimizers`` value."""
    return value["optimizer"] if isinstance(value, dict) else value


def weighted_loss_terms(manager: NASPluginManager, step: SearchStep) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Every objective's loss terms for ``step`` (a name returned twice fails naming both
    objectives) and their weighted sum, ``None`` when there is no term. Used by both hosts'
    ``compute_loss``."""
    terms = manager.collect("nasframe_loss_terms", step=step)
    if not terms:
        return terms, None
    total = sum(step.term_weights.get(name, 1.0) * value for name, value in terms.items())
    return terms, total


def check_finite_loss(total: torch.Tensor, terms: dict[str, torch.Tensor], stage: str, global_step: int) -> None:
    if not torch.isfinite(total):
        values = {name: float(value.detach()) for name, value in terms.items()}
        raise NASFrameError(f"the {stage} loss is not finite at global step {global_step}: {values}. "
                            "Lower the learning rate or check the data for NaN/inf values.")


def limits_from_trainer(trainer: Any) -> SearchLimits:
    """``SearchLimits`` of a Lightning Trainer (-1 and ``None`` mean unbounded there)."""
    max_steps = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None and trainer.max_epochs > 0 else None
    batches = trainer.num_training_batches
    batches = float(batches) if isinstance(batches, (int, float)) and not math.isnan(batches) else None
    return SearchLimits(max_steps, max_epochs, batches)
