"""The SSWP-NAS schedule over weight steps: warm-up, search, progressive pruning."""

from __future__ import annotations

import bisect
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

    def steps_per_phase(self, step: int, total: int) -> dict[str, int]:
        """Weight steps done in each phase after ``step`` of ``total`` steps (all of them at ``step == total``)."""
        search_start, prune_start = self.bounds(total)
        prune_start = min(prune_start, total)
        return {"warmup": min(step, search_start), "search": max(0, min(step, prune_start) - search_start),
                "prune": max(0, step - prune_start)}

    def architecture_steps(self, total: int, cells: int, every: int) -> int:
        """Architecture steps in a schedule of ``total`` weight steps: one at every ``every``-th weight
        step from the start of the search until the last cell is frozen."""
        search_start, prune_start = self.bounds(total)
        # the first step with every cell frozen (frozen_cells never decreases), or the end
        end = bisect.bisect_left(range(prune_start, total), cells, key=lambda t: self.frozen_cells(t, total, cells))
        end = prune_start + end if prune_start < total else total
        return max(0, -(-end // every) - -(-search_start // every))  # multiples of `every` in [search_start, end)

    def total_within(self, trainer_steps: int, cells: int, every: int) -> int:
        """The longest schedule (weight steps) whose weight and architecture steps together fit in
        ``trainer_steps`` (Lightning's ``max_steps`` counts both), at least 1."""
        fits = lambda total: total + self.architecture_steps(total, cells, every) <= trainer_steps  # noqa: E731
        prune = 1.0 - self.warmup - self.search
        learned = self.search + prune * (1.0 - 1.0 / max(cells, 1))  # fraction of weight steps with alpha steps
        total = min(trainer_steps, int(trainer_steps / (1.0 + learned / every)) + every + 2)  # just above the answer
        while total > 1 and not fits(total):
            total -= 1
        return total
