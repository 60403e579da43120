"""The search-strategy base class."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture

if TYPE_CHECKING:
    from nasframe.module import NASModule


class SearchStrategy(nn.Module, ABC):
    """Decides which architectures the search looks at and which one it returns.

    An ``nn.Module``: parameters and buffers (architecture parameters, predictors) are saved in the
    checkpoint with the module; everything else that makes up the search state (populations,
    boards, the random generator) goes through ``search_state``/``load_search_state``. All
    randomness comes from ``self.generator``, seeded by ``seed``, so every DDP rank and every
    resumed run makes the same choices.

    Subclasses implement ``search_step`` and ``final_architecture``; the three kinds the papers need
    are ``SinglePathStrategy``, ``DifferentiableStrategy`` and ``SampleBasedStrategy``.
    """

    #: whether the module must build the space's supernet for this strategy
    needs_supernet: ClassVar[bool] = False
    #: whether the strategy steps the module's "weights" optimizer (supernet and objective heads)
    trains_weights: ClassVar[bool] = True

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    # ---- hooks ------------------------------------------------------------------------------
    @hookimpl(specname="nasframe_setup")
    def setup(self, nas: NASModule) -> None:
        """Create state that depends on the space or supernet (called at the end of ``NASModule.__init__``)."""

    @hookimpl(specname="nasframe_configure_optimizers")
    def configure_optimizers(self, nas: NASModule) -> dict[str, Any] | None:
        return None

    @hookimpl(specname="nasframe_search_step")
    @abstractmethod
    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> Any:
        """One training step of the search (see the ``nasframe_search_step`` hook)."""

    @hookimpl(specname="nasframe_current_architecture")
    def current_architecture(self, nas: NASModule) -> Architecture | None:
        return None

    @hookimpl(specname="nasframe_final_architecture")
    def final_architecture(self, nas: NASModule) -> Architecture | None:
        return self.current_architecture(nas)

    @hookimpl(specname="nasframe_state_dict")
    def _state_dict_hook(self, nas: NASModule) -> dict[str, Any]:
        return {self.state_key: {"generator": self.generator.get_state(), **self.search_state()}}

    @hookimpl(specname="nasframe_load_state_dict")
    def _load_state_dict_hook(self, nas: NASModule, state: dict[str, Any]) -> None:
        own = state.get(self.state_key)
        if own is None:
            return
        self.generator.set_state(own["generator"])
        self.load_search_state({k: v for k, v in own.items() if k != "generator"})

    # ---- state beyond parameters --------------------------------------------------------------
    @property
    def state_key(self) -> str:
        return f"strategy.{type(self).__name__}"

    def search_state(self) -> dict[str, Any]:
        """Non-tensor-parameter state to checkpoint; values must load with ``weights_only=True``."""
        return {}

    def load_search_state(self, state: dict[str, Any]) -> None:
        """Restore what ``search_state`` returned."""


def count_step(optimizer: Any) -> None:
    """Deprecated: call ``nas.count_step(name)`` (``nasframe.SearchHost``), which works under
    every host. Counts a search step that updates nothing as one step of ``optimizer``."""
    from nasframe.module import count_optimizer_step  # the module imports this one

    warnings.warn("nasframe.strategies.base.count_step(optimizer) is deprecated; call nas.count_step(name) "
                  "with the optimizer's name instead (see nasframe.SearchHost)", DeprecationWarning, stacklevel=2)
    count_optimizer_step(optimizer)


def architectures_to_state(architectures: list[Architecture]) -> list[dict[str, Any]]:
    """Architectures as plain dicts, which ``torch.load(weights_only=True)`` accepts."""
    return [a.to_dict() for a in architectures]


def architectures_from_state(state: list[dict[str, Any]]) -> list[Architecture]:
    return [Architecture.from_dict(d) for d in state]
