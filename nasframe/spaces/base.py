"""The search-space base class: what every space provides to strategies and to export."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture


class SearchSpace(ABC):
    """A set of architectures and the networks they stand for.

    Subclasses set ``name`` and implement ``validate`` and ``build``; weight-sharing spaces also
    implement ``supernet`` and ``extract``. The methods marked as hooks are registered with the
    plugin manager, so another plugin can override one (``tryfirst``) without subclassing.

    Network contract: every network returned by ``build``/``extract`` maps an image batch to logits
    and has ``forward_features(x)`` (pooled features, shape ``(B, D)``) and
    ``forward_head(features)`` (logits); a supernet has ``forward_features(x, arch)`` and
    ``forward_head(features)``, and ``forward(x, arch)`` for both.
    """

    name: ClassVar[str]

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


class CategoricalSearchSpace(SearchSpace):
    """A space whose architecture is a fixed-length tuple of independent named choices.

    ``architecture.choices[i]`` is one of ``position_choices()[i]``. Sampling, mutation, validation
    and the token view follow from that; subclasses implement ``position_choices`` and ``build``.
    """

    @abstractmethod
    def position_choices(self) -> list[Sequence[str]]: ...

    def validate(self, architecture: Architecture) -> Architecture:
        if not isinstance(architecture, Architecture):
            raise ArchitectureError(f"expected an Architecture, got {type(architecture).__name__}")
        if architecture.space != self.name:
            raise ArchitectureError(f"architecture belongs to space {architecture.space!r}, not {self.name!r}")
        positions = self.position_choices()
        if len(architecture.choices) != len(positions):
            raise ArchitectureError(
                f"a {self.name!r} architecture has {len(positions)} choices, got {len(architecture.choices)}"
            )
        for i, (choice, allowed) in enumerate(zip(architecture.choices, positions)):
            if choice not in allowed:
                raise ArchitectureError(f"choice {i} of a {self.name!r} architecture is {choice!r}; accepted: {list(allowed)}")
        return architecture

    def sample(self, generator: torch.Generator) -> Architecture:
        picks = [allowed[int(torch.randint(len(allowed), (), generator=generator))] for allowed in self.position_choices()]
        return Architecture(self.name, tuple(picks))

    def mutate(self, architecture: Architecture, generator: torch.Generator) -> Architecture:
        positions = self.position_choices()
        mutable = [i for i, allowed in enumerate(positions) if len(allowed) > 1]
        if not mutable:
            raise ArchitectureError(f"space {self.name!r} has a single architecture; nothing to mutate")
        i = mutable[int(torch.randint(len(mutable), (), generator=generator))]
        others = [c for c in positions[i] if c != architecture.choices[i]]
        choices = list(architecture.choices)
        choices[i] = others[int(torch.randint(len(others), (), generator=generator))]
        return Architecture(self.name, tuple(choices))

    def token_choices(self) -> list[Sequence[str]]:
        return self.position_choices()

    def to_tokens(self, architecture: Architecture) -> list[int]:
        positions = self.position_choices()
        return [self.token_offset(i) + list(positions[i]).index(c) for i, c in enumerate(architecture.choices)]

    def from_tokens(self, tokens: Sequence[int]) -> Architecture:
        positions = self.position_choices()
        if len(tokens) != len(positions):
            raise ArchitectureError(f"a {self.name!r} token sequence has {len(positions)} tokens, got {len(tokens)}")
        choices = []
        for i, token in enumerate(tokens):
            if int(token) not in self.token_range(i):
                raise ArchitectureError(f"token {int(token)} is not valid at position {i}; accepted: {list(self.token_range(i))}")
            choices.append(positions[i][int(token) - self.token_offset(i)])
        return Architecture(self.name, tuple(choices))


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
