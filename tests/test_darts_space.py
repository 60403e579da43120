"""The DARTS cell space: values, derivation rule, and weight-preserving extraction."""

from __future__ import annotations

import pytest
import torch

from nasframe import ArchitectureError, Architecture, load_model
from nasframe.export import SafetensorsExporter
from nasframe.spaces.darts import EDGE_INDEX, EDGES, OPERATIONS, DARTSSpace, PathWeights, reduction_indices

pytestmark = pytest.mark.usefixtures('native_cpu_kernels')


def tiny(**overrides) -> DARTSSpace:
    return DARTSSpace(**{"cells": 3, "channels": 2, "stem_multiplier": 2, "in_channels": 1, "image_size": 8, **overrides})


def cell_alpha(favourite: dict[tuple[int, int], tuple[str, float]] | None = None) -> torch.Tensor:
    """(14, 7) parameters: 0 everywhere except ``{(node, input): (op, value)}``."""
    alpha = torch.zeros(len(EDGES), len(OPERATIONS))
    for edge, (op, value) in (favourite or {}).items():
        alpha[EDGE_INDEX[edge], OPERATIONS.index(op)] = value
    return alpha


def test_space_shape():
    assert len(EDGES) == 14 and len(OPERATIONS) == 7 and "none" not in OPERATIONS
    assert reduction_indices(20) == (6, 13) and reduction_indices(3) == (1, 2)
    assert tiny().parameter_shape == (3, 14, 7)


def test_string_json_and_tokens_round_trip():
    space = tiny()
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        arch = space.sample(generator)
        assert space.parse(space.format(arch)) == arch
        assert space.parse(arch.to_json()) == arch
        tokens = space.to_tokens(arch)
        assert len(tokens) == 3 * 16 and all(t in space.token_range(p) for p, t in enumerate(tokens))
        assert space.from_tokens(tokens) == arch
        mutant = space.mutate(arch, generator)
        assert mutant != arch and space.validate(mutant) is mutant
        assert sum(a != b for ca, cb in zip(arch.choices, mutant.choices) for a, b in zip(ca, cb)) == 1


@pytest.mark.parametrize("text, message", [
    ("|sep_conv_3x3~0|", "node groups"),
    ("|conv~0|skip_connect~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|", "unknown operation 'conv'"),
    ("|sep_conv_3x3~0|sep_conv_3x3~0|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|", "twice"),
    ("|sep_conv_3x3~0|sep_conv_3x3~2|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|+|sep_conv_3x3~0|sep_conv_3x3~1|", "accepted inputs 0..1"),
    ("|sep_conv_3x3 0|sep_conv_3x3~1|+|a|b|+|c|d|+|e|f|", "malformed gene"),
    ('{"space": "darts", "choices": [[["sep_conv_3x3"]]]}', "has 3 cells"),
])
def test_malformed_architectures_fail_clearly(text, message):
    space = tiny(cells=1) if "node groups" in message or "~" in text else tiny()
    with pytest.raises(ArchitectureError, match=message):
        space.parse(text)


def test_caps_are_part_of_the_space():
    cell = tuple((op, i) for op, i in [("skip_connect", 0), ("skip_connect", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                                        ("max_pool_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1)])
    with pytest.raises(ArchitectureError, match="at most 2"):
        tiny(cells=1).validate(Architecture("darts", (cell,)))
    assert tiny(cells=1, max_skips=None).validate(Architecture("darts", (cell,)))
    generator = torch.Generator().manual_seed(1)
    for _ in range(30):  # sampling respects the caps
        for genes in tiny().sample(generator).choices:
            ops = [op for op, _ in genes]
            assert ops.count("skip_connect") <= 2 and sum(op.endswith("pool_3x3") for op in ops) <= 2


def test_derivation_keeps_the_two_strongest_edges_per_node():
    space = tiny(cells=1)
    alpha = cell_alpha({(0, 1): ("dil_conv_5x5", 3.0), (0, 0): ("sep_conv_5x5", 2.0),
                        (3, 4): ("dil_conv_3x3", 4.0), (3, 2): ("sep_conv_3x3", 1.0), (3, 0): ("sep_conv_5x5", 0.5)})
    genes = space.derive_cell(alpha)
    assert genes[0:2] == (("sep_conv_5x5", 0), ("dil_conv_5x5", 1))  # both edges of node 0, in input order
    assert genes[6:8] == (("sep_conv_3x3", 2), ("dil_conv_3x3", 4))  # the 0.5 edge loses to 1.0 and 4.0
    arch = space.derive(alpha[None])
    assert arch.choices == (genes,)


def test_derivation_caps_skips_and_pools_with_the_best_parametric_op():
    space = tiny(cells=1)
    favourite = {}
    for node in range(4):  # every node prefers skip on input 0 and max pool on input 1
        favourite[(node, 0)] = ("skip_connect", 5.0 - node)
        favourite[(node, 1)] = ("max_pool_3x3", 5.0 - node)
    alpha = cell_alpha(favourite)
    alpha[EDGE_INDEX[(3, 0)], OPERATIONS.index("dil_conv_5x5")] = 1.0  # the best parametric op of the weakest skip edge
    genes = space.derive_cell(alpha)
    ops = [op for op, _ in genes]
    assert [i for _, i in genes] == [0, 1] * 4
    assert ops[:4] == ["skip_connect", "max_pool_3x3", "skip_connect", "max_pool_3x3"], "the strongest two of each kind stay"
    assert ops[4] == "sep_conv_3x3" and ops[6] == "dil_conv_5x5", "excess skips become the edge's best parametric op"
    assert ops[5] == "sep_conv_3x3" and ops[7] == "sep_conv_3x3", "excess pools too (ties: the first parametric op)"
    assert len(set(space.derive(torch.randn(space.parameter_shape)).choices[0])) >= 1


def test_derivation_rejects_wrong_shapes():
    with pytest.raises(ArchitectureError, match="shape"):
        tiny().derive(torch.zeros(2, 14, 7))


def trained_supernet(space: DARTSSpace, arch: Architecture) -> torch.nn.Module:
    torch.manual_seed(0)
    supernet = space.supernet()
    optimizer = torch.optim.SGD(supernet.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):  # move weights and BN running statistics away from their initial values
        for path in (arch, space.sample(generator)):
            optimizer.zero_grad()
            supernet(torch.randn(8, 1, 8, 8), path).square().mean().backward()
            optimizer.step()
    return supernet.eval()


def test_extract_equals_the_supernet_path_exactly(tmp_path):
    space = tiny()
    arch = space.sample(torch.Generator().manual_seed(3))
    supernet = trained_supernet(space, arch)
    network = space.extract(supernet, arch).eval()
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        expected = supernet(x, arch)
        assert torch.equal(network(x), expected), "weights, BN statistics and the summation order are preserved"
        assert not any(isinstance(m, torch.nn.ModuleDict) for m in network.modules())
        assert sum(p.numel() for p in network.parameters()) < sum(p.numel() for p in supernet.parameters())
        bn = network.cells[0].preprocess1[2]
        assert bn.affine and torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert not torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean)), "running statistics copied"
        # the export round trip (architecture.json + safetensors, rebuilt with no supernet) keeps them too
        SafetensorsExporter().export(arch, network, space, tmp_path, None)
        assert torch.equal(load_model(tmp_path)(x), expected)
        # and a one-hot PathWeights (what strategies pass) runs the same path
        active = torch.zeros(space.parameter_shape, dtype=torch.bool)
        for c, genes in enumerate(arch.choices):
            for g, (op, source) in enumerate(genes):
                active[c, EDGE_INDEX[(g // 2, source)], OPERATIONS.index(op)] = True
        assert torch.equal(supernet(x, PathWeights(active.float(), active)), expected)


def test_networks_reject_wrong_arch_arguments():
    space = tiny()
    arch = space.sample(torch.Generator().manual_seed(0))
    with pytest.raises(ArchitectureError, match="Architecture or a PathWeights"):
        space.supernet()(torch.randn(2, 1, 8, 8), "nope")
    with pytest.raises(ArchitectureError, match="fixed architecture"):
        space.build(arch)(torch.randn(2, 1, 8, 8), arch)
    with pytest.raises(ValueError, match="cells must be a positive integer"):
        DARTSSpace(cells=0)
