"""The prioritized path board: the best paths seen so far, scored by batch accuracy and FLOPs."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import torch

from nasframe.spaces.architecture import Architecture
from nasframe.strategies.base import architectures_from_state, architectures_to_state


@dataclass
class BoardEntry:
    """One prioritized path and what the matching network compares students against: a few
    images of the batch it entered on, and *its own* softmax outputs on them at that moment."""

    architecture: Architecture
    accuracy: float
    flops: float
    inputs: torch.Tensor
    probs: torch.Tensor


class PrioritizedBoard:
    """At most ``size`` paths, best first (higher accuracy, then fewer FLOPs).

    A candidate enters (and the worst leaves) when the board is not full, or when it beats the
    worst's accuracy by more than ``margin`` points, or when it beats the worst's accuracy with
    fewer FLOPs. A path already on the board has its entry refreshed with the new measurement.
    """

    RULES = ("not_full", "margin", "fewer_flops", "refresh")

    def __init__(self, size: int = 10, margin: float = 2.0) -> None:
        if size < 1:
            raise ValueError(f"the board size must be at least 1, got {size}")
        if margin < 0:
            raise ValueError(f"the board margin must be >= 0 accuracy points, got {margin}")
        self.size = size
        self.margin = margin
        self.entries: list[BoardEntry] = []

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, architecture: Architecture) -> bool:
        return any(e.architecture == architecture for e in self.entries)

    @property
    def worst(self) -> BoardEntry | None:
        return self.entries[-1] if self.entries else None

    def admits(self, accuracy: float, flops: float) -> str | None:
        """The entry rule a new path with this accuracy and FLOPs satisfies, or None."""
        if len(self.entries) < self.size:
            return "not_full"
        worst = self.entries[-1]
        if accuracy > worst.accuracy + self.margin:
            return "margin"
        if accuracy > worst.accuracy and flops < worst.flops:
            return "fewer_flops"
        return None

    def consider(self, entry: BoardEntry) -> str | None:
        """Insert ``entry`` if a rule admits it; returns the rule, or None when it stays out."""
        for i, existing in enumerate(self.entries):
            if existing.architecture == entry.architecture:
                self.entries[i] = entry
                self._sort()
                return "refresh"
        rule = self.admits(entry.accuracy, entry.flops)
        if rule is None:
            return None
        if rule != "not_full":
            self.entries.pop()  # the worst leaves
        self.entries.append(entry)
        self._sort()
        return rule

    def rescore(self, measure: Callable[[Architecture], float]) -> None:
        """Replace every entry's accuracy by ``measure(architecture)`` (e.g. on a fixed scoring set with
        the current weights) and re-sort: entries measured long ago on other batches become comparable."""
        for entry in self.entries:
            entry.accuracy = float(measure(entry.architecture))
        self._sort()

    def _sort(self) -> None:
        self.entries.sort(key=lambda e: (-e.accuracy, e.flops))

    def best(self, flops_range: tuple[float, float] | None = None) -> BoardEntry | None:
        """The best entry, optionally among those whose FLOPs lie inside ``flops_range``."""
        for entry in self.entries:
            if flops_range is None or flops_range[0] <= entry.flops <= flops_range[1]:
                return entry
        return None

    # ---- checkpoint (weights-only loadable) ----------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "architectures": architectures_to_state([e.architecture for e in self.entries]),
            "accuracies": [float(e.accuracy) for e in self.entries],
            "flops": [float(e.flops) for e in self.entries],
            "inputs": [e.inputs.cpu() for e in self.entries],
            "probs": [e.probs.cpu() for e in self.entries],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        architectures = architectures_from_state(state["architectures"])
        self.entries = [BoardEntry(a, acc, f, x, p) for a, acc, f, x, p in
                        zip(architectures, state["accuracies"], state["flops"], state["inputs"], state["probs"])]
        self._sort()
