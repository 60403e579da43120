"""The search-space base class: what every space provides to strategies and to export."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.capabilities import CAPABILITIES, CapabilityError, describe


class SearchSpace(ABC):
    """A set of architectures and the networks they stand for.

    Subclasses set ``name`` and implement the seven abstract methods: ``validate``, ``sample``,
    ``mutate`` and ``build``, and the token view ``token_choices``, ``to_tokens`` and
    ``from_tokens`` (which also gives the vector encoding). ``CategoricalSearchSpace`` derives all
    but ``build`` from ``position_choices``. Weight-sharing spaces also implement ``supernet`` and
    ``extract``. The methods marked as hooks are registered with the plugin manager, so another
    plugin can override one (``tryfirst``) without subclassing.

    Network contract: every network returned by ``build``/``extract`` maps an image batch to logits
    and has ``forward_features(x)`` (pooled features, shape ``(B, D)``) and
    ``forward_head(features)`` (logits); a supernet has ``forward_features(x, arch)`` and
    ``forward_head(features)``, and ``forward(x, arch)`` for both.

    Capabilities: optional facts some components need, declared here with ``None`` meaning "not
    provided"; set them in ``__init__``. ``input_shape`` (``(C, H, W)`` of one input: the example
    input of exports and the default cost model), ``num_classes`` (Cream's matching network),
    ``in_channels`` and ``image_size`` (compared with the data by ``check_fits``). ``cost(arch)``
    (hook ``nasframe_architecture_cost``) gives ``{"params", "flops"}``; the default builds the
    network and counts, and needs ``input_shape``. Networks that know their feature size set
    ``feature_dim``. A component requires a capability through
    ``nasframe.spaces.capabilities.require``, which names the space and the missing capability.
    """

    name: ClassVar[str]
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    in_channels: int | None = None
    image_size: int | tuple[int, int] | None = None
    cost_cache_size: ClassVar[int] = 4096  # architectures whose cost ``cost`` keeps (least recently used dropped)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _records_init_args(cls.__init__)

    def config(self) -> dict[str, Any]:
        """``class_path``/``init_args`` that rebuild this space (stored with every export)."""
        klass = type(self)
        return {"class_path": f"{klass.__module__}.{klass.__qualname__}", "init_args": dict(getattr(self, "_init_args", {}))}

    # ---- architecture values --------------------------------------------------------------
    @abstractmethod
    def validate(self, architecture: Architecture) -> Architecture:
        """Return ``architecture`` if it belongs to this space, else raise ``ArchitectureError``
        naming what is wrong and what is accepted."""

    def parse(self, text: str) -> Architecture:
        """Parse the space's string form (default: the JSON of ``Architecture.to_json``)."""
        return self.validate(Architecture.from_json(text))

    def format(self, architecture: Architecture) -> str:
        """The string ``parse`` accepts."""
        return self.validate(architecture).to_json()

    # ---- search-space hooks ---------------------------------------------------------------
    @hookimpl(specname="nasframe_sample_architecture")
    @abstractmethod
    def sample(self, generator: torch.Generator) -> Architecture: ...

    def sample_many(self, count: int, generator: torch.Generator) -> list[Architecture]:
        """``count`` independent draws of ``sample`` (duplicates possible). Not a hook: strategies
        that need large pools call it (``SampleBasedStrategy.sample_unseen(batched=True)``) only
        when no other plugin overrides ``nasframe_sample_architecture``. Override it to draw many at
        once; the draws must follow ``sample``'s distribution, not its random stream."""
        return [self.sample(generator) for _ in range(count)]

    @hookimpl(specname="nasframe_mutate_architecture")
    @abstractmethod
    def mutate(self, architecture: Architecture, generator: torch.Generator) -> Architecture: ...

    @hookimpl(specname="nasframe_encode_architecture")
    def encode(self, architecture: Architecture, kind: str = "vector") -> torch.Tensor | list[int]:
        tokens = self.to_tokens(self.validate(architecture))
        if kind == "tokens":
            return tokens
        if kind == "vector":  # one-hot per position; positions own contiguous blocks of token ids
            vector = torch.zeros(self.vocabulary_size())
            vector[tokens] = 1.0
            return vector
        raise ValueError(f"unknown encoding kind {kind!r}; accepted: 'vector', 'tokens'")

    @hookimpl(specname="nasframe_build_network")
    @abstractmethod
    def build(self, architecture: Architecture) -> nn.Module: ...

    @hookimpl(specname="nasframe_build_supernet")
    def supernet(self) -> nn.Module:
        raise NASFrameError(f"search space {self.name!r} has no weight-sharing supernet; use a sample-based strategy with it")

    @hookimpl(specname="nasframe_extract_network")
    def extract(self, supernet: nn.Module, architecture: Architecture) -> nn.Module:
        raise NASFrameError(f"search space {self.name!r} has no weight-sharing supernet to extract from")

    # ---- cost ------------------------------------------------------------------------------
    @hookimpl(specname="nasframe_architecture_cost")
    def cost(self, architecture: Architecture) -> dict[str, float] | None:
        """``{"params", "flops"}`` of ``architecture``'s standalone network, or ``None`` without
        ``input_shape``. The default builds it with ``build`` on the CPU under a fixed seed (the
        global random state is restored, so asking for a cost never changes a search), counts its
        parameters, and counts the FLOPs of one forward pass of one input in eval mode with
        ``FlopCounterMode``. Results are cached per architecture (the last ``cost_cache_size``).
        Spaces whose cost is a sum of parts override this with a table (``MBConvSpace``)."""
        if self.input_shape is None:
            return None
        cache: OrderedDict[Architecture, dict[str, float]] = self.__dict__.setdefault("_cost_cache", OrderedDict())
        if architecture in cache:
            cache.move_to_end(architecture)
            return dict(cache[architecture])
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            torch.manual_seed(0)
            cost = network_cost(self.build(architecture), self.input_shape)
        cache[architecture] = cost
        while len(cache) > self.cost_cache_size:
            cache.popitem(last=False)
        return dict(cost)

    def flops(self, architecture: Architecture) -> float:
        """FLOPs of one input through ``architecture``: ``cost(architecture)["flops"]``. Strategies
        ask through the hook instead (``nasframe.spaces.capabilities.architecture_cost``), so that a
        plugin can supply the cost model; this is the shortcut for scripts and tests."""
        cost = self.cost(architecture)
        if cost is None:
            raise CapabilityError(f"{describe(self)} has no cost model; it needs {CAPABILITIES['cost']}")
        return cost["flops"]

    # ---- token view (used by the vector encoding and by sequence models such as SemiNAS) -----
    @abstractmethod
    def token_choices(self) -> list[Sequence[str]]:
        """For each position of the token sequence, the names of its valid tokens."""

    @abstractmethod
    def to_tokens(self, architecture: Architecture) -> list[int]:
        """Token ids of ``architecture``: position ``i`` holds an id in ``token_range(i)``."""

    @abstractmethod
    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        """Inverse of ``to_tokens``; raises ``ArchitectureError`` if the tokens make no valid architecture."""

    def vocabulary_size(self) -> int:
        """Token ids run over ``range(vocabulary_size())``; position ``i`` owns a contiguous block."""
        return sum(len(c) for c in self.token_choices())

    def token_offset(self, position: int) -> int:
        return sum(len(c) for c in self.token_choices()[:position])

    def token_range(self, position: int) -> range:
        start = self.token_offset(position)
        return range(start, start + len(self.token_choices()[position]))


INACTIVE = "<inactive>"  # the value of a conditional position whose condition does not hold


@dataclass(frozen=True)
class ActiveIf:
    """The condition of a conditional position: it is active only when the choice at the earlier
    ``position`` is one of ``values`` (an inactive earlier position satisfies no condition)."""

    position: int
    values: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))


class CategoricalSearchSpace(SearchSpace):
    """A space whose architecture is a fixed-length tuple of named choices.

    ``architecture.choices[i]`` is one of ``position_choices()[i]``. Sampling, mutation, validation
    and the token view follow from that; subclasses implement ``position_choices`` and ``build``.

    Conditional choices: ``position_conditions()`` makes a position exist only for some earlier
    choices (a depth decides how many widths there are): ``{position: ActiveIf(earlier, values)}``
    (or a list of them, all of which must hold). An inactive position holds ``INACTIVE``. Sampling
    draws each active position uniformly given the earlier ones; mutation changes one active
    position, then draws positions it activates and clears those it deactivates; the token view of
    a conditional position has one more token, ``INACTIVE``. ``is_active(i, earlier)`` and
    ``active_positions(choices)`` answer which positions to decide, one at a time (define-by-run
    optimizers such as Optuna). Without conditions all of this is as for independent choices.

    Both declarations are read once and kept (lookups for validation and the token view), so they
    must not change after the space is built: derive them from ``__init__`` arguments only.
    """

    @abstractmethod
    def position_choices(self) -> list[Sequence[str]]: ...

    def position_conditions(self) -> dict[int, ActiveIf | Sequence[ActiveIf]]:
        """``{position: condition or conditions}`` for the positions that are active only under
        conditions on earlier positions; default: none, every position always active."""
        return {}

    def is_active(self, position: int, earlier: Sequence[str]) -> bool:
        """Whether ``position`` is active given ``earlier``, the choices of the positions before it
        (a longer sequence is fine: only the earlier ones are read)."""
        return _holds(self._conditions().get(position, ()), earlier)

    def active_positions(self, choices: Sequence[str]) -> list[int]:
        """The positions among ``range(len(choices))`` that are active under ``choices`` (a whole
        architecture's choices, or the prefix decided so far)."""
        conditions = self._conditions()
        return [i for i in range(len(choices)) if _holds(conditions.get(i, ()), choices)]

    def _conditions(self) -> dict[int, tuple[ActiveIf, ...]]:
        """``position_conditions`` as tuples, checked: each reads an earlier position's own choices."""
        return self._checked_conditions

    @functools.cached_property
    def _checked_conditions(self) -> dict[int, tuple[ActiveIf, ...]]:
        # built once: strategies validate, encode and decode thousands of architectures per step
        declared = self.position_conditions()
        if not declared:
            return {}
        positions = self.position_choices()
        conditions = {}
        for position, value in declared.items():
            group = (value,) if isinstance(value, ActiveIf) else tuple(value)
            for condition in group:
                if not isinstance(condition, ActiveIf) or not 0 <= condition.position < position < len(positions):
                    raise NASFrameError(f"{type(self).__name__}.position_conditions: position {position} has condition "
                                        f"{condition!r}; expected ActiveIf(earlier position, values) with the earlier "
                                        f"position before it, among {len(positions)} positions")
                unknown = [v for v in condition.values if v not in positions[condition.position]]
                if unknown:
                    raise NASFrameError(f"{type(self).__name__}.position_conditions: position {position}'s condition "
                                        f"names {unknown} for position {condition.position}, whose choices are "
                                        f"{list(positions[condition.position])}")
            conditions[position] = group
        return conditions

    def validate(self, architecture: Architecture) -> Architecture:
        if not isinstance(architecture, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(architecture).__name__}")
        if architecture.space != self.name:
            raise ArchitectureError(f"architecture belongs to space {architecture.space!r}, not {self.name!r}")
        choices, allowed_sets = architecture.choices, self._allowed_sets
        if not self._conditions() and len(choices) == len(allowed_sets) and all(c in s for c, s in zip(choices, allowed_sets)):
            return architecture  # the common case, checked fast; the loop below names what is wrong
        positions, conditions = self.position_choices(), self._conditions()
        if len(architecture.choices) != len(positions):
            raise ArchitectureError(
                f"a {self.name!r} architecture has {len(positions)} choices, got {len(architecture.choices)}"
            )
        for i, (choice, allowed) in enumerate(zip(architecture.choices, positions)):
            if not _holds(conditions.get(i, ()), architecture.choices):
                if choice != INACTIVE:
                    raise ArchitectureError(f"choice {i} of a {self.name!r} architecture is {choice!r}, but position {i} "
                                            f"is inactive under the earlier choices ({_describe(conditions[i])}); "
                                            f"accepted: {INACTIVE!r}")
            elif choice not in allowed:
                raise ArchitectureError(f"choice {i} of a {self.name!r} architecture is {choice!r}; accepted: {list(allowed)}")
        return architecture

    def sample(self, generator: torch.Generator) -> Architecture:
        positions, conditions = self.position_choices(), self._conditions()
        picks: list[str] = []
        for i, allowed in enumerate(positions):
            active = _holds(conditions.get(i, ()), picks)
            picks.append(allowed[int(torch.randint(len(allowed), (), generator=generator))] if active else INACTIVE)
        return Architecture(self.name, tuple(picks))

    def sample_many(self, count: int, generator: torch.Generator) -> list[Architecture]:
        """Every position drawn for all ``count`` rows at once (a few tensor draws instead of one per
        choice); a conditional position's draw is dropped where it is inactive, so each active one
        stays uniform given the earlier ones, as in ``sample``."""
        positions, conditions = self.position_choices(), self._conditions()
        columns = [[allowed[k] for k in torch.randint(len(allowed), (count,), generator=generator).tolist()]
                   for allowed in positions]
        rows = zip(*columns) if columns else ((),) * count
        if not conditions:
            return [Architecture(self.name, row) for row in rows]
        sampled = []
        for row in rows:
            picks: list[str] = []
            for i, choice in enumerate(row):
                picks.append(choice if _holds(conditions.get(i, ()), picks) else INACTIVE)
            sampled.append(Architecture(self.name, tuple(picks)))
        return sampled

    def mutate(self, architecture: Architecture, generator: torch.Generator) -> Architecture:
        positions, conditions = self.position_choices(), self._conditions()
        choices = list(architecture.choices)
        mutable = [i for i, allowed in enumerate(positions) if len(allowed) > 1 and _holds(conditions.get(i, ()), choices)]
        if not mutable:
            raise ArchitectureError(f"space {self.name!r} has a single architecture; nothing to mutate")
        i = mutable[int(torch.randint(len(mutable), (), generator=generator))]
        others = [c for c in positions[i] if c != architecture.choices[i]]
        choices[i] = others[int(torch.randint(len(others), (), generator=generator))]
        for j in range(i + 1, len(positions)):  # later positions whose condition changed with it
            if j not in conditions:
                continue
            if not _holds(conditions[j], choices):
                choices[j] = INACTIVE
            elif choices[j] == INACTIVE:
                choices[j] = positions[j][int(torch.randint(len(positions[j]), (), generator=generator))]
        return Architecture(self.name, tuple(choices))

    def token_choices(self) -> list[Sequence[str]]:
        conditions = self._conditions()
        return [(*allowed, INACTIVE) if i in conditions else allowed for i, allowed in enumerate(self.position_choices())]

    def to_tokens(self, architecture: Architecture) -> list[int]:
        ids = self._token_ids
        try:
            if len(architecture.choices) == len(ids):
                return [ids[i][c] for i, c in enumerate(architecture.choices)]
        except KeyError:
            pass
        self.validate(architecture)  # names what is wrong
        raise ArchitectureError(f"{architecture!r} has no token view in space {self.name!r}")

    @functools.cached_property
    def _token_ids(self) -> list[dict[str, int]]:
        """Per position, choice name -> global token id. A predictor-based search encodes thousands
        of architectures per step, so the lookup is built once (a space's choices are fixed)."""
        return [{choice: self.token_offset(i) + k for k, choice in enumerate(choices)}
                for i, choices in enumerate(self.token_choices())]

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        names = self._token_names
        if len(tokens) != len(names):
            raise ArchitectureError(f"a {self.name!r} token sequence has {len(names)} tokens, got {len(tokens)}")
        choices = []
        for i, token in enumerate(tokens):
            choice = names[i].get(int(token))
            if choice is None:
                raise ArchitectureError(f"token {int(token)} is not valid at position {i}; accepted: {list(self.token_range(i))}")
            choices.append(choice)
        return self.validate(Architecture(self.name, tuple(choices)))  # conditional positions must agree with earlier ones

    @functools.cached_property
    def _allowed_sets(self) -> list[frozenset]:
        return [frozenset(allowed) for allowed in self.position_choices()]

    @functools.cached_property
    def _token_names(self) -> list[dict[int, str]]:
        """Per position, global token id -> choice name (the inverse of ``_token_ids``)."""
        return [{token: choice for choice, token in ids.items()} for ids in self._token_ids]


def _holds(conditions: Sequence[ActiveIf], earlier: Sequence[str]) -> bool:
    return all(c.position < len(earlier) and earlier[c.position] in c.values for c in conditions)


def _describe(conditions: Sequence[ActiveIf]) -> str:
    return " and ".join(f"active only if choice {c.position} is one of {list(c.values)}" for c in conditions)


def network_cost(network: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """``{"params": parameters of network, "flops": FLOPs of one forward pass of one input}``, the
    input zeros of ``input_shape`` (``(C, H, W)``, or ``(N, C, H, W)`` of which one is used), the
    network in eval mode, FLOPs as ``torch.utils.flop_counter.FlopCounterMode`` counts them
    (2 per multiply-add of convolutions and matrix products; element-wise operations count 0)."""
    shape = tuple(int(s) for s in input_shape)
    shape = (1, *shape[1:]) if len(shape) == 4 else (1, *shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network.eval()(torch.zeros(shape))
    return {"params": sum(p.numel() for p in network.parameters()), "flops": int(counter.get_total_flops())}


def _records_init_args(init: Any) -> Any:
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        if not hasattr(self, "_init_args"):  # the outermost __init__ records the user's arguments
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self._init_args = {k: v for k, v in list(bound.arguments.items())[1:] if k not in ("args", "kwargs")}
        init(self, *args, **kwargs)

    return wrapper
