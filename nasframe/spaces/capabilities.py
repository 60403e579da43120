"""Optional capabilities of search spaces and networks, and the one way to require them.

Some components need more than the abstract methods of ``SearchSpace``: Cream needs the number of
classes, a FLOPs range needs a cost model, SSWP needs per-cell architecture parameters, SimCLR needs
the size of a network's features. Each such capability is declared here (an attribute with a
``None`` default on ``SearchSpace``, or a ``typing.Protocol``), and a component that needs one asks
for it through :func:`require` or :func:`architecture_cost`, which fail with a
:class:`CapabilityError` naming the space (or network), the capability, who needs it and how to
provide it.

| capability | where | meaning |
|---|---|---|
| ``input_shape`` | space attribute | ``(C, H, W)`` of one input: example input for export, cost model |
| ``num_classes`` | space attribute | classes of the classifier head |
| ``in_channels``, ``image_size`` | space attributes | what ``check_fits`` compares the data with |
| ``cost(architecture)`` | space method, hook ``nasframe_architecture_cost`` | ``{"params", "flops"}``; the default needs ``input_shape`` |
| ``parameter_shape``, ``derive_cell`` | :class:`CellParameterSpace` | per-cell architecture parameters (DARTS) |
| ``feature_dim`` | network attribute (:class:`HasFeatureDim`) | size of ``forward_features``' output |
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from nasframe.errors import NASFrameError

if TYPE_CHECKING:
    import torch

    from nasframe.spaces.architecture import Architecture

# What each capability is and how a space (or network) provides it: the second half of every error.
CAPABILITIES: dict[str, str] = {
    "input_shape": "the shape (C, H, W) of one input; set self.input_shape in the space's __init__",
    "num_classes": "the number of classes of its classifier; set self.num_classes in the space's __init__",
    "in_channels": "the channels of its input images; set self.in_channels in the space's __init__",
    "image_size": "the height and width of its input images; set self.image_size in the space's __init__",
    "cost": "a cost model: set input_shape = (C, H, W) for the default one (build the network, count its "
            "parameters and its FLOPs with FlopCounterMode), or override cost(architecture) / implement "
            "the hook nasframe_architecture_cost",
    "parameter_shape": "per-cell architecture parameters: a parameter_shape attribute and a derive_cell(alpha) "
                       "method, as nasframe.spaces.darts.DARTSSpace has",
    "derive_cell": "per-cell architecture parameters: a parameter_shape attribute and a derive_cell(alpha) "
                   "method, as nasframe.spaces.darts.DARTSSpace has",
    "feature_dim": "a feature_dim attribute on its networks: the size D of forward_features' (B, D) output",
}


class CapabilityError(NASFrameError):
    """A component needs an optional capability that the search space (or its network) lacks."""


@runtime_checkable
class CellParameterSpace(Protocol):
    """A space searched through per-cell architecture parameters (DARTS-like, used by SSWP):
    ``parameter_shape`` is ``(cells, edges, operations)`` and ``derive_cell(alpha)`` turns one
    cell's ``(edges, operations)`` parameters into that cell's genes."""

    parameter_shape: tuple[int, ...]

    def derive_cell(self, alpha: torch.Tensor) -> tuple: ...


@runtime_checkable
class HasFeatureDim(Protocol):
    """A network whose ``forward_features(x)`` returns ``(B, feature_dim)``."""

    feature_dim: int


def describe(thing: Any) -> str:
    """``search space 'nb201' (NB201Space)`` for a space, ``network MyNet`` for anything else."""
    name = getattr(type(thing), "name", None)
    if isinstance(name, str) and hasattr(thing, "validate"):
        return f"search space {name!r} ({type(thing).__name__})"
    return f"{'network' if hasattr(thing, 'forward') else 'object'} {type(thing).__name__}"


def provided(thing: Any, capability: str) -> Any:
    """The value of an optional capability, ``None`` where ``thing`` does not provide it (for
    components that adapt, such as ``check_fits``, which skips what a space does not declare)."""
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}; known: {', '.join(CAPABILITIES)}")
    return getattr(thing, capability, None)


def require(thing: Any, capability: str, needed_by: str, hint: str = "") -> Any:
    """The value of ``thing``'s ``capability`` (an attribute or a bound method); a
    ``CapabilityError`` naming both, ``needed_by`` and how to provide it where it is missing or
    ``None``. ``hint`` adds a way out (e.g. an option that avoids the need)."""
    value = getattr(thing, capability, None)
    if value is None:
        how = CAPABILITIES.get(capability, f"a {capability} attribute")
        extra = f". {hint}" if hint else ""
        raise CapabilityError(f"{needed_by} needs {capability!r}, which {describe(thing)} does not provide; "
                              f"it needs {how}{extra}")
    return value


def require_protocol(thing: Any, protocol: type, capability: str, needed_by: str) -> Any:
    """``thing`` itself if it implements ``protocol`` (a runtime-checkable Protocol above), else a
    ``CapabilityError`` as :func:`require` gives for ``capability``."""
    if not isinstance(thing, protocol):
        missing = [name for name in CAPABILITIES if name in _protocol_members(protocol) and getattr(thing, name, None) is None]
        require(thing, missing[0] if missing else capability, needed_by)
    return thing


def _protocol_members(protocol: type) -> set[str]:
    return set(getattr(protocol, "__annotations__", {})) | {n for n in vars(protocol) if not n.startswith("_")}


def architecture_cost(nas: Any, architecture: Architecture, needed_by: str) -> dict[str, float]:
    """``{"params", "flops"}`` of ``architecture`` from the ``nasframe_architecture_cost`` hook;
    a ``CapabilityError`` naming the space when no plugin has a cost model for it."""
    cost = nas.hook.nasframe_architecture_cost(architecture=architecture)
    if cost is None:
        how = CAPABILITIES["cost"]
        raise CapabilityError(f"{needed_by} needs the cost of an architecture, but {describe(nas.search_space)} has no "
                              f"cost model (nasframe_architecture_cost returned None); it needs {how}")
    return cost
