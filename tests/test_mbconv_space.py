"""The MBConv space: architecture strings, exact FLOPs, and weight-preserving extraction."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.mbconv import MBConv, MBConvSpace

pytestmark = pytest.mark.usefixtures('one_thread')


def tiny(**overrides) -> MBConvSpace:
    args = dict(stage_channels=(8, 16), stage_layers=(1, 2), stage_strides=(2, 2), stem_channels=8, stem_stride=1,
                first_channels=8, head_channels=16, final_channels=32, image_size=8, in_channels=1, allow_skip=True)
    return MBConvSpace(**{**args, **overrides})


def counted(module: torch.nn.Module, shape: tuple[int, ...]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops()


def test_choices_and_skip_positions():
    space = tiny()
    positions = space.position_choices()
    assert len(positions) == 3
    assert "skip" not in positions[0] and "skip" not in positions[1]  # first blocks change width/resolution
    assert "skip" in positions[2] and len(positions[2]) == 7
    assert "skip" not in tiny(allow_skip=False).position_choices()[2]


def test_parse_format_round_trip_and_errors():
    space = tiny()
    arch = space.parse("k3_e4-k7_e6-skip")
    assert arch == Architecture("mbconv", ("k3_e4", "k7_e6", "skip"))
    assert space.format(arch) == "k3_e4-k7_e6-skip"
    assert space.parse(arch.to_json()) == arch
    with pytest.raises(ArchitectureError, match="has 2 blocks; .* has 3"):
        space.parse("k3_e4-k5_e4")
    with pytest.raises(ArchitectureError, match="accepted"):
        space.parse("k3_e4-k9_e4-skip")
    with pytest.raises(ArchitectureError, match="'skip'.*accepted"):
        space.parse("skip-k3_e4-k3_e4")
    with pytest.raises(NASFrameError, match="equal length"):
        MBConvSpace(stage_channels=(8, 16), stage_layers=(1,), stage_strides=(2, 2))
    with pytest.raises(NASFrameError, match="odd"):
        MBConvSpace(kernels=(3, 4))


def test_flops_of_a_known_block():
    # 8 -> 8 channels, kernel 3, expansion 4 (32 inside), stride 1 on 4x4, SE to int(8 * 0.25) = 2 channels
    block = MBConv(8, 8, kernel=3, expansion=4, stride=1, se_ratio=0.25, track_running_stats=True)
    hw = 4 * 4
    expected = 2 * hw * 8 * 32 + 2 * hw * 32 * 9 + 2 * 32 * 2 + 2 * 2 * 32 + 2 * hw * 32 * 8
    assert counted(block, (8, 4, 4)) == expected == 25856


def test_flops_table_is_exact():
    space = tiny()
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        arch = space.sample(generator)
        assert space.flops(arch) == counted(space.build(arch), space.input_shape)
    # one block changed from k3_e4 to k5_e4: only its depthwise conv differs, by 2*H*W*C*(25-9)
    a, b = space.parse("k3_e4-k3_e4-k3_e4"), space.parse("k3_e4-k3_e4-k5_e4")
    assert space.flops(b) - space.flops(a) == 2 * (2 * 2) * (16 * 4) * (25 - 9)  # block 2: 16 ch x4 at 2x2
    assert space.flops(space.parse("k3_e4-k3_e4-skip")) < space.flops(a)


@pytest.mark.parametrize("weight_sharing", ["independent", "nested"])
def test_extract_equals_supernet_under_a_fixed_path(weight_sharing):
    torch.manual_seed(0)
    space = tiny(weight_sharing=weight_sharing)
    supernet = space.supernet()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(10, (16,))
    for _ in range(5):  # a few single-path steps so weights and BN statistics differ between candidates
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(supernet(x, space.sample(generator)), y).backward()
        optimizer.step()
    supernet.eval()
    for arch in [space.parse("k7_e6-k5_e4-skip"), space.parse("k3_e4-k3_e6-k7_e4")]:
        network = space.extract(supernet, arch).eval()
        assert network.feature_dim == supernet.feature_dim == 32
        with torch.no_grad():
            torch.testing.assert_close(network(x), supernet(x, arch), rtol=0, atol=0)
            torch.testing.assert_close(network.forward_features(x), supernet.forward_features(x, arch), rtol=0, atol=0)
        assert sum(p.numel() for p in network.parameters()) < sum(p.numel() for p in supernet.parameters())
    with pytest.raises(NASFrameError, match="needs the path"):
        supernet(x)


def test_nested_candidates_are_slices_of_one_block():
    torch.manual_seed(0)
    independent, nested = tiny().supernet(), tiny(weight_sharing="nested").supernet()
    assert sum(p.numel() for p in nested.parameters()) < sum(p.numel() for p in independent.parameters()) / 2
    space = tiny(weight_sharing="nested")
    block = nested.blocks[2]  # 16 -> 16 channels, stride 1: kernels 3/5/7 x expansions 4/6, or skip
    small, large = block.candidate_state("k3_e4"), block.candidate_state("k7_e6")
    # k3_e4 is the centre 3x3 of the first 64 of k7_e6's 96 depthwise filters, and the first 64 expand rows
    torch.testing.assert_close(small["depthwise.0.weight"], large["depthwise.0.weight"][:64, :, 2:5, 2:5], rtol=0, atol=0)
    torch.testing.assert_close(small["expand.0.weight"], large["expand.0.weight"][:64], rtol=0, atol=0)
    assert small["expand.1.weight"].shape == (64,)  # BatchNorm is the candidate's own
    assert block.candidate_state("skip") == {}
    # a step on one path moves the weights the other paths are sliced from
    before = space.extract(nested, space.parse("k3_e4-k3_e4-k3_e4")).blocks[2].depthwise[0].weight.clone()
    torch.nn.functional.cross_entropy(nested(torch.randn(4, 1, 8, 8), space.parse("k7_e6-k7_e6-k7_e6")),
                                      torch.tensor([0, 1, 2, 3])).backward()
    torch.optim.SGD(nested.parameters(), lr=1.0).step()
    after = space.extract(nested, space.parse("k3_e4-k3_e4-k3_e4")).blocks[2].depthwise[0].weight
    assert not torch.equal(before, after)
    with pytest.raises(NASFrameError, match="weight_sharing must be 'independent' or 'nested'"):
        tiny(weight_sharing="shared")
    with pytest.raises(NASFrameError, match="4 searchable blocks; was it built by a different space"):
        tiny(stage_layers=(1, 3)).extract(nested, tiny(stage_layers=(1, 3)).parse("k3_e4-k3_e4-k3_e4-k3_e4"))
    wider = tiny(stage_channels=(8, 24), weight_sharing="nested")
    with pytest.raises(NASFrameError, match="do not fit 'k3_e4-k3_e4-k3_e4'; was it built by a different 'mbconv' space"):
        wider.extract(nested, wider.parse("k3_e4-k3_e4-k3_e4"))
