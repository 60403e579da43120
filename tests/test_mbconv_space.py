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


def test_extract_equals_supernet_under_a_fixed_path():
    torch.manual_seed(0)
    space = tiny()
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
