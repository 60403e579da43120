"""The extension points of nasframe.

Every paper's method, and every third-party package, plugs in by implementing some of these hooks.
A plugin is any object (module, or instance of a class) with attributes named like the hooks below.
Built-in components (search spaces, objectives, strategies, exporters) are plugins too: the classes in
``nasframe.spaces``, ``nasframe.objectives``, ``nasframe.strategies`` and ``nasframe.export`` implement
these hooks, and a subclass that overrides a hook method inherits its hook options.

All hooks are called by :class:`nasframe.NASModule` (``nas`` below) through its plugin manager, as
``nas.hook.<name>(**kwargs)``; pluggy passes each implementation only the arguments it names, so an
implementation may accept a subset of the arguments listed here.

``firstresult`` hooks stop at the first implementation returning something other than ``None``
(register a plugin with ``tryfirst=True`` on a hook to override a built-in). The other hooks are
*collecting*: every implementation is called and the caller receives the list of their results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nasframe.module import NASModule, SearchStep
    from nasframe.spaces.architecture import Architecture
    from nasframe.spaces.base import SearchSpace

hookspec = pluggy.HookspecMarker("nasframe")
hookimpl = pluggy.HookimplMarker("nasframe")


# --------------------------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_setup(nas: NASModule) -> None:
    """Called once per process at the end of ``NASModule.__init__``, after every plugin is registered
    and the supernet (if any) is built, so that parameters created here exist before optimizers are
    configured and checkpoints are restored. Plugins keep references they need
    (``nas.search_space``, ``nas.supernet``). Collecting; return value ignored."""


@hookspec
def nasframe_search_end(nas: NASModule, architecture: Architecture, export_dir: Path | None) -> None:
    """Called once per process at the end of ``fit``, after the final architecture is chosen and (on
    global rank 0) exported. ``export_dir`` is ``None`` where nothing was exported. Collecting."""


@hookspec
def nasframe_search_report(nas: NASModule) -> dict[str, float] | None:
    """Return figures about the search as it stands, ``{name: number}`` (e.g. a strategy's steps per
    phase of its schedule); ``None`` or ``{}`` for none. Called on global rank 0 by
    ``NASModule.on_fit_end`` after the final architecture is chosen and exported, which sends the
    figures to the trainer's loggers at the last global step, and by ``NASModule.summary``, which
    prints one line ``  name: value`` each (``nasframe export`` too, from a checkpoint's state).
    Collecting; names must be unique across plugins."""


@hookspec
def nasframe_components() -> dict[str, list[type]] | None:
    """Declare what this plugin adds, by kind: ``{"spaces": [...], "strategies": [...],
    "evaluators": [...], "objectives": [...], "exporters": [...]}`` (classes; omit empty kinds).
    Implemented at module level by a plugin package's entry-point module; called by ``nasframe
    list``. Collecting."""


# --------------------------------------------------------------------------------------------
# Search space (implemented by nasframe.spaces.SearchSpace; first result wins)
# --------------------------------------------------------------------------------------------
@hookspec(firstresult=True)
def nasframe_sample_architecture(generator: torch.Generator) -> Architecture:
    """Draw one architecture uniformly from the space, using only ``generator`` for randomness so
    that every rank and every resumed run draws the same. Called by strategies."""


@hookspec(firstresult=True)
def nasframe_mutate_architecture(architecture: Architecture, generator: torch.Generator) -> Architecture:
    """Return a valid neighbour of ``architecture`` that differs from it (one choice changed).
    Called by evolutionary strategies."""


@hookspec(firstresult=True)
def nasframe_encode_architecture(architecture: Architecture, kind: str) -> torch.Tensor | list[int]:
    """Encode ``architecture``: ``kind="vector"`` gives a float tensor of fixed length (one-hot
    choices), ``kind="tokens"`` a fixed-length list of token ids (see
    ``SearchSpace.token_choices``). Called by predictor-based strategies."""


@hookspec(firstresult=True)
def nasframe_build_network(architecture: Architecture) -> nn.Module:
    """Build the standalone network of ``architecture`` with fresh weights. Called by the module to
    export a model when the search has no supernet, and by ``nasframe.load_model``."""


@hookspec(firstresult=True)
def nasframe_build_supernet() -> nn.Module:
    """Build the weight-sharing supernet. Called once by ``NASModule.__init__`` when the strategy
    says it trains one (``SearchStrategy.needs_supernet``). The supernet's ``forward_features(x, arch)``
    and ``forward_head(features)`` take whatever the space's strategies pass as ``arch``: a discrete
    ``Architecture`` always works (single path)."""


@hookspec(firstresult=True)
def nasframe_extract_network(supernet: nn.Module, architecture: Architecture) -> nn.Module:
    """Return the standalone network of ``architecture`` carrying the supernet's weights of the
    chosen operations (weight preserving): in eval mode its outputs equal
    ``supernet(x, architecture)``. Called by the module at the end of a search."""


@hookspec(firstresult=True)
def nasframe_architecture_cost(architecture: Architecture) -> dict[str, float] | None:
    """Return the cost of ``architecture``'s standalone network as ``{"params": number of
    parameters, "flops": floating-point operations of one forward pass of one input}`` (FLOPs as
    counted by ``torch.utils.flop_counter.FlopCounterMode``). ``None`` where the space has no cost
    model. Called by strategies with a FLOPs range (single-path, Cream), by multi-objective
    searches and by the run record. First result wins."""


# --------------------------------------------------------------------------------------------
# Objective (collecting: every active objective adds named loss terms)
# --------------------------------------------------------------------------------------------
@hookspec
def nasframe_loss_terms(step: SearchStep) -> dict[str, torch.Tensor] | None:
    """Return named scalar loss terms for one batch. Called by ``NASModule.compute_loss`` every time
    a strategy asks for a loss (weight step, architecture step, validation). ``step`` gives the
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
def nasframe_configure_optimizers(nas: NASModule) -> dict[str, Any] | None:
    """Return extra optimizers by name (e.g. ``{"architecture": Adam(...)}``), each an optimizer or
    ``{"optimizer": opt, "lr_scheduler": sched}``. Called once by ``configure_optimizers``; the
    module adds its own ``"weights"`` optimizer for the supernet and objective heads. Strategies
    reach them with ``nas.optimizer(name)``. Collecting; names must be unique."""


@hookspec(firstresult=True)
def nasframe_search_step(nas: NASModule, batch: Any, batch_idx: int) -> Any:
    """Run one training step of the search (the module uses manual optimization): sample a path
    and update weights, or update weights and architecture parameters, or propose candidates to an
    evaluator and learn from their scores. Called by ``NASModule.training_step``."""


@hookspec(firstresult=True)
def nasframe_current_architecture(nas: NASModule) -> Architecture:
    """Return the best architecture according to the search so far. Called for validation during
    the search and for logging; may be called before the first step."""


@hookspec(firstresult=True)
def nasframe_final_architecture(nas: NASModule) -> Architecture:
    """Return the architecture the search decided on. Called once at the end of ``fit`` and by
    ``nasframe export``. Must give the same answer on every rank."""


@hookspec
def nasframe_candidates_evaluated(nas: NASModule, architectures: list[Architecture], scores: torch.Tensor) -> None:
    """Called by sample-based strategies after an evaluator scored a batch of candidates (higher is
    better, NaN where the evaluator could not score). For observers: logging, early stopping."""


@hookspec
def nasframe_state_dict(nas: NASModule) -> dict[str, Any] | None:
    """Return ``{key: state}`` to store in the checkpoint: strategy state that is not an
    ``nn.Module`` buffer or parameter (populations, boards, RNG). Values must load with
    ``torch.load(weights_only=True)``: tensors, numbers, strings, lists, dicts. Called when Lightning
    saves a checkpoint. Collecting; keys must be unique across plugins."""


@hookspec
def nasframe_load_state_dict(nas: NASModule, state: dict[str, Any]) -> None:
    """Restore what ``nasframe_state_dict`` returned (``state`` holds all plugins' keys). Called
    when Lightning loads a checkpoint, before training resumes or an export starts."""


@hookspec
def nasframe_search_record(nas: NASModule, record: dict[str, Any]) -> None:
    """Called by one-shot strategies (single-path, differentiable, Cream) with what a step or an
    epoch did, for observers such as the run record: ``record["kind"]`` names the record
    (``"path"``: the sampled architecture and its batch accuracy; ``"distribution"``: the
    probability of each op per edge; ``"board"``: the prioritized paths), the other keys are plain
    values (numbers, strings, lists, dicts). Sample-based strategies report through
    ``nasframe_candidates_evaluated`` instead. Collecting; return value ignored."""


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
