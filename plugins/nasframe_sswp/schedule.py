"""The SSWP-NAS schedule over weight steps: warm-up, search, progressive pruning."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """Fractions of the weight steps: ``warmup`` (alpha fixed, uniform single paths), ``search``
    (alpha learned), then the rest prunes: cells are frozen one at a time, evenly spaced, the first
    at the start of pruning, so the last interval trains the fully derived network."""

    warmup: float = 0.2
    search: float = 0.4

    def __post_init__(self) -> None:
        if not (0.0 <= self.warmup and 0.0 <= self.search and self.warmup + self.search <= 1.0):
            raise ValueError(f"schedule fractions need warmup >= 0, search >= 0 and warmup + search <= 1; "
                             f"got warmup={self.warmup}, search={self.search}")

    def bounds(self, total: int) -> tuple[int, int]:
        """First weight step of the search and of the pruning phase (rounded, so 0.2 + 0.4 of 100 is 60)."""
        return round(self.warmup * total), round((self.warmup + self.search) * total)

    def phase(self, step: int, total: int) -> str:
        search_start, prune_start = self.bounds(total)
        if step < search_start:
            return "warmup"
        if step < prune_start or prune_start >= total:
            return "search"
        return "prune"

    def frozen_cells(self, step: int, total: int, cells: int) -> int:
        """How many cells are frozen at weight step ``step`` of ``total``."""
        start = self.bounds(total)[1]
        if start >= total or step < start:
            return 0
        length = max(total - start, 1e-9)
        return min(cells, math.floor((step - start) * cells / length) + 1)

    def architecture_fraction(self, cells: int) -> float:
        """Fraction of weight steps during which alpha is learned (search + pruning but the last interval)."""
        prune = 1.0 - self.warmup - self.search
        return self.search + prune * (1.0 - 1.0 / max(cells, 1))
