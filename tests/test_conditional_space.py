"""Conditional choices in CategoricalSearchSpace: a depth decides how many widths exist.

``DepthWidthSpace`` below is the worked example CONTRIBUTING.md points to."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
import torch
from torch import nn

from nasframe import ArchitectureError, NASFrameError
from nasframe.spaces import INACTIVE, ActiveIf, Architecture, CategoricalSearchSpace
from nasframe.spaces.nb201 import NB201Space

WIDTHS = ("8", "16", "32")


class DepthWidthSpace(CategoricalSearchSpace):
    """An MLP of 1 to 3 hidden layers: position 0 is the depth, positions 1-3 the widths of the
    layers, each present only when the depth reaches it."""

    name = "depth_width"

    def __init__(self, in_features: int = 4, num_classes: int = 3) -> None:
        self.in_features, self.num_classes = in_features, num_classes
        self.input_shape = (in_features,)

    def position_choices(self) -> list[Sequence[str]]:
        return [("1", "2", "3"), WIDTHS, WIDTHS, WIDTHS]

    def position_conditions(self) -> dict[int, ActiveIf]:
        # layer 1 always exists; layer 2 from depth 2, layer 3 at depth 3
        return {2: ActiveIf(0, ("2", "3")), 3: ActiveIf(0, ("3",))}

    def build(self, architecture: Architecture) -> nn.Module:
        depth, *widths = self.validate(architecture).choices
        layers, features = [], self.in_features
        for width in widths[: int(depth)]:
            layers += [nn.Linear(features, int(width)), nn.ReLU()]
            features = int(width)
        return nn.Sequential(*layers, nn.Linear(features, self.num_classes))


def all_valid(space: DepthWidthSpace) -> set[Architecture]:
    valid = set()
    for depth in ("1", "2", "3"):
        for widths in itertools.product(WIDTHS, repeat=int(depth)):
            valid.add(Architecture(space.name, (depth, *widths, *[INACTIVE] * (3 - int(depth)))))
    return valid


def test_sampling_gives_only_valid_architectures_and_reaches_all():
    space = DepthWidthSpace()
    generator = torch.Generator().manual_seed(0)
    seen = {space.sample(generator) for _ in range(600)}
    assert seen == all_valid(space)  # 3 + 9 + 27 architectures, inactive widths always the placeholder


def test_validation_rejects_a_width_of_a_missing_layer_and_a_missing_width():
    space = DepthWidthSpace()
    space.validate(Architecture("depth_width", ("2", "8", "16", INACTIVE)))
    with pytest.raises(ArchitectureError, match=r"choice 3 .* is '32', but position 3 is inactive .*choice 0 is one of \['3'\]"):
        space.validate(Architecture("depth_width", ("2", "8", "16", "32")))
    with pytest.raises(ArchitectureError, match=r"choice 2 .* is '<inactive>'; accepted: \['8', '16', '32'\]"):
        space.validate(Architecture("depth_width", ("3", "8", INACTIVE, "32")))


def test_mutation_stays_valid_and_fills_or_clears_dependent_positions():
    space = DepthWidthSpace()
    generator = torch.Generator().manual_seed(1)
    valid = all_valid(space)
    architecture = space.parse(Architecture("depth_width", ("1", "8", INACTIVE, INACTIVE)).to_json())
    depths = set()
    for _ in range(200):
        mutated = space.mutate(architecture, generator)
        assert mutated in valid and mutated != architecture
        depths.add(mutated.choices[0])
        architecture = mutated
    assert depths == {"1", "2", "3"}


def test_tokens_round_trip_and_an_inconsistent_token_sequence_fails():
    space = DepthWidthSpace()
    choices = space.token_choices()
    assert [len(c) for c in choices] == [3, 3, 4, 4]  # conditional positions have one more token: inactive
    assert space.vocabulary_size() == 14
    for architecture in all_valid(space):
        assert space.from_tokens(space.to_tokens(architecture)) == architecture
        assert space.encode(architecture).sum() == 4
    tokens = space.to_tokens(Architecture("depth_width", ("1", "8", INACTIVE, INACTIVE)))
    tokens[2] = space.token_offset(2)  # a width for layer 2 of a 1-layer network
    with pytest.raises(ArchitectureError, match="inactive"):
        space.from_tokens(tokens)


def test_active_positions_guide_a_define_by_run_optimizer():
    space = DepthWidthSpace()
    assert space.active_positions(("2", "8", "16", INACTIVE)) == [0, 1, 2]
    assert space.active_positions(("3",)) == [0]  # a prefix: only the positions it covers
    assert [space.is_active(i, ("1",)) for i in range(4)] == [True, True, False, False]
    # deciding one position at a time, as Optuna's define-by-run trials do
    generator, chosen = torch.Generator().manual_seed(2), []
    for i, allowed in enumerate(space.position_choices()):
        chosen.append(allowed[int(torch.randint(len(allowed), (), generator=generator))] if space.is_active(i, chosen) else INACTIVE)
    assert space.validate(Architecture(space.name, tuple(chosen)))


def test_cost_follows_the_active_layers():
    space = DepthWidthSpace()
    shallow = space.cost(Architecture("depth_width", ("1", "32", INACTIVE, INACTIVE)))
    deep = space.cost(Architecture("depth_width", ("3", "32", "32", "32")))
    assert shallow["params"] == 4 * 32 + 32 + 32 * 3 + 3 and deep["flops"] > shallow["flops"]


def test_spaces_without_conditions_are_unchanged():
    space = NB201Space(channels=4, cells_per_stage=1)
    assert space.token_choices() == space.position_choices() and space.vocabulary_size() == 30
    # the random stream of sampling and mutation is the one of independent choices
    generator = torch.Generator().manual_seed(3)
    expected = tuple(space.position_choices()[i][int(torch.randint(5, (), generator=generator))] for i in range(6))
    assert space.sample(torch.Generator().manual_seed(3)).choices == expected


@pytest.mark.parametrize("conditions, needle", [
    ({1: ActiveIf(1, ("1",))}, "earlier position before it"),
    ({2: ActiveIf(0, ("4",))}, r"names \['4'\] for position 0"),
    ({2: "depth>1"}, "expected ActiveIf"),
])
def test_a_malformed_condition_names_the_position(conditions, needle):
    space = DepthWidthSpace()
    space.position_conditions = lambda: conditions
    with pytest.raises(NASFrameError, match=needle):
        space.sample(torch.Generator())
