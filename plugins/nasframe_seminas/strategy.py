"""SemiNAS as a sample-based strategy: any space with a token view, any evaluator."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from nasframe.errors import ArchitectureError
from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.strategies.sample_based import SampleBasedStrategy

from nasframe_seminas.model import SemiNASModel, semi_supervised_fit

if TYPE_CHECKING:
    from nasframe.module import NASModule

TOKEN_CACHE = 100_000  # architectures whose token rows are kept (a few MB)
MOVE_CHUNK = 6  # step sizes decoded in one batch by the move


class SemiNAS(SampleBasedStrategy):
    """Semi-supervised neural architecture search (Luo et al., NeurIPS 2020), built on NAO.

    Each search step is one SemiNAS iteration: train the encoder-predictor-decoder on the
    ``N`` evaluated architectures (scores z-scored), pseudo-label ``unlabelled`` random
    architectures with the predictor, train on both (the labelled ones up-sampled), move the
    embeddings of the ``top_k`` best evaluated or pseudo-labelled architectures along the
    predictor's gradient with a growing step, collecting the valid, unseen architectures they decode
    into, and propose the ones the predictor likes best. The first step proposes ``initial`` random
    architectures. The final architecture is the best evaluated one. On a CPU the model always works
    on one intra-op thread (``model.one_cpu_thread``); its updates are three quarters of a search's
    time on a table.

    Sizes do not depend on ``budget``, so a run is a prefix of any longer run with the same seed
    (a budget-B run returns the best of the first B evaluations of a longer one). Defaults follow
    the paper scaled to NAS-Bench-201-sized budgets (the paper: N = 100, M = 10,000, top-100
    seeds for a 2,000-query NAS-Bench-101 search).

    Args:
        evaluator: scores candidates (tabular query, zero-cost proxy, weight-sharing estimate...).
        budget: distinct architectures to evaluate.
        initial: N, random architectures evaluated first.
        per_iteration, growth: new architectures evaluated per iteration:
            ``max(per_iteration, round(growth * evaluated so far))``, so long searches take
            proportionally fewer (and cheaper) iterations without depending on ``budget``.
        unlabelled: M, random unseen architectures pseudo-labelled per iteration (0: no pseudo-labels).
        top_k: architectures whose embeddings are moved: the best of the evaluated and (with
            ``move_pseudo``, as in the paper) the pseudo-labelled ones together.
        up_sample: the labelled architectures are repeated this many times next to the M
            pseudo-labelled ones in the second training phase (the paper's ratio: 10).
        move_pseudo: seeds may be pseudo-labelled architectures (the paper); False: evaluated only.
        move_all: as in the paper, every seed keeps stepping and may contribute one new
            architecture per step size, until enough are found; False: each seed stops at its
            first new architecture (the behaviour before, which mostly left the proposals to ``fill``).
        steps: predictor updates per iteration on the labelled data; ``pseudo_steps`` on labelled +
            pseudo-labelled (the model is warm-started, so these are counted in updates, not epochs).
        batch_size, lr, weight_decay: the predictor's Adam (paper: lr 1e-3, weight decay 1e-4).
            The updates are most of a search's cost. 20 + 10 updates of 32 per iteration reach the
            accuracy of 20 + 20 updates of 64 on the NB-201 table over 30 seeds (README, Benchmarks,
            ``search_nb201.py --strategies seminas seminas_previous``); a narrower model
            (``hidden_size`` 32) loses up to 0.6 points there at 50-100 queries.
        hidden_size, encoder_layers, mlp_layers, trade_off: the model (see ``SemiNASModel``).
        step_size, step_growth, max_steps: the move: eta = step_size * step_growth**j, j < max_steps.
        fill, fill_pool: when the moves yield too few new architectures (common in small spaces,
            where the moves keep landing on evaluated ones), top up with the best-predicted of
            ``fill_pool`` random unseen architectures (the unlabelled ones first), else propose fewer.
        targets: what the predictor regresses: ``"zscore"`` (the paper: scores z-scored over the
            evaluated ones) or ``"rank"`` (NOT in the paper, off by default: the normal quantiles of
            the scores' ranks, so that a few failed architectures far below the rest do not squeeze
            the good ones together; on NAS-Bench-201, where ~2% of architectures score ~10%, it ranks
            the top better).
        seed: seeds sampling, shuffling and the model's initial weights.
        on_budget_unspent: ``"warn"`` or ``"error"`` when the search ends before its budget
            (see ``SampleBasedStrategy``).
    """

    def __init__(self, evaluator: Evaluator, budget: int = 100, initial: int = 16, per_iteration: int = 4,
                 unlabelled: int = 1000, top_k: int = 16, steps: int = 20, pseudo_steps: int = 10, batch_size: int = 32,
                 growth: float = 0.1,
                 lr: float = 1e-3, weight_decay: float = 1e-4, hidden_size: int = 64, encoder_layers: int = 1,
                 mlp_layers: Sequence[int] = (64,), trade_off: float = 0.8, step_size: float = 0.05, step_growth: float = 1.5,
                 max_steps: int = 18, fill: bool = True, fill_pool: int = 1000, up_sample: int = 10,
                 move_pseudo: bool = True, move_all: bool = True, targets: str = "zscore", seed: int = 0,
                 on_budget_unspent: str = "warn") -> None:
        super().__init__(evaluator, budget, seed, on_budget_unspent=on_budget_unspent)
        for name, value, low in (("budget", budget, 1), ("initial", initial, 1), ("per_iteration", per_iteration, 1),
                                 ("unlabelled", unlabelled, 0), ("top_k", top_k, 1), ("steps", steps, 0),
                                 ("pseudo_steps", pseudo_steps, 0), ("batch_size", batch_size, 1), ("max_steps", max_steps, 1),
                                 ("fill_pool", fill_pool, 0), ("up_sample", up_sample, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"SemiNAS: {name} must be an integer >= {low}, got {value!r}")
        if step_size <= 0 or step_growth < 1:
            raise ValueError(f"SemiNAS: step_size must be > 0 and step_growth >= 1, got {step_size} and {step_growth}")
        self.initial, self.per_iteration, self.unlabelled, self.top_k = initial, per_iteration, unlabelled, top_k
        if growth < 0:
            raise ValueError(f"SemiNAS: growth must be >= 0, got {growth}")
        self.steps, self.pseudo_steps, self.batch_size, self.growth = steps, pseudo_steps, batch_size, growth
        self.lr, self.weight_decay = lr, weight_decay
        self.model_args = dict(hidden_size=hidden_size, encoder_layers=encoder_layers, mlp_layers=tuple(mlp_layers), trade_off=trade_off)
        self.step_size, self.step_growth, self.max_steps, self.fill = step_size, step_growth, max_steps, fill
        if targets not in ("zscore", "rank"):
            raise ValueError(f"SemiNAS: targets must be 'zscore' or 'rank', got {targets!r}")
        self.targets = targets
        self.fill_pool, self.up_sample, self.move_pseudo, self.move_all = fill_pool, up_sample, move_pseudo, move_all
        self.model: SemiNASModel | None = None
        # checkpointed data of the last iteration (for inspection and exact resume)
        self.pseudo_tokens: list[list[int]] = []
        self.pseudo_labels: list[float] = []
        self.target_stats: list[float] = [0.0, 1.0]
        self.counts = {"iterations": 0, "moved": 0, "filled": 0}
        self._token_cache: dict[Architecture, tuple[int, ...]] = {}

    # ---- setup --------------------------------------------------------------------------------
    def setup(self, nas: NASModule) -> None:
        if self.model is None:
            with torch.random.fork_rng(devices=[]):  # weights from our seed, without touching global RNG
                torch.manual_seed(self.seed)
                self.model = SemiNASModel.for_space(nas.search_space, **self.model_args)
            self.model.eval()

    def configure_optimizers(self, nas: NASModule) -> dict[str, Any]:
        # fused: one kernel for all parameters (the same update as the loop over them; 2.5x faster on CPU)
        return {"predictor": torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)}

    # ---- the loop -----------------------------------------------------------------------------------
    def tokens(self, nas: NASModule, architectures: Sequence[Architecture]) -> torch.Tensor:
        """Token rows ``(N, L)`` of ``architectures`` through the encoding hook, each encoded once
        (the labelled set and the pool are re-encoded every iteration; ``TOKEN_CACHE`` kept)."""
        cache = self._token_cache
        rows = []
        for architecture in architectures:
            row = cache.get(architecture)
            if row is None:
                row = cache[architecture] = tuple(nas.hook.nasframe_encode_architecture(architecture=architecture, kind="tokens"))
                if len(cache) > TOKEN_CACHE:
                    cache.pop(next(iter(cache)))  # the oldest entry: dicts keep insertion order
            rows.append(row)
        if not rows:
            return torch.zeros(0, len(nas.search_space.token_choices()), dtype=torch.long)
        return torch.tensor(rows, dtype=torch.long)

    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> None:
        result = super().search_step(nas, batch, batch_idx)
        # Count this search step as one optimizer step (global_step, max_steps, checkpoint cadence):
        # the inner predictor updates use the raw optimizer, and this step has no gradients left.
        nas.raw_optimizer("predictor").zero_grad(set_to_none=True)
        nas.count_step("predictor")
        return result

    def ask(self, nas: NASModule) -> list[Architecture]:
        if not self.history:
            return self.sample_unseen(nas, min(self.initial, self.remaining))
        labelled = [(a, s) for a, s in self.history if not math.isnan(s)]
        if not labelled:  # nothing scored yet: keep sampling
            return self.sample_unseen(nas, min(self.per_iteration, self.remaining))
        # this iteration's size never depends on the budget: a budget-B run proposes the first of
        # the same candidates as a longer run, so it stays a prefix of it
        size = max(self.per_iteration, round(self.growth * len(self.history)))
        want = min(size, self.remaining)
        raw = torch.tensor([s for _, s in labelled], dtype=torch.float)
        mean, std = float(raw.mean()), float(raw.std()) if len(raw) > 1 else 1.0
        std = std if std > 1e-12 else 1.0
        self.target_stats = [mean, std]
        targets = (raw - mean) / std
        if self.targets == "rank":
            ranks = raw.argsort(stable=True).argsort(stable=True).double()
            targets = torch.distributions.Normal(0.0, 1.0).icdf((ranks + 0.5) / len(raw)).float()
        pool = self.sample_unseen(nas, self.unlabelled, batched=True)
        pool_tokens = self.tokens(nas, pool)
        optimizer = nas.raw_optimizer("predictor")  # its many updates are one search step (counted in search_step)
        pseudo = semi_supervised_fit(self.model, optimizer, self.tokens(nas, [a for a, _ in labelled]), targets,
                                     pool_tokens, self.steps, self.pseudo_steps, self.batch_size, self.generator,
                                     up_sample=self.up_sample)
        self.pseudo_tokens = pool_tokens.tolist()
        self.pseudo_labels = pseudo.tolist()
        self.counts["iterations"] += 1

        seeds = self.move_seeds([a for a, _ in labelled], targets.tolist(), pool, pseudo.tolist())
        moved = self._move(nas, seeds, size if self.move_all else 0)
        picks = self._rank(nas, moved)[:size]
        self.counts["moved"] += min(len(picks), want)
        if len(picks) < size and self.fill:
            # Top up from random unseen architectures ranked by the trained predictor: the
            # unlabelled pool where there is one, grown to ``fill_pool`` so that the M = 0
            # ablation ranks as many candidates as SemiNAS does.
            taken = set(picks)
            candidates = [a for a in pool if a not in taken]
            candidates += self.sample_unseen(nas, max(self.fill_pool - len(candidates), 0), exclude=taken | set(candidates), batched=True)
            extra = self._rank(nas, candidates)[: size - len(picks)]
            self.counts["filled"] += max(min(len(extra), want - len(picks)), 0)
            picks += extra
        return picks[:want]

    def move_seeds(self, labelled: Sequence[Architecture], targets: Sequence[float], pool: Sequence[Architecture],
                   pseudo: Sequence[float]) -> list[Architecture]:
        """The ``top_k`` architectures whose embeddings move: as in the paper, the best of the
        evaluated (by their z-scored score) and the pseudo-labelled (by their pseudo-label) together,
        so that pseudo-labels steer the proposals as well as the predictor; ties keep the evaluated
        first. ``move_pseudo=False``: the evaluated ones only."""
        ranked = [(float(z), i, a) for i, (a, z) in enumerate(zip(labelled, targets))]
        if self.move_pseudo:
            ranked += [(float(z), len(ranked) + i, a) for i, (a, z) in enumerate(zip(pool, pseudo))]
        return [a for _, _, a in sorted(ranked, key=lambda t: (-t[0], t[1]))[: self.top_k]]

    def _move(self, nas: NASModule, seeds: list[Architecture], want: int = 0) -> list[Architecture]:
        """Valid, unseen architectures decoded from the seeds' embeddings moved along the predictor's
        gradient with a growing step. ``want == 0``: each seed stops at its first new architecture.
        ``want > 0`` (the paper's loop): every seed keeps stepping, each step size can add a new
        architecture per seed, until at least ``want`` are found or the steps run out."""
        space = nas.search_space
        memory, gradient = self.model.gradients(self.tokens(nas, seeds).to(self.model.device))
        pending = list(range(len(seeds)))
        found: list[Architecture] = []
        decoded_sizes: dict[int, dict[int, list[int]]] = {}
        for j in range(self.max_steps):
            if not pending or (want and len(found) >= want):
                break
            if j not in decoded_sizes:
                # the next step sizes for every pending seed in one batched decode (a row decodes the
                # same alone or in a batch), consumed below one step size at a time as before
                sizes = range(j, min(j + MOVE_CHUNK, self.max_steps))
                etas = torch.tensor([self.step_size * self.step_growth**s for s in sizes], device=memory.device)
                rows = self.model.decode_moved(memory[pending].repeat(len(sizes), 1, 1), gradient[pending].repeat(len(sizes), 1, 1),
                                               etas.repeat_interleave(len(pending))).cpu().tolist()
                decoded_sizes = {s: dict(zip(pending, rows[k * len(pending): (k + 1) * len(pending)])) for k, s in enumerate(sizes)}
            decoded = [decoded_sizes[j][index] for index in pending]
            still = []
            for index, tokens in zip(pending, decoded):
                try:
                    architecture = space.validate(space.from_tokens(tokens))
                except ArchitectureError:  # e.g. a NAS-Bench-101 graph with too many edges
                    still.append(index)
                    continue
                if architecture in self.seen or architecture in found:
                    still.append(index)
                else:
                    found.append(architecture)
                    if want:
                        still.append(index)
            pending = still
        return found

    def _rank(self, nas: NASModule, architectures: list[Architecture]) -> list[Architecture]:
        if not architectures:
            return []
        scores = self.model.predict(self.tokens(nas, architectures).to(self.model.device)).cpu().tolist()
        order = sorted(range(len(architectures)), key=lambda i: (-scores[i], i))
        return [architectures[i] for i in order]

    # ---- checkpoint -------------------------------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        return {**super().search_state(), "pseudo_tokens": self.pseudo_tokens, "pseudo_labels": self.pseudo_labels,
                "target_stats": list(self.target_stats), "counts": dict(self.counts)}

    def load_search_state(self, state: dict[str, Any]) -> None:
        super().load_search_state(state)
        self.pseudo_tokens = [list(t) for t in state["pseudo_tokens"]]
        self.pseudo_labels = list(state["pseudo_labels"])
        self.target_stats = list(state["target_stats"])
        self.counts = dict(state["counts"])
