"""Sample-based search driven by an Optuna sampler: TPE, NSGA-II or any ``optuna.samplers`` class.

``OptunaSearch`` maps a search space's token view (``SearchSpace.token_choices``: one categorical
choice per position) onto Optuna parameters, asks the sampler for one trial per candidate, has the
evaluator score the candidates through ``SampleBasedStrategy`` (so any evaluator works, and DDP ranks
share the scoring out) and tells Optuna the result. With several objectives (the score against the
cost hook's FLOPs or parameters) the result is a Pareto front, and a rule picks the exported member.

Optuna is an optional dependency: ``pip install -e ".[optuna]"``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.evaluators.base import Evaluator
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import INACTIVE
from nasframe.spaces.capabilities import architecture_cost
from nasframe.strategies.sample_based import SampleBasedStrategy

if TYPE_CHECKING:
    import optuna

    from nasframe.module import NASModule
    from nasframe.spaces.base import SearchSpace

COSTS = ("flops", "params")  # the keys of the nasframe_architecture_cost hook's answer
OBJECTIVES = ("score", *COSTS)
SELECTION_RULES = ("best_score", "knee", "min_cost")
SHORT_NAMES = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "nsgaii": "NSGAIISampler", "random": "RandomSampler"}
STUDY_NAME = "nasframe"


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise NASFrameError('OptunaSearch needs optuna, which is not installed: pip install -e ".[optuna]" '
                            '(or pip install "optuna>=4")') from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO line per trial told
    return optuna


def _optuna() -> Any:
    import optuna  # a module is no attribute: the strategy must stay picklable (ddp_spawn, deepcopy)

    return optuna


class OptunaSearch(SampleBasedStrategy):
    """An Optuna sampler proposes the candidates; ``evaluator`` scores them.

    Each candidate is one Optuna trial: position ``i`` of the space's token view is the categorical
    parameter ``p{i}`` over ``token_choices()[i]``, suggested define-by-run, so a space whose later
    positions exist only for some earlier choices (``CategoricalSearchSpace.position_conditions``,
    asked through ``is_active``) suggests only the active ones. A
    trial that proposes an architecture already evaluated is told its known score without spending
    budget, and the sampler is asked again, at most ``max_retries`` times per candidate; then an
    unseen architecture is drawn at random (and added to the study as a trial). A trial whose tokens
    make no valid architecture is told as failed. A NaN score is told as a failed trial.

    Objectives: ``["score"]`` (default) maximises the evaluator's score. ``["score", "flops"]`` or
    ``["score", "params"]`` (or all three) optimise the score against the cost that the space's
    ``nasframe_architecture_cost`` hook reports; ``directions`` defaults to maximising the score and
    minimising costs. The search then keeps the Pareto front (``pareto_front()``, the ``front``
    attribute and the checkpoint state) and exports the member that ``select`` picks among the
    architectures within ``flops_limit``/``params_limit``: ``"best_score"`` (default; with no limit,
    the best score evaluated, which is on the front), ``"knee"`` (the front member closest to the
    ideal point once each objective is scaled to [0, 1] over the front) or ``"min_cost"`` (the
    cheapest front member by the first cost objective). Limits also apply with the single score
    objective. ``hypervolume_reference`` (one value per objective, in its own units: a score below
    every score, costs above every cost) adds the front's hypervolume to the report.

    Sampler: ``None`` takes ``TPESampler`` for one objective and ``NSGAIISampler`` for several;
    else a class name of ``optuna.samplers`` (``"TPESampler"``; ``"tpe"``, ``"nsga2"``,
    ``"random"`` for short), a dotted class path, or ``{"class_path": ..., "init_args": {...}}``;
    ``sampler_args`` are the constructor's keyword arguments in the first two forms. The sampler's
    ``seed`` comes from the strategy's ``seed``, so it must not be given.

    Determinism and resume: before each trial the sampler is built afresh, seeded from (``seed``,
    trial number), so a proposal depends only on the seed and the trials told so far, never on an
    RNG carried between trials. The study's trials (parameters, values, state, sampler attributes)
    and the study's sampler attributes are checkpoint state as plain lists and dicts; a resumed
    search rebuilds the study from them, so its proposals after the resume equal those of an
    uninterrupted run (``tests/test_optuna.py`` checks this for TPE and NSGA-II). Every DDP rank
    runs the same study and proposes the same candidates.
    """

    def __init__(self, evaluator: Evaluator, budget: int = 100, sampler: str | dict[str, Any] | None = None,
                 sampler_args: dict[str, Any] | None = None, objectives: Sequence[str] = ("score",),
                 directions: Sequence[str] | None = None,
                 select: Literal["best_score", "knee", "min_cost"] = "best_score",
                 flops_limit: float | None = None, params_limit: float | None = None,
                 hypervolume_reference: Sequence[float] | None = None, candidates_per_step: int = 1,
                 max_retries: int = 100, report_front: int = 10, seed: int = 0, on_budget_unspent: str = "warn") -> None:
        super().__init__(evaluator, budget, seed, on_budget_unspent)
        self.objectives = _check_objectives(objectives)
        self.directions = _check_directions(directions, self.objectives)
        if select not in SELECTION_RULES:
            raise NASFrameError(f"OptunaSearch select is {select!r}; accepted: {list(SELECTION_RULES)}")
        if select != "best_score" and len(self.objectives) == 1:
            raise NASFrameError(f"OptunaSearch select={select!r} picks from a Pareto front: give a cost objective too, "
                                f"e.g. objectives: [score, flops]")
        self.select = select
        self.limits = {name: float(limit) for name, limit in (("flops", flops_limit), ("params", params_limit)) if limit is not None}
        for name, limit in self.limits.items():
            if not limit > 0:
                raise NASFrameError(f"OptunaSearch {name}_limit must be positive, got {limit}")
        if hypervolume_reference is not None and len(hypervolume_reference) != len(self.objectives):
            raise NASFrameError(f"OptunaSearch hypervolume_reference needs one value per objective {self.objectives}, "
                                f"got {list(hypervolume_reference)}")
        self.hypervolume_reference = [float(v) for v in hypervolume_reference] if hypervolume_reference is not None else None
        for name, value, low in (("candidates_per_step", candidates_per_step, 1), ("max_retries", max_retries, 0),
                                 ("report_front", report_front, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise NASFrameError(f"OptunaSearch {name} must be an integer >= {low}, got {value!r}")
        self.candidates_per_step = candidates_per_step
        self.max_retries = max_retries
        self.report_front = report_front

        _import_optuna()  # fails now, naming the extra to install, when optuna is missing
        self.sampler_class, self.sampler_args = self._resolve_sampler(sampler, sampler_args)
        self._make_sampler(0)  # bad sampler arguments fail now, before any work

        self.costs: list[dict[str, float]] = []  # aligned with ``history`` when a cost is needed
        self.duplicates = 0  # trials that proposed an architecture already evaluated
        self.fallbacks = 0  # candidates drawn at random after max_retries duplicates in a row
        self.space: SearchSpace | None = None
        self.study: optuna.Study | None = None
        self.storage: Any = None  # the study's InMemoryStorage
        self._saved: dict[str, Any] | None = None  # trials loaded from a checkpoint, replayed into a new study
        self._open: dict[Architecture, list[Any]] = {}  # this step's asked trials per candidate
        self._index_cache: dict[Architecture, int] | None = None

    # ---- configuration ---------------------------------------------------------------------------
    @property
    def needs_cost(self) -> bool:
        return len(self.objectives) > 1 or bool(self.limits)

    def _resolve_sampler(self, sampler: str | dict[str, Any] | None, args: dict[str, Any] | None) -> tuple[type, dict[str, Any]]:
        if isinstance(sampler, dict):
            if set(sampler) - {"class_path", "init_args"} or "class_path" not in sampler:
                raise NASFrameError(f"OptunaSearch sampler as a mapping takes 'class_path' and 'init_args', got keys {sorted(sampler)}")
            if args:
                raise NASFrameError("OptunaSearch: give the sampler's arguments either as sampler.init_args or as sampler_args, not both")
            path, args = sampler["class_path"], sampler.get("init_args") or {}
        else:
            path = sampler or ("TPESampler" if len(self.objectives) == 1 else "NSGAIISampler")
        path = SHORT_NAMES.get(path.lower(), path) if isinstance(path, str) else path
        if not isinstance(path, str) or not path:
            raise NASFrameError(f"OptunaSearch sampler must name a class, got {path!r}")
        module, _, name = path.rpartition(".")
        try:
            klass = getattr(importlib.import_module(module or "optuna.samplers"), name)
        except (ImportError, AttributeError):
            known = sorted(n for n in dir(_optuna().samplers) if n.endswith("Sampler") and n != "BaseSampler")
            raise NASFrameError(f"OptunaSearch sampler {path!r} not found; accepted: a class of optuna.samplers {known}, "
                                f"a short name {sorted(SHORT_NAMES)} or a dotted class path") from None
        if not (isinstance(klass, type) and issubclass(klass, _optuna().samplers.BaseSampler)):
            raise NASFrameError(f"OptunaSearch sampler {path!r} is not an optuna.samplers.BaseSampler subclass")
        args = dict(args or {})
        if "seed" in args:
            raise NASFrameError("OptunaSearch seeds its sampler from the strategy's seed; remove the sampler's 'seed' and set "
                                "the strategy's seed instead")
        return klass, args

    def _make_sampler(self, trial_number: int) -> Any:
        """The sampler for trial ``trial_number``, seeded from (strategy seed, trial number)."""
        args = dict(self.sampler_args)
        if "seed" in inspect.signature(self.sampler_class).parameters:
            args["seed"] = int(np.random.SeedSequence([self.seed, trial_number]).generate_state(1)[0])
        try:
            return self.sampler_class(**args)
        except (TypeError, ValueError) as exc:
            raise NASFrameError(f"OptunaSearch cannot build {self.sampler_class.__name__}({_args_text(self.sampler_args)}): {exc}") from None

    @hookimpl(specname="nasframe_setup")
    def setup(self, nas: NASModule) -> None:
        self._bind(nas.search_space)
        if self.needs_cost:  # fail before any work when the space cannot price an architecture
            probe = nas.hook.nasframe_sample_architecture(generator=torch.Generator().manual_seed(self.seed))
            self._cost(nas, probe)

    def _bind(self, space: SearchSpace) -> None:
        if self.space is space:
            return
        self.space = space
        optuna = _optuna()
        self.token_names = [list(choices) for choices in space.token_choices()]
        self.distributions = []
        for i, names in enumerate(self.token_names):
            names = [n for n in names if n != INACTIVE]  # a conditional position's placeholder is no choice
            if len(set(names)) != len(names) or not names:
                raise NASFrameError(f"OptunaSearch needs distinct token names at each position; position {i} of space "
                                    f"{space.name!r} has {names}")
            self.distributions.append(optuna.distributions.CategoricalDistribution(names))
        # define-by-run: a position is suggested only when active under the earlier choices (conditional spaces)
        self.is_active = getattr(space, "is_active", None)

    def _cost(self, nas: Any, architecture: Architecture) -> dict[str, float]:
        needed_by = f"OptunaSearch with objectives {self.objectives}" + "".join(f" and {k}_limit" for k in self.limits)
        cost = architecture_cost(nas, architecture, needed_by)
        return {k: float(cost[k]) for k in COSTS}

    # ---- the study -------------------------------------------------------------------------------
    def _study(self, nas: Any) -> optuna.Study:
        if self.study is None:
            self._bind(nas.search_space)
            optuna = _optuna()
            # our own storage: its public API reads and restores the study's sampler attributes
            self.storage = storage = optuna.storages.InMemoryStorage()
            self.study = optuna.create_study(storage=storage, study_name=STUDY_NAME, sampler=self._make_sampler(0),
                                             directions=list(self.directions))
            if self._saved is not None:  # a resumed search: the same trials, in the same order, the same ids
                study_id = storage.get_study_id_from_name(STUDY_NAME)
                for key, value in self._saved["study_attrs"].items():
                    storage.set_study_system_attr(study_id, key, value)
                for record in self._saved["trials"]:
                    self.study.add_trial(self._frozen_trial(record))
                self._saved = None
        return self.study

    def _frozen_trial(self, record: dict[str, Any]) -> Any:
        optuna = _optuna()
        distributions = {name: self.distributions[_position(name)] for name in record["params"]}
        state = optuna.trial.TrialState[record["state"]]
        return optuna.trial.create_trial(state=state, params=dict(record["params"]), distributions=distributions,
                                         values=record["values"] if state == optuna.trial.TrialState.COMPLETE else None,
                                         system_attrs=dict(record["system_attrs"]))

    def _trial_records(self) -> list[dict[str, Any]]:
        if self.study is None:
            return list(self._saved["trials"]) if self._saved else []
        return [{"params": dict(t.params), "values": list(t.values) if t.values is not None else None,
                 "state": t.state.name, "system_attrs": _plain(t.system_attrs)}
                for t in self.study.get_trials(deepcopy=False) if t.state.is_finished()]

    def _study_attrs(self) -> dict[str, Any]:
        if self.study is None:
            return dict(self._saved["study_attrs"]) if self._saved else {}
        return _plain(self.storage.get_study_system_attrs(self.storage.get_study_id_from_name(STUDY_NAME)))

    # ---- ask / tell --------------------------------------------------------------------------------
    def ask(self, nas: NASModule) -> list[Architecture]:
        study = self._study(nas)
        self._open = {}
        picks: list[Architecture] = []
        for _ in range(min(self.candidates_per_step, self.remaining)):
            architecture = self._ask_one(nas, study)
            if architecture is None:
                break
            picks.append(architecture)
        return picks

    def _ask_one(self, nas: Any, study: Any) -> Architecture | None:
        for _ in range(self.max_retries + 1):
            study.sampler = self._make_sampler(len(study.get_trials(deepcopy=False)))
            trial = study.ask()
            try:
                architecture = self._suggest(trial)
            except ArchitectureError:  # tokens that make no architecture of this space (e.g. an NB-101 graph)
                study.tell(trial, state=_optuna().trial.TrialState.FAIL)
                continue
            if architecture in self._open:  # proposed twice in this step: told with the first one's score
                self._open[architecture].append(trial)
                self.duplicates += 1
            elif architecture in self.seen:
                self._tell_known(study, trial, architecture)
                self.duplicates += 1
            else:
                self._open[architecture] = [trial]
                return architecture
        fresh = self.sample_unseen(nas, 1, exclude=self._open)
        if fresh:
            self.fallbacks += 1
            self._open[fresh[0]] = []  # added to the study once scored
        return fresh[0] if fresh else None

    def _suggest(self, trial: Any) -> Architecture:
        """Suggest the space's positions in order, each only when it is active under the earlier
        choices (conditional spaces); an inactive position takes the ``INACTIVE`` token."""
        assert self.space is not None
        names: list[str] = []
        for i, distribution in enumerate(self.distributions):
            active = self.is_active is None or self.is_active(i, names)
            names.append(trial.suggest_categorical(_param(i), distribution.choices) if active else INACTIVE)
        return self.space.from_tokens([self.space.token_offset(i) + self.token_names[i].index(n) for i, n in enumerate(names)])

    def _values(self, score: float, cost: dict[str, float] | None) -> list[float] | None:
        if math.isnan(score):
            return None
        return [score if name == "score" else cost[name] for name in self.objectives]

    def _tell_known(self, study: Any, trial: Any, architecture: Architecture) -> None:
        index = self._index[architecture]
        self._tell(study, trial, self._values(self.history[index][1], self.costs[index] if self.needs_cost else None))

    def _tell(self, study: Any, trial: Any, values: list[float] | None) -> None:
        if values is None:
            study.tell(trial, state=_optuna().trial.TrialState.FAIL)
        else:
            study.tell(trial, values=values)

    def tell(self, nas: NASModule, architectures: list[Architecture], scores: torch.Tensor) -> None:
        study = self._study(nas)
        self._fill_costs(nas)
        first = len(self.history) - len(architectures)
        for offset, (architecture, score) in enumerate(zip(architectures, scores.tolist())):
            cost = self.costs[first + offset] if self.needs_cost else None
            values = self._values(float(score), cost)
            trials = self._open.pop(architecture, [])
            if not trials:  # drawn at random after max_retries duplicates: added as a finished trial
                study.add_trial(_optuna().trial.create_trial(
                    state=_optuna().trial.TrialState.COMPLETE if values is not None else _optuna().trial.TrialState.FAIL,
                    params=self._params(architecture), distributions=self._distributions(architecture), values=values))
            for trial in trials:
                self._tell(study, trial, values)

    def _params(self, architecture: Architecture) -> dict[str, str]:
        """Optuna parameters of ``architecture``: its active positions' token names."""
        assert self.space is not None
        names = [self.token_names[i][token - self.space.token_offset(i)] for i, token in enumerate(self.space.to_tokens(architecture))]
        return {_param(i): name for i, name in enumerate(names) if name != INACTIVE}

    def _distributions(self, architecture: Architecture) -> dict[str, Any]:
        return {name: self.distributions[_position(name)] for name in self._params(architecture)}

    @property
    def _index(self) -> dict[Architecture, int]:
        """Position of each evaluated architecture in ``history``."""
        if self._index_cache is None or len(self._index_cache) != len(self.history):
            self._index_cache = {a: i for i, (a, _) in enumerate(self.history)}
        return self._index_cache

    # ---- the result --------------------------------------------------------------------------------
    def _scored(self) -> list[tuple[int, Architecture, float, dict[str, float]]]:
        """(index, architecture, score, cost) of every evaluated architecture with a finite score."""
        return [(i, a, s, self.costs[i] if i < len(self.costs) else {}) for i, (a, s) in enumerate(self.history) if not math.isnan(s)]

    def _minimised(self, score: float, cost: dict[str, float]) -> tuple[float, ...]:
        values = self._values(score, cost)
        assert values is not None
        return tuple(-v if d == "maximize" else v for v, d in zip(values, self.directions))

    def pareto_front(self, upto: int | None = None) -> list[tuple[Architecture, float, dict[str, float]]]:
        """The evaluated architectures no other one dominates on ``objectives``, as (architecture,
        score, cost), cheapest first (best score first with the single score objective); cost is
        ``{}`` when no objective or limit needs one. ``upto``: among the first ``upto`` evaluated."""
        scored = [e for e in self._scored() if upto is None or e[0] < upto]
        points = [self._minimised(s, c) for _, _, s, c in scored]
        front = [entry for entry, p in zip(scored, points) if not any(_dominates(q, p) for q in points)]
        front.sort(key=lambda e: (*self._minimised(e[2], e[3])[1:], -e[2], e[0]))
        return [(a, s, c) for _, a, s, c in front]

    @property
    def front(self) -> list[tuple[Architecture, float, dict[str, float]]]:
        return self.pareto_front()

    def hypervolume(self, reference: Sequence[float] | None = None, upto: int | None = None) -> float | None:
        """The volume the front dominates up to ``reference`` (default ``hypervolume_reference``),
        in the objectives' own units; None without a reference. ``upto``: of the first ``upto``
        architectures evaluated only (what a search with that budget found)."""
        reference = list(reference) if reference is not None else self.hypervolume_reference
        if reference is None:
            return None
        return hypervolume([self._values(s, c) for _, s, c in self.pareto_front(upto)], reference, self.directions)

    def within_limits(self, cost: dict[str, float]) -> bool:
        return all(cost[name] <= limit for name, limit in self.limits.items())

    def choose(self) -> Architecture | None:
        """The architecture ``select`` picks among those within the limits (None before any score).

        Raises ``NASFrameError`` when architectures were scored but none is within the limits."""
        scored = self._scored()
        if not scored:
            return None
        allowed = [e for e in scored if self.within_limits(e[3])]
        if not allowed:
            cheapest = {name: min(e[3][name] for e in scored) for name in self.limits}
            raise NASFrameError(f"OptunaSearch: none of the {len(scored)} architectures scored is within "
                                f"{ {f'{k}_limit': v for k, v in self.limits.items()} }; the lowest cost seen is {cheapest}. "
                                "Raise the limit or search longer")
        if self.select == "best_score" or len(self.objectives) == 1:
            return max(allowed, key=lambda e: (e[2], -e[0]))[1]
        members = {a for a, _, _ in self.pareto_front()}
        front = [e for e in allowed if e[1] in members] or allowed
        if self.select == "min_cost":
            return min(front, key=lambda e: (self._minimised(e[2], e[3])[1], -e[2], e[0]))[1]
        points = [self._minimised(e[2], e[3]) for e in front]  # knee: nearest the ideal point, each objective scaled to [0, 1]
        lows = [min(column) for column in zip(*points)]
        spans = [(max(column) - low) or 1.0 for column, low in zip(zip(*points), lows)]
        distance = [math.dist([(x - lo) / sp for x, lo, sp in zip(p, lows, spans)], [0.0] * len(p)) for p in points]
        return min(zip(distance, front), key=lambda t: (t[0], -t[1][2], t[1][0]))[1][1]

    def _fill_costs(self, nas: Any) -> None:
        """The cost of every evaluated architecture, where objectives or limits need one: those just
        scored, or all of a checkpoint written without (a search exported with a limit added later)."""
        if self.needs_cost and len(self.costs) < len(self.history):
            self.costs += [self._cost(nas, a) for a, _ in self.history[len(self.costs):]]

    def current_architecture(self, nas: NASModule) -> Architecture | None:
        self._fill_costs(nas)
        try:
            return self.choose()
        except NASFrameError:  # nothing within the limits yet: the best so far, for validation and logs
            return self.best()

    def final_architecture(self, nas: NASModule) -> Architecture | None:
        self._fill_costs(nas)
        return self.choose()

    @hookimpl(specname="nasframe_search_report")
    def search_report(self, nas: NASModule) -> dict[str, float]:
        report = {"optuna/trials": float(len(self.study.get_trials(deepcopy=False)) if self.study else len(self._trial_records())),
                  "optuna/duplicates": float(self.duplicates)}
        if len(self.objectives) > 1:
            front = self.pareto_front()
            report["pareto/size"] = float(len(front))
            volume = self.hypervolume()
            if volume is not None:
                report["pareto/hypervolume"] = volume
            for k, (_, score, cost) in enumerate(front[: self.report_front], 1):
                report.update({f"pareto/{k}/{name}": score if name == "score" else cost[name] for name in self.objectives})
        return report

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (``copy.deepcopy``, ``ddp_spawn``) without the live study, whose storage holds a
        lock: its trials travel as in a checkpoint and the study is rebuilt at the next ask."""
        state = dict(super().__getstate__())
        if self.study is not None:
            state["_saved"] = {"trials": self._trial_records(), "study_attrs": self._study_attrs()}
        state.update(study=None, storage=None, _open={})
        return state

    # ---- checkpoint state ----------------------------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        return {**super().search_state(), "costs": [dict(c) for c in self.costs], "trials": self._trial_records(),
                "study_attrs": self._study_attrs(), "duplicates": self.duplicates, "fallbacks": self.fallbacks,
                "front": [{"architecture": a.to_dict(), "score": s, "cost": dict(c)} for a, s, c in self.pareto_front()]}

    def load_search_state(self, state: dict[str, Any]) -> None:
        super().load_search_state(state)
        self.costs = [dict(c) for c in state["costs"]]
        self.duplicates, self.fallbacks = int(state["duplicates"]), int(state["fallbacks"])
        self._saved = {"trials": list(state["trials"]), "study_attrs": dict(state["study_attrs"])}
        self.study = None  # rebuilt from the saved trials at the next ask
        self._index_cache = None


def _check_objectives(objectives: Sequence[str]) -> list[str]:
    objectives = list(objectives)
    if not objectives or objectives[0] != "score" or len(set(objectives)) != len(objectives) or set(objectives) - set(OBJECTIVES):
        raise NASFrameError(f"OptunaSearch objectives must start with 'score', followed by distinct costs from {list(COSTS)}; "
                            f"got {objectives}")
    return objectives


def _check_directions(directions: Sequence[str] | None, objectives: list[str]) -> list[str]:
    if directions is None:
        return ["maximize" if name == "score" else "minimize" for name in objectives]
    directions = list(directions)
    if len(directions) != len(objectives) or set(directions) - {"maximize", "minimize"}:
        raise NASFrameError(f"OptunaSearch directions needs 'maximize' or 'minimize' for each of {objectives}, got {directions}")
    return directions


def _plain(attributes: dict[str, Any]) -> dict[str, Any]:
    """A sampler's attributes as JSON values (Optuna keeps them JSON-serialisable for its databases),
    which ``torch.load(weights_only=True)`` accepts; numpy scalars and arrays become numbers and lists."""
    return json.loads(json.dumps(attributes, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())


def _param(position: int) -> str:
    return f"p{position}"


def _position(name: str) -> int:
    return int(name[1:])


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (both minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]) -> float:
    """The volume that ``points`` (one value per objective, each maximised or minimised as
    ``directions`` says) dominate, bounded by ``reference`` (worse than every point that counts);
    points not strictly better than the reference in every objective add nothing. Exact; dominated
    points may be included."""
    flip = [-1.0 if d == "maximize" else 1.0 for d in directions]
    ref = tuple(f * r for f, r in zip(flip, reference))
    minimised = [tuple(f * v for f, v in zip(flip, p)) for p in points]
    return _hypervolume([p for p in minimised if all(x < r for x, r in zip(p, ref))], ref)


def _hypervolume(points: list[tuple[float, ...]], reference: tuple[float, ...]) -> float:
    """Volume dominated by ``points`` (minimised) and bounded by ``reference``: slices along the
    first objective, each the (d-1)-dimensional volume of the points left of it. O(n^d): fine for
    the fronts and histories of a search."""
    if not points:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in points)
    ordered = sorted(points)
    volume = 0.0
    for i, point in enumerate(ordered):
        upper = ordered[i + 1][0] if i + 1 < len(ordered) else reference[0]
        if upper > point[0]:
            volume += (upper - point[0]) * _hypervolume([p[1:] for p in ordered[: i + 1]], reference[1:])
    return volume
