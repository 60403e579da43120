"""The NAS-Bench-101 space (validity, token view, sampling, network) and the NASLib sample table."""

from __future__ import annotations

import pytest
import torch

from conftest import shared_path
from nasframe.errors import ArchitectureError, DataError
from nasframe.evaluators import Evaluator
from nasframe.spaces.nb101 import OPERATIONS, NB101Space, prune
from nasframe.tabular import NB101Benchmark
from nasframe.runner import run_search
from nasframe_seminas import SemiNAS



@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: extra threads only add hand-offs on a shared machine
    yield
    torch.set_num_threads(threads)


CHAIN = [[0, 1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0, 0],
         [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0] * 7]


def test_validity_rules_name_what_is_wrong():
    space = NB101Space()
    space.make(CHAIN, ["conv3x3-bn-relu"] * 5)
    with pytest.raises(ArchitectureError, match="does not reach"):
        space.make([[0] * 7] * 7, ["conv3x3-bn-relu"] * 5)
    full = [[1 if j > i else 0 for j in range(7)] for i in range(7)]
    with pytest.raises(ArchitectureError, match="21 edges; at most 9"):
        space.make(full, ["maxpool3x3"] * 5)
    with pytest.raises(ArchitectureError, match="upper triangular"):
        space.make([[1] + row[1:] for row in CHAIN], ["maxpool3x3"] * 5)
    with pytest.raises(ArchitectureError, match="interior operations"):
        space.make(CHAIN, ["conv5x5"] * 5)


def test_dangling_vertices_are_pruned_before_counting_edges():
    matrix = [row[:] for row in CHAIN]
    matrix[0][5] = 1  # vertex 5 also fed by the input
    matrix[1][3] = matrix[1][4] = 1
    pruned, ops = prune(matrix, ["input", *["maxpool3x3"] * 5, "output"])
    assert len(pruned) == 7 and sum(map(sum, pruned)) == 9
    cut = [row[:] for row in matrix]
    cut[5][6] = 0
    cut[4][6] = 1  # vertex 5 now leads nowhere: pruned
    assert len(prune(cut, ["input", *["maxpool3x3"] * 5, "output"])[0]) == 6


def test_tokens_sampling_mutation_and_formatting_round_trip():
    space = NB101Space()
    generator = torch.Generator().manual_seed(0)
    assert len(space.token_choices()) == 26 and space.vocabulary_size() == 21 * 2 + 5 * len(OPERATIONS)
    for _ in range(50):
        architecture = space.sample(generator)
        assert space.from_tokens(space.to_tokens(architecture)) == architecture
        assert space.parse(space.format(architecture)) == architecture
        child = space.mutate(architecture, generator)
        assert child != architecture and space.validate(child) is child


def test_network_builds_and_runs():
    space = NB101Space(stem_channels=8, stacks=2, cells_per_stack=1, image_size=8)
    network = space.build(space.sample(torch.Generator().manual_seed(1)))
    assert network(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    assert network.forward_features(torch.randn(2, 3, 8, 8)).shape == (2, network.feature_dim)


def test_naslib_sample_reads_and_its_parameter_counts_match_the_network():
    benchmark = NB101Benchmark(str(shared_path("nb101/naslib_zc_nasbench101.json")))
    architectures = benchmark.architectures()
    assert len(architectures) == 500 and "val_accuracy" in benchmark.metrics
    first = architectures[0]
    assert benchmark.query(first) == pytest.approx(92.578125)
    # the standard network reproduces the benchmark's recorded parameter count (in millions)
    params = sum(p.numel() for p in NB101Space().build(first).parameters())
    assert params / 1e6 == pytest.approx(benchmark.query(first, "params"), abs=1e-6)
    with pytest.raises(DataError, match="unknown metric"):
        benchmark.query(first, "test_accuracy")


def test_seminas_searches_the_nb101_space_through_tokens():
    space = NB101Space()

    class PrunedConvolutions(Evaluator):  # a deterministic stand-in score: 3x3 convolutions left after pruning
        def score(self, nas, architectures, batch):
            return torch.tensor([float(space.pruned(a)[1].count("conv3x3-bn-relu")) for a in architectures])

    strategy = SemiNAS(PrunedConvolutions(), budget=12, initial=6, per_iteration=3, unlabelled=16, top_k=6, steps=3,
                       pseudo_steps=3, hidden_size=16, mlp_layers=(16,), fill_pool=16, seed=0)
    run_search(space, strategy)
    assert len({a for a, _ in strategy.history}) == 12 and all(space.validate(a) for a, _ in strategy.history)
    assert strategy.counts["iterations"] == 2
