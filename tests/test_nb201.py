"""NAS-Bench-201 space and table: strings, index, encodings, sampling, supernet extraction, queries."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import shared_path
from nasframe.errors import ArchitectureError, DataError
from nasframe.evaluators import TabularEvaluator
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.nb201 import EDGES, NUM_ARCHITECTURES, OPERATIONS, NB201Space
from nasframe.tabular.nb201 import NB201Benchmark

FORMAT = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


@pytest.fixture(scope="module")
def table() -> NB201Benchmark:
    return NB201Benchmark(str(shared_path("nb201/nb201_test_accuracy.csv")))


def test_string_round_trip_for_all_architectures():
    space = NB201Space()
    architectures = space.all_architectures()
    assert len(set(architectures)) == NUM_ARCHITECTURES == 15_625
    for architecture in architectures:
        text = space.format(architecture)
        assert space.parse(text) == architecture
        assert text.count("+") == 2 and text.count("~") == len(EDGES)


def test_table_strings_and_index_round_trip(table):
    space = NB201Space()
    with shared_path("nb201/nb201_test_accuracy.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == NUM_ARCHITECTURES
    for row in rows:
        architecture = space.parse(row["arch"])
        assert space.format(architecture) == row["arch"]
        assert table.index(architecture) == int(row["index"])
        assert table.architecture(int(row["index"])) == architecture
    assert len({table.index(a) for a in space.all_architectures()}) == NUM_ARCHITECTURES


@pytest.mark.parametrize("text", [
    "",
    "|none~0|",
    "|none~0|+|none~0|none~1|",                                                  # two nodes
    "|none~0|+|none~0|none~1|+|none~0|none~1|",                                  # node 3 has 2 inputs
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",                           # wrong source node
    "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",                           # unknown operation
    "none~0+none~0|none~1+none~0|none~1|none~2",                                 # no bars
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",                  # four groups
])
def test_malformed_string_names_the_accepted_format(text):
    with pytest.raises(ArchitectureError) as info:
        NB201Space().parse(text)
    message = str(info.value)
    assert FORMAT in message or "accepted" in message
    if "unknown operation" in message:
        assert all(op in message for op in OPERATIONS)


def test_parse_rejects_non_strings():
    with pytest.raises(ArchitectureError, match="string"):
        NB201Space().parse(123)  # type: ignore[arg-type]


def test_encodings():
    space = NB201Space()
    architecture = space.parse("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|")
    vector = space.encode(architecture, "vector")
    assert vector.shape == (len(EDGES) * len(OPERATIONS),) and vector.sum() == len(EDGES)
    assert vector.view(len(EDGES), len(OPERATIONS)).argmax(1).tolist() == [OPERATIONS.index(op) for op in architecture.choices]
    tokens = space.encode(architecture, "tokens")
    assert [t in space.token_range(i) for i, t in enumerate(tokens)] == [True] * len(EDGES)
    assert space.from_tokens(tokens) == architecture
    with pytest.raises(ArchitectureError, match="accepted"):
        space.from_tokens([0] * len(EDGES))  # token 0 belongs to position 0 only
    with pytest.raises(ValueError, match="accepted"):
        space.encode(architecture, "graph")


def test_sample_and_mutate_stay_valid_and_are_seeded():
    space = NB201Space()
    first = [space.sample(torch.Generator().manual_seed(3)) for _ in range(2)]
    assert first[0] == first[1]
    generator = torch.Generator().manual_seed(0)
    samples = [space.sample(generator) for _ in range(200)]
    assert len(set(samples)) > 150
    for architecture in samples[:50]:
        child = space.mutate(space.validate(architecture), generator)
        space.validate(child)
        assert sum(a != b for a, b in zip(architecture.choices, child.choices)) == 1


def test_invalid_architecture_names_the_choices():
    with pytest.raises(ArchitectureError, match="accepted"):
        NB201Space().validate(Architecture("nb201", ("conv",) * 6))


def test_extract_equals_the_supernet_path():
    space = NB201Space(channels=4, cells_per_stage=1, in_channels=1, image_size=8)
    torch.manual_seed(0)
    supernet = space.supernet()
    with torch.no_grad():
        for p in supernet.parameters():
            p.normal_()
    supernet.train()
    x = torch.randn(6, 1, 8, 8)
    for architecture in [space.sample(torch.Generator().manual_seed(s)) for s in range(4)]:
        supernet(x, architecture)  # move BN running statistics
        supernet.eval()
        network = space.extract(supernet, architecture).eval()
        with torch.no_grad():
            assert torch.equal(network(x), supernet(x, architecture))
        supernet.train()


def test_build_has_the_benchmark_macro_shape():
    space = NB201Space()
    network = space.build(space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"))
    assert len(network.layers) == 3 * 5 + 2 and network.feature_dim == 64
    assert network(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert NB201Space(num_classes=1).build(space.sample(torch.Generator())).classifier.out_features == 1


def test_table_queries_and_distinct_query_count(table):
    best, accuracy = table.best("cifar10_test_acc")
    assert accuracy == pytest.approx(94.37, abs=0.01)
    assert table.best("cifar100_test_acc")[1] == pytest.approx(73.51, abs=0.01)
    assert 0 < table.query(best, "cifar100_test_acc") <= 73.52
    evaluator = TabularEvaluator(table, "cifar100_test_acc")
    space = NB201Space()
    a, b = space.sample(torch.Generator().manual_seed(1)), space.sample(torch.Generator().manual_seed(2))
    scores = evaluator.evaluate(None, [a, b, a], None)
    assert scores[0] == scores[2] and evaluator.queries == 2
    with pytest.raises(DataError, match="cifar10_test_acc"):
        table.query(a, "imagenet")
    with pytest.raises(ArchitectureError, match="index"):
        table.architecture(NUM_ARCHITECTURES)


def test_missing_table_fails_clearly(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        NB201Benchmark(str(tmp_path / "nope.csv"))
