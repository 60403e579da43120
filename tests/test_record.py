"""The run record: history.csv for every strategy kind, summary.json, atomic rewrites, and resumes
that continue the history instead of repeating it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from helpers import tiny_space
from nasframe.record import HISTORY, SUMMARY, read_history
from nasframe.spaces.nb201 import OPERATIONS
from recorded import ToyTable, run, trainer


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def test_sample_based_history_and_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # an earlier test's seed_everything must not count
    nas, directory = run("sample_based", tmp_path)
    assert directory == tmp_path / "lightning_logs" / "version_0"  # the CSV logger's directory, by default
    rows = read_history(directory / HISTORY)
    space, table = tiny_space(), ToyTable()
    assert [r["kind"] for r in rows] == ["candidate"] * 24
    architectures = [space.parse(r["architecture"]) for r in rows]
    assert architectures == [a for a, _ in nas.strategy.history]  # every query, in order
    assert [r["score"] for r in rows] == [s for _, s in nas.strategy.history]
    assert [r["true_accuracy"] for r in rows] == [table.query(a) for a in architectures]
    for row, architecture in zip(rows, architectures):
        cost = nas.hook.nasframe_architecture_cost(architecture=architecture)
        assert (row["params"], row["flops"]) == (cost["params"], cost["flops"])
    assert [r["step"] for r in rows] == sorted(r["step"] for r in rows)
    assert all(r["wall_time"] >= 0 for r in rows)

    summary = json.loads((directory / SUMMARY).read_text())
    final = nas.final_architecture
    assert summary["architecture"] == space.format(final) and summary["architecture_value"] == final.to_dict()
    assert summary["cost"]["params"] == sum(p.numel() for p in space.build(final).parameters())
    assert summary["true_accuracy"] == table.query(final)
    assert summary["metrics"]["search/evaluated"] == 24 and summary["export_dir"] == str(tmp_path / "export")
    assert all(summary["versions"][name] for name in ("nasframe", "torch", "lightning", "lightly"))
    assert summary["seed"] is None and summary["strategy_seed"] == 4  # no global seed set for this test
    assert summary["strategy"] == "RegularizedEvolution" and summary["wall_time_s"] > 0
    assert summary["history"] == {"file": HISTORY, "rows": 24, "kinds": ["candidate"]}
    out = capsys.readouterr().out  # the summary is the result: on stdout, with where the record is
    assert "nasframe search finished" in out and f"run record:   {directory}" in out


def test_single_path_records_every_step(tmp_path):
    nas, directory = run("single_path", tmp_path)
    rows = read_history(directory / HISTORY)
    assert {r["kind"] for r in rows} == {"path"}
    assert [r["step"] for r in rows] == list(range(1, nas.global_step + 1))  # one row per weight step
    assert all(0 <= r["score"] <= 100 for r in rows)
    space = tiny_space()
    best_score, best = nas.strategy.leaderboard[0]
    assert any(space.parse(r["architecture"]) == best and r["score"] == best_score for r in rows)


def test_differentiable_records_the_distribution_per_epoch(tmp_path):
    nas, directory = run("differentiable", tmp_path)
    rows = read_history(directory / HISTORY)
    assert {r["kind"] for r in rows} == {"distribution"}
    assert sorted({r["epoch"] for r in rows}) == [0, 1]
    last = [r for r in rows if r["epoch"] == 1]
    assert [r["op"] for r in last[: len(OPERATIONS)]] == list(OPERATIONS)  # NB-201's choices name the ops
    final = nas.strategy.alpha.detach().softmax(-1)
    for edge in range(6):
        probabilities = [r["probability"] for r in last if r["edge"] == str(edge)]
        torch.testing.assert_close(torch.tensor(probabilities, dtype=torch.float32), final[edge])


def test_cream_records_its_board_per_epoch(tmp_path):
    nas, directory = run("cream", tmp_path)
    rows = read_history(directory / HISTORY)
    assert {r["kind"] for r in rows} == {"path", "board"}
    board = [r for r in rows if r["kind"] == "board"]
    assert sorted({r["epoch"] for r in board}) == [0, 1]
    final = [r for r in board if r["epoch"] == 1]
    assert [r["architecture"] for r in final] == [nas.search_space.format(e.architecture) for e in nas.strategy.board.entries]
    assert [r["rank"] for r in final] == list(range(len(final)))
    assert all(r["flops"] > 0 and r["params"] > 0 for r in final)


@pytest.mark.filterwarnings("ignore:.*ended before spending it", "ignore:Checkpoint directory .* exists and is not empty")
def test_a_resumed_search_continues_the_history_without_duplicates(tmp_path):
    """No logger: every run writes into default_root_dir. The record a resume writes is the
    checkpoint's history plus what follows, whatever a later run had written there meanwhile."""
    budget_per_epoch = dict(limit_train_batches=3, logger=False, enable_checkpointing=True)
    whole, _ = run("sample_based", tmp_path / "whole", max_epochs=6, **budget_per_epoch)
    expected = _rows(tmp_path / "whole")

    root = tmp_path / "resumed"
    run("sample_based", root, max_epochs=2, **budget_per_epoch)
    checkpoint = root / "checkpoints" / "last.ckpt"
    state = torch.load(checkpoint, weights_only=True)["nasframe"]["state"]["run_record"]  # plain, weights-only state
    assert len(state["rows"]) == len(_rows(root))
    shutil.copy(checkpoint, tmp_path / "epoch2.ckpt")
    run_from(root, checkpoint, max_epochs=6, **budget_per_epoch)  # runs on: the file now holds every epoch
    assert _rows(root) == expected
    run_from(root, tmp_path / "epoch2.ckpt", max_epochs=6, **budget_per_epoch)  # again from epoch 2: no repeats
    assert _rows(root) == expected
    steps = [(r["step"], r["architecture"]) for r in read_history(root / HISTORY)]
    assert len(steps) == len(set(steps)) == len(whole.strategy.history)


def run_from(root, checkpoint, **overrides):
    from recorded import build

    nas, data = build("sample_based", root)
    trainer(root, **overrides).fit(nas, datamodule=data, ckpt_path=str(checkpoint))


def _rows(directory):
    """The history without its wall times (which differ between runs)."""
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in read_history(directory / HISTORY)]


def test_history_is_written_atomically_and_readable(tmp_path):
    nas, directory = run("sample_based", tmp_path, max_epochs=1)
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]  # no temporary files left
    header = (directory / HISTORY).read_text().splitlines()[0].split(",")
    assert header[:4] == ["kind", "step", "epoch", "architecture"]


def test_record_without_a_trainer_keeps_rows_and_writes_nothing(tmp_path):
    from recorded import build

    nas, _ = build("sample_based", tmp_path)
    architectures = [nas.search_space.sample(torch.Generator().manual_seed(i)) for i in range(3)]
    nas.hook.nasframe_candidates_evaluated(nas=nas, architectures=architectures, scores=torch.tensor([1.0, float("nan"), 2.0]))
    assert [r["kind"] for r in nas.run_record.rows] == ["candidate"] * 3 and nas.run_record.directory is None
    assert not list(tmp_path.iterdir())
