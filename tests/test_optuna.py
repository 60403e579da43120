"""OptunaSearch: TPE and NSGA-II through Optuna, on a toy space with a known score and cost, on a tiny
NB-201 search under a Trainer (checkpoint and resume), and the two example configs, shrunk."""

from __future__ import annotations

import copy
import io
import itertools
import json

import pytest
import torch
import yaml

pytest.importorskip("optuna", reason='OptunaSearch needs optuna: pip install -e ".[optuna]"')

from conftest import ROOT, shared_path  # noqa: E402
from helpers import CountConvolutions, tiny_space  # noqa: E402

from nasframe import NASModule  # noqa: E402
from nasframe.errors import NASFrameError  # noqa: E402
from nasframe.evaluators import Evaluator  # noqa: E402
from nasframe.runner import run_search  # noqa: E402
from nasframe.spaces.base import INACTIVE, ActiveIf, CategoricalSearchSpace  # noqa: E402
from nasframe.strategies.optuna import OptunaSearch, _hypervolume, hypervolume  # noqa: E402

LETTERS = "abcd"


class Toy(CategoricalSearchSpace):
    """5 positions of 4 letters (1,024 architectures) with an exact, cheap cost model."""

    name = "toy"

    def __init__(self, positions: int = 5, letters: str = LETTERS, priced: bool = True) -> None:
        self.positions, self.letters, self.priced = positions, letters, priced

    def position_choices(self):
        return [list(self.letters)] * self.positions

    def build(self, architecture):
        return torch.nn.Linear(1, 1)

    def cost(self, architecture):
        if not self.priced:
            return None
        ranks = [self.letters.index(c) for c in architecture.choices]
        return {"params": float(sum(ranks)), "flops": float(sum(r * r for r in ranks))}


class Weighted(Evaluator):
    """Later positions weigh more: score = sum (i + 1) * rank; architectures containing 'a' twice score NaN when asked."""

    def __init__(self, nan_for_double_a: bool = False) -> None:
        super().__init__()
        self.nan_for_double_a = nan_for_double_a

    def score(self, nas, architectures, batch):
        def one(a):
            if self.nan_for_double_a and a.choices.count("a") >= 2:
                return float("nan")
            return float(sum((i + 1) * LETTERS.index(c) for i, c in enumerate(a.choices)))
        return torch.tensor([one(a) for a in architectures], dtype=torch.float64)


def search(budget=40, space=None, evaluator=None, **kwargs) -> OptunaSearch:
    strategy = OptunaSearch(evaluator or Weighted(), budget=budget, **kwargs)
    run_search(space or Toy(), strategy)
    return strategy


def roundtrip(value):
    """What a checkpoint gives back: torch.save, then torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


MULTI = dict(objectives=["score", "flops"], sampler_args={"population_size": 8})


def test_same_seed_same_search_and_another_seed_another():
    first, again, other = search(seed=0), search(seed=0), search(seed=1)
    assert first.history == again.history and len(first.history) == 40
    assert first.history != other.history
    assert first.best() == max(first.history, key=lambda h: h[1])[0]
    assert first.history[-1][1] > first.history[0][1]  # TPE climbs (the toy's optimum is 60)


@pytest.mark.parametrize("kwargs", [{}, MULTI, {"candidates_per_step": 3}], ids=["tpe", "nsga2", "tpe_batches"])
def test_proposals_after_a_resume_equal_an_uninterrupted_run(kwargs):
    straight = search(budget=45, seed=3, **kwargs)
    interrupted = OptunaSearch(Weighted(), budget=45, seed=3, **kwargs)
    with pytest.warns(UserWarning, match="ended before spending it"):
        run_search(Toy(), interrupted, max_steps=5)
    saved = roundtrip(interrupted._state_dict_hook(None))  # as a checkpoint stores it
    copied = copy.deepcopy(interrupted)  # pickled without its live study (ddp_spawn, deepcopy), rebuilt from its trials
    resumed = OptunaSearch(Weighted(), budget=45, seed=3, **kwargs)
    resumed._load_state_dict_hook(None, saved)
    run_search(Toy(), resumed)
    assert 0 < len(interrupted.history) < 45
    assert resumed.history == straight.history
    assert resumed.search_state()["trials"] == straight.search_state()["trials"]
    run_search(Toy(), copied)
    assert copied.history == straight.history


def test_a_resumed_trainer_run_ends_where_an_uninterrupted_one_ends(tmp_path):
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint

    def fit(out, epochs, resume=False):
        strategy = OptunaSearch(CountConvolutions(), budget=12, objectives=["score", "params"], candidates_per_step=2, seed=1)
        nas = NASModule(tiny_space(), strategy, export_dir=str(out / "export"), overwrite_export=True)
        trainer = Trainer(max_epochs=epochs, limit_train_batches=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                          enable_model_summary=False, callbacks=[ModelCheckpoint(dirpath=out / "ckpt", save_last=True)],
                          default_root_dir=str(out))
        trainer.fit(nas, ckpt_path="last" if resume else None)
        return strategy, nas

    straight, _ = fit(tmp_path / "straight", 3)
    with pytest.warns(UserWarning, match="evaluated 4 of its budget of 12"):
        fit(tmp_path / "cut", 1)
    resumed, nas = fit(tmp_path / "cut", 3, resume=True)
    assert len(straight.history) == 12 and resumed.history == straight.history
    assert resumed.search_state()["trials"] == straight.search_state()["trials"]
    saved = torch.load(tmp_path / "cut" / "ckpt" / "last.ckpt", weights_only=True)["nasframe"]["state"]["strategy.OptunaSearch"]
    assert saved["front"] == straight.search_state()["front"] and saved["front"]
    assert nas.final_architecture == straight.choose()


def test_duplicates_are_told_their_known_score_and_spend_no_budget():
    strategy = search(budget=16, space=Toy(positions=2), seed=0)  # 16 architectures: the whole space
    assert len(strategy.history) == 16 and len(set(strategy.history)) == 16 and strategy.evaluator.queries == 16
    trials = strategy.search_state()["trials"]
    assert len(trials) == 16 + strategy.duplicates and strategy.duplicates > 0  # fallbacks are added as trials too
    scores = {a.choices: s for a, s in strategy.history}
    for trial in trials:  # a duplicate trial carries the score its architecture got
        assert trial["values"] == [scores[(trial["params"]["p0"], trial["params"]["p1"])]]
    exhausted = search(budget=20, space=Toy(positions=2), seed=0, on_budget_unspent="error")
    assert len(exhausted.history) == 16 and exhausted.exhausted  # the space ran out, not the trainer: no error


def test_nan_scores_are_failed_trials_and_never_chosen():
    strategy = search(budget=30, evaluator=Weighted(nan_for_double_a=True), seed=0)
    failed = [t for t in strategy.search_state()["trials"] if t["state"] == "FAIL"]
    assert failed and all(t["values"] is None for t in failed)
    assert strategy.final_architecture(None).choices.count("a") < 2


def dominated(p, q, directions):
    """``q`` dominates ``p``."""
    better = [(x > y) if d == "maximize" else (x < y) for x, y, d in zip(q, p, directions)]
    worse = [(x < y) if d == "maximize" else (x > y) for x, y, d in zip(q, p, directions)]
    return any(better) and not any(worse)


@pytest.mark.parametrize("objectives", [["score", "flops"], ["score", "flops", "params"]])
def test_nsga2_front_is_exactly_the_non_dominated_set(objectives):
    strategy = search(budget=50, seed=2, objectives=objectives, sampler="nsga2", sampler_args={"population_size": 10})
    directions = strategy.directions
    points = {a: (s, *(strategy.costs[i][o] for o in objectives[1:])) for i, (a, s) in enumerate(strategy.history)}
    front = {a for a, _, _ in strategy.front}
    for a, p in points.items():
        assert (a in front) == (not any(dominated(p, q, directions) for q in points.values()))
    costs = [c[objectives[1]] for _, _, c in strategy.front]
    assert costs == sorted(costs)  # cheapest first
    assert strategy.search_state()["front"] == [{"architecture": a.to_dict(), "score": s, "cost": c} for a, s, c in strategy.front]
    report = strategy.search_report(None)
    assert report["pareto/size"] == len(front) and "pareto/hypervolume" not in report


def test_selection_rules_and_the_flops_limit():
    strategy = search(budget=50, seed=0, flops_limit=12.0, **MULTI)
    allowed = [(s, a) for i, (a, s) in enumerate(strategy.history) if strategy.costs[i]["flops"] <= 12.0]
    assert strategy.final_architecture(None) == max(allowed, key=lambda t: t[0])[1]
    assert strategy.search_report(None)["pareto/size"] == len(strategy.front)

    unlimited = search(budget=50, seed=0, **MULTI)  # no limit: the best score evaluated
    assert unlimited.final_architecture(None) == unlimited.best()
    cheapest = search(budget=50, seed=0, select="min_cost", **MULTI)
    assert cheapest.final_architecture(None) == min(cheapest.front, key=lambda m: (m[2]["flops"], -m[1]))[0]
    knee = search(budget=50, seed=0, select="knee", **MULTI).final_architecture(None)
    front = [a for a, _, _ in unlimited.front]
    assert knee in front and knee not in (front[0], front[-1])  # a compromise, not an extreme

    with pytest.raises(NASFrameError, match=r"none of the 10 architectures scored is within \{'flops_limit': 0.5\}"):
        search(budget=10, seed=0, flops_limit=0.5, **MULTI)  # at the end of the search, before any export


def test_hypervolume_equals_a_count_of_unit_cells():
    points = [(1.0, 5.0), (2.0, 3.0), (4.0, 1.0)]
    squares = sum(any(x >= p[0] and y >= p[1] for p in points) for x, y in itertools.product(range(6), range(6)))
    assert _hypervolume(points, (6.0, 6.0)) == squares == 17
    cubes = [(1.0, 3.0, 2.0), (2.0, 1.0, 3.0), (3.0, 2.0, 1.0)]
    cells = sum(any(all(c >= q for c, q in zip(cell, p)) for p in cubes) for cell in itertools.product(range(4), repeat=3))
    assert _hypervolume(cubes, (4.0, 4.0, 4.0)) == cells
    # the first objective maximised (6 - x, reference 0); a dominated point and one beyond the reference add nothing
    maximised = [(6.0 - x, y) for x, y in points] + [(2.0, 5.5), (7.0, 6.5)]
    assert hypervolume(maximised, (0.0, 6.0), ["maximize", "minimize"]) == squares
    strategy = search(budget=30, seed=0, hypervolume_reference=[0.0, 100.0], **MULTI)
    assert strategy.search_report(None)["pareto/hypervolume"] == strategy.hypervolume() > strategy.hypervolume(upto=10) > 0


def test_any_sampler_by_name_or_class_path():
    by_path = search(budget=12, sampler={"class_path": "optuna.samplers.RandomSampler"}, seed=5)
    by_name = search(budget=12, sampler="random", seed=5)
    assert by_path.history == by_name.history


@pytest.mark.parametrize("kwargs, message", [
    (dict(sampler="NoSuchSampler"), "sampler 'NoSuchSampler' not found; accepted: a class of optuna.samplers"),
    (dict(sampler_args={"seed": 3}), "seeds its sampler from the strategy's seed"),
    (dict(sampler_args={"n_startup": 3}), "cannot build TPESampler"),
    (dict(objectives=["flops"]), "objectives must start with 'score'"),
    (dict(objectives=["score", "latency"]), "objectives must start with 'score'"),
    (dict(select="knee"), "select='knee' picks from a Pareto front"),
    (dict(objectives=["score", "flops"], directions=["maximize"]), "directions needs 'maximize' or 'minimize'"),
    (dict(flops_limit=0), "flops_limit must be positive"),
])
def test_bad_options_fail_when_the_strategy_is_built(kwargs, message):
    with pytest.raises(NASFrameError, match=message):
        OptunaSearch(Weighted(), **kwargs)


def test_a_space_without_cost_model_fails_before_the_search():
    strategy = OptunaSearch(Weighted(), budget=5, objectives=["score", "flops"])
    with pytest.raises(NASFrameError, match=r"search space 'toy' \(Toy\) has no cost model"):
        run_search(Toy(priced=False), strategy)
    assert strategy.history == []
    run_search(Toy(priced=False), OptunaSearch(Weighted(), budget=5))  # the score alone needs no cost


# ---- the examples, shrunk ---------------------------------------------------------------------------
def test_tpe_nb201_example_runs_shrunk(tmp_path, monkeypatch, capsys):
    from nasframe.cli import main

    shared_path("nb201/nb201_test_accuracy.csv")
    monkeypatch.chdir(ROOT)  # the config's relative data path
    main(["fit", "--config", str(ROOT / "examples" / "optuna_tpe_nb201.yaml"), "--model.init_args.strategy.init_args.budget=25",
          "--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
          "--model.init_args.export_dir", str(tmp_path / "export")])
    printed = capsys.readouterr()
    assert "search/evaluated: 25" in printed.out + printed.err
    assert json.loads((tmp_path / "export" / "architecture.json").read_text())["architecture"]


def test_nsga2_digits_example_searches_the_spos_examples_supernet(tmp_path, one_thread, native_cpu_kernels, capsys):
    """The example scores paths on the supernet spos_mbconv_digits.yaml trains: both must describe the same
    space. The search itself runs shrunk here on a checkpoint of an untrained supernet of that space."""
    from nasframe.cli import main
    from nasframe.spaces.mbconv import MBConvSpace

    nsga2, spos = (yaml.safe_load((ROOT / "examples" / name).read_text()) for name in ("nsga2_mbconv_digits.yaml", "spos_mbconv_digits.yaml"))
    space = nsga2["model"]["init_args"]["search_space"]
    assert space == spos["model"]["init_args"]["search_space"]
    assert nsga2["model"]["init_args"]["strategy"]["init_args"]["evaluator"]["init_args"]["checkpoint"] == \
        f"{spos['trainer']['default_root_dir']}/checkpoints/last.ckpt"
    supernet = MBConvSpace(**space["init_args"]).supernet()
    checkpoint = tmp_path / "supernet.ckpt"
    torch.save({"state_dict": {f"supernet.{k}": v for k, v in supernet.state_dict().items()}}, checkpoint)
    main(["fit", "--config", str(ROOT / "examples" / "nsga2_mbconv_digits.yaml"), "--trainer.default_root_dir", str(tmp_path),
          "--model.init_args.strategy.init_args.evaluator.init_args.checkpoint", str(checkpoint),
          "--model.init_args.strategy.init_args.budget", "8", "--model.init_args.strategy.init_args.sampler_args",
          '{"population_size": 4}', "--model.init_args.strategy.init_args.flops_limit", "1700000",
          "--data.init_args.batch_size", "32", "--data.init_args.limit_train", "32", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--model.init_args.export_dir", str(tmp_path / "export")])
    printed = capsys.readouterr()
    assert "pareto/size:" in printed.out + printed.err and "pareto/1/flops:" in printed.out + printed.err
    assert (tmp_path / "export" / "model.safetensors").is_file()


class Deep(CategoricalSearchSpace):
    """Conditional choices: the depth decides how many widths exist (position 2 from depth 2, position 3 at depth 3)."""

    name = "deep"

    def position_choices(self):
        return [["1", "2", "3"], ["8", "16"], ["8", "16"], ["8", "16"]]

    def position_conditions(self):
        return {2: ActiveIf(0, ("2", "3")), 3: ActiveIf(0, ("3",))}

    def build(self, architecture):
        return torch.nn.Linear(1, 1)


class Widths(Evaluator):
    def score(self, nas, architectures, batch):
        return torch.tensor([float(sum(int(c) for c in a.choices[1:] if c != INACTIVE)) for a in architectures])


def test_conditional_positions_are_suggested_only_when_active():
    space = Deep()
    strategy = OptunaSearch(Widths(), budget=14, max_retries=3, seed=0)  # 14 architectures: the whole space
    run_search(space, strategy)
    assert len(strategy.history) == 14 and strategy.final_architecture(None).choices == ("3", "16", "16", "16")
    for trial in strategy.search_state()["trials"]:
        depth = int(trial["params"]["p0"])
        assert sorted(trial["params"]) == [f"p{i}" for i in range(depth + 1)]  # define-by-run: inactive ones never asked
    for architecture, _ in strategy.history:
        space.validate(architecture)
        assert architecture.choices.count(INACTIVE) == 3 - int(architecture.choices[0])
