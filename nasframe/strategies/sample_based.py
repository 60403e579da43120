"""Sample-based search: propose candidates to an evaluator and learn from their scores."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import torch
from lightning.pytorch.utilities import rank_zero_warn

from nasframe.errors import NASFrameError
from nasframe.evaluators.base import Evaluator
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.strategies.base import SearchStrategy, architectures_from_state, architectures_to_state

if TYPE_CHECKING:
    from nasframe.module import NASModule


class SampleBasedStrategy(SearchStrategy):
    """Ask / evaluate / tell until ``budget`` distinct architectures have been evaluated.

    Each training step asks the subclass for candidates, has ``evaluator`` score them on the step's
    batch, records them in ``history`` and tells the subclass. The search stops itself when the
    budget is spent. The final architecture is the best evaluated one unless a subclass says
    otherwise. ``history`` (architectures and scores, in order) is checkpoint state.

    A search that ends before spending its budget (the trainer's epochs or ``max_steps`` ran out:
    every training batch is one search step) returns the best of what it evaluated, which is not
    the search that was asked for. ``on_budget_unspent`` says what then happens when the final
    architecture is decided: ``"warn"`` (default) emits a ``UserWarning`` (on global rank 0) naming
    the count and what to change; ``"error"`` raises a ``NASFrameError`` instead, before anything is
    exported. A space with fewer unseen architectures than the budget ends the search early without
    either.
    """

    trains_weights = False  # a supernet, if any, only serves the evaluator
    ON_BUDGET_UNSPENT = ("warn", "error")

    def __init__(self, evaluator: Evaluator, budget: int = 100, seed: int = 0, on_budget_unspent: str = "warn") -> None:
        super().__init__(seed)
        if on_budget_unspent not in self.ON_BUDGET_UNSPENT:
            raise NASFrameError(f"on_budget_unspent must be one of {list(self.ON_BUDGET_UNSPENT)}, got {on_budget_unspent!r}")
        self.evaluator = evaluator
        self.budget = budget
        self.on_budget_unspent = on_budget_unspent
        self.history: list[tuple[Architecture, float]] = []
        self.seen: set[Architecture] = set()
        self.exhausted = False  # ask() found no unseen candidate: the space, not the trainer, ended the search

    @property
    def needs_supernet(self) -> bool:  # type: ignore[override]
        return self.evaluator.needs_supernet

    @property
    def remaining(self) -> int:
        return self.budget - len(self.history)

    @abstractmethod
    def ask(self, nas: NASModule) -> list[Architecture]:
        """Candidates to evaluate next: unseen, at most ``self.remaining`` of them; [] ends the search."""

    def tell(self, nas: NASModule, architectures: list[Architecture], scores: torch.Tensor) -> None:
        """Learn from the scores (already appended to ``history``)."""

    def sample_unseen(self, nas: NASModule, count: int, tries: int = 1000,
                      exclude: Collection[Architecture] = (), batched: bool = False) -> list[Architecture]:
        """Up to ``count`` distinct random architectures neither evaluated yet nor in ``exclude``
        (fewer when ``tries`` samples in a row miss: the space is nearly exhausted). Draws from
        ``self.generator`` only.

        ``batched=True`` (for pools of hundreds or thousands): draw through the space's
        ``sample_many``, a different random stream from the same distribution, unless another
        plugin overrides ``nasframe_sample_architecture``, which is then called one at a time."""
        picks: dict[Architecture, None] = {}
        exclude = exclude if isinstance(exclude, (set, frozenset, dict)) else set(exclude)
        if batched and _space_samples_alone(nas):
            misses = 0
            while len(picks) < count and misses < tries:
                drawn = nas.search_space.sample_many(count - len(picks), self.generator)
                if not drawn:  # an override that draws nothing would otherwise loop for ever
                    break
                for architecture in drawn:
                    if architecture in self.seen or architecture in picks or architecture in exclude:
                        misses += 1
                        if misses >= tries:
                            break
                    else:
                        picks[architecture] = None
                        misses = 0
            return list(picks)
        for _ in range(count):
            for _ in range(tries):
                architecture = nas.hook.nasframe_sample_architecture(generator=self.generator)
                if architecture not in self.seen and architecture not in picks and architecture not in exclude:
                    picks[architecture] = None
                    break
            else:
                break
        return list(picks)

    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> None:
        candidates = [a for a in dict.fromkeys(self.ask(nas)) if a not in self.seen][: max(self.remaining, 0)] if self.remaining > 0 else []
        if not candidates:
            self.exhausted = self.remaining > 0
            nas.stop_search()
            return None
        # Under DDP the candidates are shared out between the ranks, all scored on rank 0's batch,
        # so that the scores equal those of one process (data-dependent evaluators included).
        batch = nas.broadcast(batch)
        scores = nas.map_across_ranks(candidates, lambda share: self.evaluator.evaluate(nas, share, batch))
        self.evaluator.queried.update(candidates)  # each rank's evaluator saw its share only
        self.seen.update(candidates)
        self.history.extend(zip(candidates, scores.tolist()))
        self.tell(nas, candidates, scores)
        nas.hook.nasframe_candidates_evaluated(nas=nas, architectures=candidates, scores=scores)
        finite = [s for _, s in self.history if not math.isnan(s)]
        # on the progress bar: queries done (shown against the budget) and the best score so far
        nas.log_metrics({"search/evaluated": float(len(self.history)), "search/best_score": max(finite) if finite else float("nan")},
                        prog_bar=True)
        if self.remaining <= 0:
            nas.stop_search()
        return None

    def best(self, history: list[tuple[Architecture, float]] | None = None) -> Architecture | None:
        scored = [(s, i, a) for i, (a, s) in enumerate(history if history is not None else self.history) if not math.isnan(s)]
        return max(scored, key=lambda t: (t[0], -t[1]))[2] if scored else None  # ties: the earliest

    def current_architecture(self, nas: NASModule) -> Architecture | None:
        return self.best()

    @hookimpl(specname="nasframe_final_architecture", tryfirst=True)
    def check_budget_spent(self, nas: NASModule) -> None:
        """Before the final architecture is decided (by whichever implementation answers; this
        one answers nothing): warn, or raise with ``on_budget_unspent="error"``, when the search
        ended with budget left that the space could still have filled."""
        if self.remaining <= 0 or self.exhausted:
            return None
        limits = nas.search_limits()
        ran = ", ".join(f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
                        for name, value in limits._asdict().items() if value is not None)
        message = (f"{type(self).__name__} evaluated {len(self.history)} of its budget of {self.budget} architectures: "
                   f"the search ended before spending it ({ran or 'no limits known'}; every training batch is one search "
                   "step). Give it more steps (trainer max_epochs or limit_train_batches, or max_steps), or lower the "
                   "budget; on_budget_unspent: error makes this an error.")
        if self.on_budget_unspent == "error":
            raise NASFrameError(message)
        rank_zero_warn(message, category=UserWarning)
        return None

    def search_state(self) -> dict[str, Any]:
        return {"history": architectures_to_state([a for a, _ in self.history]), "scores": [s for _, s in self.history],
                "evaluator": self.evaluator.state(), "exhausted": self.exhausted}

    def load_search_state(self, state: dict[str, Any]) -> None:
        self.exhausted = bool(state.get("exhausted", False))
        self.history = list(zip(architectures_from_state(state["history"]), state["scores"]))
        self.seen = {a for a, _ in self.history}
        self.evaluator.queried.update(self.seen)
        self.evaluator.load_state(state.get("evaluator", {}))


def _space_samples_alone(nas: NASModule) -> bool:
    """Whether the search space's own ``sample`` is the only ``nasframe_sample_architecture``."""
    space = getattr(nas, "search_space", None)
    return space is not None and all(impl.plugin is space for impl in nas.hook.nasframe_sample_architecture.get_hookimpls())
