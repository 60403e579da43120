"""The architecture value type shared by every search space."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nasframe.errors import ArchitectureError

Choice = Any  # str | int | tuple of choices: nested, JSON-representable, hashable


def _freeze(value: Any, where: str) -> Choice:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v, where) for v in value)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ArchitectureError(f"{where}: choices must be strings, integers or lists of them, got {value!r}")
    return value


def _thaw(value: Choice) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Architecture:
    """One point of a search space: the space's name and its choices as nested tuples.

    Hashable and immutable, so it can key dictionaries (query caches, populations). Whether the
    choices are *valid* is the space's business: use ``SearchSpace.validate`` or ``SearchSpace.parse``.
    """

    space: str
    choices: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.space, str) or not self.space:
            raise ArchitectureError(f"architecture space must be a non-empty string, got {self.space!r}")
        choices = self.choices
        if not (type(choices) is tuple and all(type(c) is str for c in choices)):  # else frozen already (the common case, kept fast)
            object.__setattr__(self, "choices", _freeze(choices, f"architecture of space {self.space!r}"))

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "choices": _thaw(self.choices)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any) -> Architecture:
        if not isinstance(data, dict) or set(data) != {"space", "choices"}:
            raise ArchitectureError(f"an architecture is a JSON object with keys 'space' and 'choices', got {data!r}")
        return cls(data["space"], data["choices"])

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ArchitectureError(f"architecture JSON is malformed ({exc}): {text[:80]!r}") from None
        return cls.from_dict(data)
