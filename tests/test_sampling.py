"""Drawing many architectures at once: ``SearchSpace.sample_many`` and
``SampleBasedStrategy.sample_unseen(batched=True)``, which large candidate pools use."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from helpers import CountConvolutions
from nasframe.hookspecs import hookimpl
from nasframe.runner import SearchRunner
from nasframe.spaces import INACTIVE
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb201 import OPERATIONS, NB201Space
from nasframe.strategies import RandomSearch
from test_conditional_space import DepthWidthSpace
from test_space_properties import SPACES, make


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sample_many_draws_valid_architectures_from_the_generator_alone(name):
    space = make(name)
    first = space.sample_many(50, torch.Generator().manual_seed(3))
    assert len(first) == 50 and all(space.validate(a) == a for a in first)
    assert space.sample_many(50, torch.Generator().manual_seed(3)) == first
    assert space.sample_many(0, torch.Generator()) == []


def test_sample_many_is_uniform_per_position_on_a_product_space():
    space = NB201Space()
    drawn = space.sample_many(5000, torch.Generator().manual_seed(0))
    for position in range(6):
        counts = Counter(a.choices[position] for a in drawn)
        assert set(counts) == set(OPERATIONS)
        assert all(abs(count - 1000) < 150 for count in counts.values()), counts  # ~5 std
    assert len(set(drawn)) > 4000  # independent draws: few repeats among 15,625


def test_sample_many_follows_the_conditions_like_sample():
    space = DepthWidthSpace()
    drawn = space.sample_many(3000, torch.Generator().manual_seed(1))
    depths = Counter(a.choices[0] for a in drawn)
    assert all(abs(count - 1000) < 120 for count in depths.values()), depths
    for architecture in drawn:
        depth = int(architecture.choices[0])
        assert all((choice != INACTIVE) == (layer <= depth) for layer, choice in enumerate(architecture.choices[1:], 1))
    # an active width is uniform whatever decided that it exists
    third = Counter(a.choices[3] for a in drawn if a.choices[0] == "3")
    assert set(third) == {"8", "16", "32"} and min(third.values()) > 0.25 * sum(third.values())


def runner(space, *plugins):
    strategy = RandomSearch(CountConvolutions(), budget=10, seed=0)
    return strategy, SearchRunner(space, strategy, plugins=plugins)


@pytest.mark.parametrize("batched", [False, True])
def test_sample_unseen_returns_distinct_architectures_neither_seen_nor_excluded(batched):
    strategy, nas = runner(NB201Space())
    seen = set(NB201Space().sample_many(300, torch.Generator().manual_seed(5)))
    excluded = set(NB201Space().sample_many(300, torch.Generator().manual_seed(6)))
    strategy.seen.update(seen)
    picks = strategy.sample_unseen(nas, 2000, exclude=excluded, batched=batched)
    assert len(picks) == 2000 == len(set(picks))
    assert not (set(picks) & (seen | excluded))


@pytest.mark.parametrize("batched", [False, True])
def test_sample_unseen_returns_fewer_when_the_space_is_nearly_exhausted(batched):
    space = DepthWidthSpace()  # 3 + 9 + 27 = 39 architectures
    strategy, nas = runner(space)
    everything = set(space.sample_many(5000, torch.Generator().manual_seed(0)))
    assert len(everything) == 39
    keep = sorted(everything, key=str)[:5]
    strategy.seen.update(everything - set(keep))
    picks = strategy.sample_unseen(nas, 20, tries=200, batched=batched)
    assert sorted(picks, key=str) == keep


class OnlyNarrowLayers:
    """A plugin that overrides sampling: every width is 8."""

    @hookimpl(tryfirst=True)
    def nasframe_sample_architecture(self, generator):
        depth = ("1", "2", "3")[int(torch.randint(3, (), generator=generator))]
        return Architecture("depth_width", (depth, *("8" if layer <= int(depth) else INACTIVE for layer in (1, 2, 3))))


def test_batched_sampling_still_honours_a_plugin_that_overrides_sampling():
    strategy, nas = runner(DepthWidthSpace(), OnlyNarrowLayers())
    picks = strategy.sample_unseen(nas, 3, batched=True)
    assert sorted(a.choices[0] for a in picks) == ["1", "2", "3"]
    assert all(set(a.choices[1:]) <= {"8", INACTIVE} for a in picks)
