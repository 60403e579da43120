"""The extension points of nasframe.

Every paper's method, and every third-party package, plugs in by implementing some of these hooks.
A plugin is any object (module, or instance of a class) with attributes named like the hooks below.
Built-in components (search spaces, objectives, strategies, exporters) are plugins too: the classes in
``nasframe.spaces``, ``nasframe.objectives``, ``nasframe.strategies`` and ``nasframe.export`` implement
these hooks, and a subclass that overrides a hook method inherits its hook options.

Hooks are called by the search host (``nas`` below) through its plugin manager, as
``nas.hook.<name>(**kwargs)``; pluggy passes each implementation only the arguments it names, so an
implementation may accept a subset of the arguments listed here. The host is
:class:`nasframe.NASModule` under a Lightning Trainer, or :class:`nasframe.runner.SearchRunner`
without one; what a plugin may use of it is declared by :class:`nasframe.SearchHost`
(``nasframe/host.py``, with who may call each member and when). A plugin that uses only those
members runs under both hosts.

Hooks marked "First result wins" are ``firstresult``: implementations are called in turn (the
last registered first, ``tryfirst`` ones before the others) and the call stops at the first that
returns something other than ``None``, whose result is the hook's; an implementation returns
``None`` to let the next one answer (register a plugin with ``tryfirst=True`` to override a
built-in). The other hooks are *collecting*: every implementation is called and the caller
receives the list of their non-``None`` results; where the results are dicts merged by key
(``nasframe_loss_terms``, ``nasframe_configure_optimizers``, ``nasframe_state_dict``,
``nasframe_search_report``), a key returned by two plugins fails naming both
(``nasframe.plugins.merge_results``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nasframe.host import SearchHost
    from nasframe.spaces.architecture import Architecture
    from nasframe.spaces.base import SearchSpace
    from nasframe.step import SearchStep

hookspec = pluggy.HookspecMarker("nasframe")
hookimpl = pluggy.HookimplMarker("nasframe")


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_setup(nas: SearchHost) -> None:
    """Called once per process when the host is built (at the end of ``NASModule.__init__``), after
    every plugin is registered and the supernet (if any) is built, so that parameters created here
    exist before optimizers are configured and checkpoints are restored. Plugins keep references
    they need (``nas.search_space``, ``nas.supernet``). Collecting; return value ignored."""


@hookspec
def nasframe_search_end(nas: SearchHost, architecture: Architecture, export_dir: Path | None) -> None:
    """Called once per process at the end of the search (``fit``, ``SearchRunner.run``), after the
    final architecture is chosen and (on global rank 0) exported. ``export_dir`` is ``None`` where
    nothing was exported. Collecting; return value ignored."""


@hookspec
def nasframe_search_report(nas: SearchHost) -> dict[str, float] | None:
    """Return figures about the search as it stands, ``{name: number}`` (e.g. a strategy's steps per
    phase of its schedule); ``None`` or ``{}`` for none. Called on global rank 0 by
    ``NASModule.on_fit_end`` after the final architecture is chosen and exported, which sends the
    figures to the trainer's loggers at the last global step, and by ``NASModule.summary``, which
    prints one line ``  name: value`` each (``nasframe export`` too, from a checkpoint's state).
    Collecting; names must be unique across plugins."""


@hookspec
def nasframe_components() -> dict[str, list[type]] | None:
    """Declare what this plugin adds: return its classes by kind, ``{"spaces": [...], "strategies": [...],
    "evaluators": [...], "objectives": [...], "exporters": [...]}`` (classes; omit empty kinds;
    ``"datamodules"`` and ``"benchmarks"`` too, as the core's ``nasframe.builtin`` declares).
    Implemented at module level by a plugin package's entry-point module; called once per plugin by
    ``nasframe.plugins.installed_components`` (``nasframe list``), never during a search. Collecting."""


# --------------------------------------------------------------------------------------------
# Search space (implemented by nasframe.spaces.SearchSpace; first result wins)
# --------------------------------------------------------------------------------------------
@hookspec(firstresult=True)
def nasframe_sample_architecture(generator: torch.Generator) -> Architecture:
    """First result wins: return one ``Architecture`` drawn uniformly from the space, using only
    ``generator`` for randomness so that every rank and every resumed run draws the same. Called by
    strategies (``None`` from every implementation: no space is registered)."""


@hookspec(firstresult=True)
def nasframe_mutate_architecture(architecture: Architecture, generator: torch.Generator) -> Architecture:
    """First result wins: return a valid neighbour of ``architecture`` that differs from it (one
    choice changed), drawing only from ``generator``. Called by evolutionary strategies."""


@hookspec(firstresult=True)
def nasframe_encode_architecture(architecture: Architecture, kind: str) -> torch.Tensor | list[int]:
    """First result wins: return the encoding of ``architecture``: for ``kind="vector"`` a float
    tensor of fixed length (one-hot choices), for ``kind="tokens"`` a fixed-length list of token ids
    (see ``SearchSpace.token_choices``). Called by predictor-based strategies."""


@hookspec(firstresult=True)
def nasframe_build_network(architecture: Architecture) -> nn.Module:
    """First result wins: return the standalone network (``nn.Module``) of ``architecture`` with
    fresh weights. Called by the module to export a model when the search has no supernet, and by
    ``nasframe.load_model``, which then loads the exported weights into it (so an override used in
    the search must be registered when loading: ``load_model(directory, plugins=[...])``)."""


@hookspec(firstresult=True)
def nasframe_build_supernet() -> nn.Module:
    """First result wins: return the weight-sharing supernet (``nn.Module``), which the host keeps
    as ``nas.supernet``. Called once by the host (``NASModule.__init__``) when the strategy
    says it needs one (``SearchStrategy.needs_supernet``). The supernet's ``forward_features(x, arch)``
    and ``forward_head(features)`` take whatever the space's strategies pass as ``arch``: a discrete
    ``Architecture`` always works (single path)."""


@hookspec(firstresult=True)
def nasframe_extract_network(supernet: nn.Module, architecture: Architecture) -> nn.Module:
    """First result wins: return the standalone network of ``architecture`` carrying the
    supernet's weights of the chosen operations (weight preserving): in eval mode its outputs equal
    ``supernet(x, architecture)``. Called by the module at the end of a search; the result is
    exported."""


@hookspec(firstresult=True)
def nasframe_architecture_cost(architecture: Architecture) -> dict[str, float] | None:
    """First result wins: return the cost of ``architecture``'s standalone network as ``{"params": number of
    parameters, "flops": floating-point operations of one forward pass of one input}`` (FLOPs as
    counted by ``torch.utils.flop_counter.FlopCounterMode``). ``None`` where the space has no cost
    model. ``SearchSpace.cost`` implements it for every space with ``input_shape`` (build, count,
    cache); a plugin registered ``tryfirst`` can supply another model (e.g. latency). Called by
    strategies with a FLOPs range (single-path, Cream) through
    ``nasframe.spaces.capabilities.architecture_cost``, which fails naming the space where the
    result is ``None``, by multi-objective searches and by the run record."""


# --------------------------------------------------------------------------------------------
# Objective (collecting: every active objective adds named loss terms)
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_loss_terms(step: SearchStep) -> dict[str, torch.Tensor] | None:
    """Return named scalar loss terms for one batch, ``{name: tensor}``. Called by the host's
    ``compute_loss`` every time a strategy asks for a loss (weight step, architecture step,
    validation); a name returned by two objectives fails naming both. ``step`` gives the
    batch, the architecture, lazily computed features and logits of each view, and ``step.extras``
    set by the strategy (e.g. a teacher's logits). The module multiplies each term by
    ``step.term_weights.get(name, 1.0)``, sums them and logs each by name. Return ``None`` or ``{}``
    when the objective has nothing to add for this batch (e.g. no labels). If no objective adds a
    term, ``compute_loss`` raises, except for a training batch of a partly labelled dataset that
    holds no label: it gets a zero loss, so the step (and DDP's gradient exchange) still runs; an
    epoch of nothing but such batches raises at its end."""


# --------------------------------------------------------------------------------------------
# Search strategy
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_configure_optimizers(nas: SearchHost) -> dict[str, Any] | None:
    """Return extra optimizers by name (e.g. ``{"architecture": Adam(...)}``), each an optimizer or
    ``{"optimizer": opt, "lr_scheduler": sched}``, or ``None`` for none. Called once by the host
    (``NASModule.configure_optimizers``, ``SearchRunner``), which adds its own ``"weights"``
    optimizer for the supernet and objective heads first; Lightning steps a scheduler once per
    epoch (the runner steps none). Strategies reach them with ``nas.optimizer(name)`` or
    ``nas.raw_optimizer(name)``. Collecting; names must be unique across plugins."""


@hookspec(firstresult=True)
def nasframe_search_step(nas: SearchHost, batch: Any, batch_idx: int) -> Any:
    """First result wins: run one training step of the search (the host uses manual
    optimization): sample a path and update weights, or update weights and architecture
    parameters, or propose candidates to an evaluator and learn from their scores. Called by
    ``NASModule.training_step`` (and ``SearchRunner.run``) once per batch; the strategy is
    normally its only implementation, since an implementation returning ``None`` lets the next one
    run too.

    Returns the step's loss as a detached tensor (one-shot strategies) or ``None`` (sample-based
    ones). ``NASModule.training_step`` returns it to Lightning, which hands it to callbacks'
    ``on_train_batch_end`` as ``outputs`` (a tensor as ``{"loss": tensor}``); nothing else reads
    it, and the runner ignores it. Return nothing with a graph attached."""


@hookspec(firstresult=True)
def nasframe_current_architecture(nas: SearchHost) -> Architecture:
    """First result wins: return the best architecture according to the search so far, or
    ``None`` when there is none yet. Called for validation during the search and for logging; may
    be called before the first step."""


@hookspec(firstresult=True)
def nasframe_final_architecture(nas: SearchHost) -> Architecture:
    """First result wins: return the architecture the search decided on, which the host
    validates, exports and returns (``None`` from every implementation fails: nothing could be
    scored). Called once at the end of ``fit`` (and ``SearchRunner.run``) and by ``nasframe
    export``. Must give the same answer on every rank. An implementation may check that the
    search is complete and raise (SSWP, ``SampleBasedStrategy.check_budget_spent``)."""


@hookspec
def nasframe_candidates_evaluated(nas: SearchHost, architectures: list[Architecture], scores: torch.Tensor) -> None:
    """Called by sample-based strategies after an evaluator scored a batch of candidates (higher is
    better, NaN where the evaluator could not score), with the same architectures and scores on
    every rank. For observers: logging, early stopping (``nas.stop_search()``), the run record
    (``nasframe.record.RunRecord``: one ``history.csv`` row per candidate). Collecting; return
    value ignored."""


@hookspec
def nasframe_state_dict(nas: SearchHost) -> dict[str, Any] | None:
    """Return ``{key: state}`` to store in the checkpoint (``None`` or ``{}`` for nothing):
    strategy state that is not an ``nn.Module`` buffer or parameter (populations, boards, RNG).
    Values must load with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists,
    dicts. Called when Lightning saves a checkpoint; the merged dict is what
    ``nasframe_load_state_dict`` receives. Collecting; keys must be unique across plugins."""


@hookspec
def nasframe_load_state_dict(nas: SearchHost, state: dict[str, Any]) -> None:
    """Restore what ``nasframe_state_dict`` returned (``state`` holds all plugins' keys; a plugin
    finds none of its own in a checkpoint written without it). Called when Lightning loads a
    checkpoint, before training resumes or an export starts. Collecting; return value ignored."""


@hookspec
def nasframe_search_record(nas: SearchHost, record: dict[str, Any]) -> None:
    """Called by one-shot strategies (single-path, differentiable, Cream) with what a step or an
    epoch did, for observers such as the run record (``nasframe.record.RunRecord``):
    ``record["kind"]`` names the record, the other keys are plain values (numbers, strings, lists,
    dicts). Built-in kinds: ``"path"`` each step (``architecture``: the space's string of the
    sampled path, ``accuracy``: its batch accuracy in %, or None), ``"distribution"`` once per
    epoch (``epoch``, ``edges``: names, ``ops``: names, ``probabilities``: one list per edge, one
    number per op), ``"board"`` once per epoch (``epoch``, ``entries``: best first, each
    ``{"architecture", "accuracy", "flops"}``). A record of a kind and epoch seen before replaces
    the earlier one. ``step`` and ``epoch`` default to the trainer's. Sample-based strategies
    report through ``nasframe_candidates_evaluated`` instead. Collecting; return value ignored."""


# --------------------------------------------------------------------------------------------
# Weight export (collecting: every exporter writes its files)
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_export(
    architecture: Architecture,
    network: nn.Module,
    search_space: SearchSpace,
    directory: Path,
    example_input: torch.Tensor,
) -> list[str] | None:
    """Write files describing the searched model into ``directory`` (a temporary directory the
    module renames into place when every exporter has finished, so a crash never leaves a partial
    export) and return the file names written. Called once, on global rank 0, at the end of ``fit``
    and by ``nasframe export``. ``network`` is in eval mode on the CPU."""
