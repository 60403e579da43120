"""The cost hook (parameters and FLOPs of an architecture) of every built-in space, its cache, and
the strategies that need it failing clearly on a space without one."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from torch import nn

from nasframe import NASModule
from nasframe.spaces import Architecture, CategoricalSearchSpace
from nasframe.spaces.base import SearchSpace, network_cost
from nasframe.spaces.capabilities import CapabilityError
from nasframe.spaces.darts import DARTSSpace
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.spaces.nb101 import NB101Space
from nasframe.spaces.nb201 import NB201Space
from nasframe.strategies import SinglePathStrategy

TINY_SPACES = {
    "nb201": lambda: NB201Space(channels=4, cells_per_stage=1, in_channels=1, image_size=8),
    "darts": lambda: DARTSSpace(cells=3, channels=4, stem_multiplier=1, in_channels=1, image_size=8),
    "nb101": lambda: NB101Space(stem_channels=8, stacks=1, cells_per_stack=1, in_channels=1, image_size=8),
    "mbconv": lambda: MBConvSpace(stage_channels=(8, 16), stage_layers=(1, 1), stage_strides=(1, 2), stem_channels=4,
                                  stem_stride=1, first_channels=4, head_channels=16, final_channels=16, in_channels=1,
                                  image_size=8, allow_skip=True),
}


def counted_flops(network: nn.Module, shape: Sequence[int]) -> int:
    """FlopCounterMode's count of one input, written out here independently of network_cost."""
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops()


@pytest.mark.parametrize("kind", sorted(TINY_SPACES))
def test_cost_is_the_built_networks_parameters_and_counted_flops(kind):
    space = TINY_SPACES[kind]()
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        architecture = space.sample(generator)
        network = space.build(architecture)
        cost = space.cost(architecture)
        assert cost["params"] == sum(p.numel() for p in network.parameters()) > 0
        assert cost["flops"] == counted_flops(network, space.input_shape) > 0
        assert space.flops(architecture) == cost["flops"]


@pytest.mark.parametrize("kind", sorted(TINY_SPACES))
def test_hook_gives_the_cost_and_leaves_the_global_random_state_alone(kind):
    space = TINY_SPACES[kind]()
    nas = NASModule(space, SinglePathStrategy()) if kind != "nb101" else None  # NB-101 has no supernet
    architecture = space.sample(torch.Generator().manual_seed(1))
    state = torch.get_rng_state()
    cost = nas.hook.nasframe_architecture_cost(architecture=architecture) if nas else space.cost(architecture)
    assert torch.equal(torch.get_rng_state(), state)  # asking for a cost never changes a search
    assert cost == SearchSpace.cost(space, architecture)  # table-based overrides equal the generic count


def test_nb201_flops_grow_with_the_operation():
    space = TINY_SPACES["nb201"]()
    cell = {op: space.cost(Architecture("nb201", (op,) * 6)) for op in ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")}
    assert cell["none"]["flops"] == cell["skip_connect"]["flops"] < cell["nor_conv_1x1"]["flops"] < cell["nor_conv_3x3"]["flops"]
    assert cell["none"]["params"] < cell["nor_conv_1x1"]["params"] < cell["nor_conv_3x3"]["params"]


def test_mbconv_flops_grow_with_kernel_and_expansion():
    space = TINY_SPACES["mbconv"]()
    small, wide, big = (space.parse(text) for text in ("k3_e4-k3_e4", "k3_e6-k3_e6", "k5_e6-k5_e6"))
    assert space.flops(small) < space.flops(wide) < space.flops(big)


def test_cost_is_cached_per_architecture_with_a_bound(monkeypatch):
    space = TINY_SPACES["darts"]()
    space.cost_cache_size = 2
    builds = []
    build = space.build
    monkeypatch.setattr(space, "build", lambda architecture: builds.append(architecture) or build(architecture))
    a, b, c = (space.sample(torch.Generator().manual_seed(i)) for i in range(3))
    first = space.cost(a)
    first["flops"] = -1  # a caller changing its copy does not change the cache
    assert space.cost(a)["flops"] > 0 and builds == [a]
    space.cost(b), space.cost(c)  # a is the least recently used of three: dropped
    space.cost(c)
    assert builds == [a, b, c]
    space.cost(a)
    assert builds == [a, b, c, a]


def test_network_cost_takes_a_batch_shape_as_one_input():
    network = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert network_cost(network, (3, 2, 2)) == network_cost(network, (8, 3, 2, 2)) == {"params": 65, "flops": 2 * 12 * 5}


class NoShapeSpace(CategoricalSearchSpace):
    """A space that cannot say what its input is: no cost model."""

    name = "no_shape"

    def position_choices(self):
        return [("a", "b")]

    def build(self, architecture):
        return nn.Linear(2, 2)

    def supernet(self):
        return nn.Linear(2, 2)


def test_space_without_input_shape_has_no_cost_and_flops_range_fails_naming_it():
    space = NoShapeSpace()
    architecture = Architecture("no_shape", ("a",))
    assert space.cost(architecture) is None
    with pytest.raises(CapabilityError, match=r"search space 'no_shape' \(NoShapeSpace\) has no cost model.*input_shape"):
        space.flops(architecture)
    nas = NASModule(space, SinglePathStrategy(flops_range=(0, 10)))
    with pytest.raises(CapabilityError, match=r"SinglePathStrategy flops_range needs the cost.*'no_shape' \(NoShapeSpace\) has no cost model"):
        nas.strategy.propose(nas)
