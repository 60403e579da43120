"""Deprecated: the trainer-free runner now lives in the core, ``nasframe.runner``.

``SearchContext`` and ``run_search`` remain here as thin aliases of ``nasframe.runner.SearchRunner``
and ``nasframe.runner.run_search`` for code written against them; each warns once
(``DeprecationWarning``). Import from ``nasframe.runner`` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

from nasframe.runner import SearchRunner
from nasframe.runner import run_search as _core_run_search
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace
from nasframe.strategies.base import SearchStrategy

_warned: set[str] = set()


def _deprecated(name: str, replacement: str) -> None:
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"nasframe_seminas.{name} is deprecated and will be removed; use {replacement} "
                      "(the same runner, in the core)", DeprecationWarning, stacklevel=3)


class SearchContext(SearchRunner):
    """Deprecated alias of ``nasframe.runner.SearchRunner``."""

    def __init__(self, search_space: SearchSpace, strategy: SearchStrategy) -> None:
        _deprecated("SearchContext", "nasframe.runner.SearchRunner")
        super().__init__(search_space, strategy)


def run_search(search_space: SearchSpace, strategy: SearchStrategy, batch: Any = None, max_steps: int = 100_000) -> Architecture:
    """Deprecated alias of ``nasframe.runner.run_search``."""
    _deprecated("run_search", "nasframe.runner.run_search")
    return _core_run_search(search_space, strategy, batch=batch, max_steps=max_steps)
