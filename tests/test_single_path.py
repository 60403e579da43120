"""SinglePathStrategy (SPOS): the final re-scoring of its leaderboard, the same as Cream's board gets."""

from __future__ import annotations

import io

import pytest
import torch

from nasframe import NASModule
from nasframe.objectives import CrossEntropy, Distillation
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.strategies import SinglePathStrategy
from nasframe_cream import CreamStrategy

PATHS = ("k3_e4-k3_e4-k3_e4", "k7_e6-k5_e6-skip", "k5_e4-k3_e6-k7_e4")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_space() -> MBConvSpace:
    return MBConvSpace(stage_channels=(8, 16), stage_layers=(1, 2), stage_strides=(2, 2), stem_channels=8, stem_stride=1,
                       first_channels=8, head_channels=16, final_channels=32, image_size=8, in_channels=1, allow_skip=True)


def make_nas(strategy: SinglePathStrategy) -> NASModule:
    torch.manual_seed(0)
    return NASModule(tiny_space(), strategy, objectives=[CrossEntropy(), Distillation()])


def run_steps(nas: NASModule, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list:
    """``after_step`` of one step per path (the weights are not updated: the measures are what matters here)."""
    paths = [nas.search_space.parse(p) for p in PATHS]
    for batch, path in zip(batches, paths):
        nas.strategy.after_step(nas, nas.new_step(batch, path), torch.tensor(0.0))
    return paths


def test_default_keeps_the_batch_leaderboard_and_collects_nothing():
    nas = make_nas(SinglePathStrategy(seed=0, leaderboard_size=3))
    torch.manual_seed(2)
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(10, (8,))) for _ in PATHS]
    run_steps(nas, batches)
    strategy = nas.strategy
    assert strategy.score_inputs is None and "score_inputs" not in strategy.search_state()
    assert strategy.final_architecture(nas) == strategy.leaderboard[0][1]
    assert [s for s, _ in strategy.leaderboard] == sorted((s for s, _ in strategy.leaderboard), reverse=True)


def test_final_rescore_picks_the_best_leaderboard_path_on_the_scoring_set():
    nas = make_nas(SinglePathStrategy(seed=0, leaderboard_size=3, final_rescore=True, score_images=8, final_score_images=24))
    strategy = nas.strategy
    torch.manual_seed(2)
    x, y = torch.randn(24, 1, 8, 8), torch.randint(10, (24,))
    paths = run_steps(nas, [(x, y)] * 3)
    # the first 24 labelled training images, and no more
    torch.testing.assert_close(strategy.score_inputs, x)
    torch.testing.assert_close(strategy.score_targets, y)
    scores = {path: strategy.score(nas, path, 24) for path in paths}
    assert len(set(scores.values())) == 3  # distinct, so that picking the wrong path would show
    worst = min(paths, key=scores.get)
    strategy.leaderboard = [(100.0 if p == worst else 0.0, p) for p in paths]  # stale batch scores favouring it
    strategy.leaderboard.sort(key=lambda entry: -entry[0])
    assert strategy.current_architecture(nas) == worst
    assert strategy.final_architecture(nas) == max(paths, key=scores.get)
    assert [s for s, _ in strategy.leaderboard] == pytest.approx(sorted(scores.values(), reverse=True))

    # the scoring set is checkpoint state, loadable with weights_only=True
    buffer = io.BytesIO()
    torch.save(strategy.search_state(), buffer)
    buffer.seek(0)
    restored = SinglePathStrategy(final_rescore=True, score_images=8, final_score_images=24)
    restored.load_search_state(torch.load(buffer, weights_only=True))
    torch.testing.assert_close(restored.score_inputs, strategy.score_inputs)
    assert restored.leaderboard == strategy.leaderboard


def test_spos_and_cream_rescore_on_the_same_images():
    options = dict(seed=0, final_rescore=True, score_images=4, final_score_images=12)
    spos = make_nas(SinglePathStrategy(leaderboard_size=3, **options))
    cream = make_nas(CreamStrategy(board_size=3, warmup_steps=0, matching_images=4, **options))
    torch.manual_seed(3)
    batches = [(torch.randn(5, 1, 8, 8), torch.randint(10, (5,))) for _ in PATHS]
    for nas in (spos, cream):
        run_steps(nas, batches)
    assert len(spos.strategy.score_inputs) == 12
    torch.testing.assert_close(spos.strategy.score_inputs, cream.strategy.score_inputs)
    torch.testing.assert_close(spos.strategy.score_targets, cream.strategy.score_targets)


def test_score_images_must_be_positive():
    with pytest.raises(Exception, match="score_images"):
        SinglePathStrategy(score_images=0)
