"""Search on the NAS-Bench-201 table: random search, regularized evolution, SemiNAS, SemiNAS with M = 0, TPE, NSGA-II.

For every query budget and seed, the true test accuracy of the architecture each strategy itself
returns (the best architecture it evaluated, which is every strategy's final answer here), on
CIFAR-10 and CIFAR-100. Prints a table of mean +- std, writes benchmarks/results/search_nb201.json
and a PNG of accuracy against queries.

    nice python benchmarks/search_nb201.py [--seeds 30] [--budgets 50 100 200 400] [--workers 2]

No strategy's schedule depends on its budget (SemiNAS's iteration sizes grow with the number
evaluated so far, not with the budget), so a budget-B search is exactly the first B evaluations of
a longer search with the same seed: each (strategy, seed) runs once at the largest budget and
budget B reads the best of its first B queries. ``--verify`` re-runs seed 0 at the smaller budgets
separately and checks that the answers agree.

TPE and NSGA-II are ``nasframe.strategies.optuna.OptunaSearch`` (``pip install -e ".[optuna]"``);
NSGA-II optimises accuracy against FLOPs (the space's cost model: ``NB201Space.cost``, CIFAR-size
network, one 32x32 input; the table has no FLOPs) and answers with its front's best accuracy. For
every strategy the table also gives the hypervolume of the accuracy/FLOPs front of the first B
architectures it evaluated, as a fraction of the box from (accuracy 0, FLOPs of the largest cell x
1.01) to (100, 0).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nb201" / "nb201_test_accuracy.csv"
OPTIMUM = {"cifar10": 94.37, "cifar100": 73.51}
STRATEGIES = ("random", "evolution", "seminas", "seminas_m0", "tpe", "nsga2")
EXTRA = ("seminas_rank", "seminas_previous")  # opt-in (--strategies): SemiNAS with its non-paper rank targets; its previous defaults
# SemiNAS's defaults before the cheaper updates (20 + 20 updates of batches of 64 per iteration, not 20 + 10 of 32):
# `--strategies seminas seminas_previous` measures what the change costs in accuracy and time
PREVIOUS_SEMINAS = {"batch_size": 64, "pseudo_steps": 20}
LABELS = {"random": "random search", "evolution": "regularized evolution", "seminas": "SemiNAS",
          "seminas_m0": "SemiNAS, M=0 (no pseudo-labels)", "seminas_rank": "SemiNAS, rank targets (not in paper)",
          "seminas_previous": "SemiNAS, previous defaults (20+20 x 64)",
          "tpe": "TPE (Optuna)", "nsga2": "NSGA-II (Optuna), accuracy vs FLOPs"}
BUSY_LOAD = 1.5
LARGEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"

_BENCHMARK = None
_SPACE = None  # one space per worker: its cost cache serves every run
_SEMINAS_ARGS: dict[str, Any] = {}  # --seminas-args: overrides for every SemiNAS variant


def _init_worker(table: str, seminas_args: dict[str, Any] | None = None) -> None:
    global _BENCHMARK, _SEMINAS_ARGS
    _SEMINAS_ARGS = dict(seminas_args or {})
    os.nice(5)
    torch.set_num_threads(1)
    from nasframe.tabular import NB201Benchmark
    _BENCHMARK = NB201Benchmark(table)
    global _SPACE
    from nasframe.spaces.nb201 import NB201Space
    _SPACE = NB201Space()
    _SPACE.cost_cache_size = 15625  # every NB-201 cell
    import nasframe.runner  # noqa: F401  (imported here, so that no run's time includes imports)
    import nasframe_seminas  # noqa: F401


def make_strategy(name: str, metric: str, budget: int, seed: int) -> Any:
    from nasframe.evaluators import TabularEvaluator
    from nasframe.strategies import RandomSearch, RegularizedEvolution
    from nasframe_seminas import SemiNAS

    evaluator = TabularEvaluator(_BENCHMARK, metric=metric)
    if name == "random":
        return RandomSearch(evaluator, budget=budget, candidates_per_step=10, seed=seed)
    if name == "evolution":
        # aging evolution at a standard setting, neither tuned for nor against it: population 20,
        # tournament 5, one-edge mutation, the first 20 random
        return RegularizedEvolution(evaluator, budget=budget, population_size=20, sample_size=5, seed=seed)
    if name == "seminas":
        return SemiNAS(evaluator, budget=budget, seed=seed, **_SEMINAS_ARGS)
    if name == "seminas_m0":
        return SemiNAS(evaluator, budget=budget, seed=seed, **{**_SEMINAS_ARGS, "unlabelled": 0})
    if name == "seminas_rank":
        return SemiNAS(evaluator, budget=budget, seed=seed, **{**_SEMINAS_ARGS, "targets": "rank"})
    if name == "seminas_previous":
        return SemiNAS(evaluator, budget=budget, seed=seed, **PREVIOUS_SEMINAS)
    if name in ("tpe", "nsga2"):
        from nasframe.strategies.optuna import OptunaSearch
    if name == "tpe":  # Optuna's defaults: 10 random startup trials, then TPE
        return OptunaSearch(evaluator, budget=budget, sampler="TPESampler", seed=seed)
    if name == "nsga2":  # population 20, as evolution's; Optuna's default mutation and crossover
        return OptunaSearch(evaluator, budget=budget, objectives=["score", "flops"], sampler="NSGAIISampler",
                            sampler_args={"population_size": 20}, seed=seed)
    raise ValueError(f"unknown strategy {name!r}; accepted: {list(STRATEGIES + EXTRA)}")


def front_hypervolume(history: list[tuple[Any, float]]) -> float:
    """Hypervolume of the (test accuracy, FLOPs) front of ``history``, as a fraction of the box
    from (accuracy 0, FLOPs of the largest cell x 1.01) to (100, 0): a fixed reference point."""
    from nasframe.strategies.optuna import hypervolume

    largest = 1.01 * _SPACE.cost(_SPACE.parse(LARGEST))["flops"]
    points = [(score, _SPACE.cost(a)["flops"]) for a, score in history if not math.isnan(score)]
    return hypervolume(points, (0.0, largest), ("maximize", "minimize")) / (100.0 * largest)


def run_one(task: tuple[str, str, int, list[int]]) -> dict[str, Any]:
    """One search at the largest budget; the true accuracy of the answer at every budget."""
    from nasframe.runner import run_search

    dataset, name, seed, budgets = task
    metric = f"{dataset}_test_acc"
    start, cpu_start = time.perf_counter(), time.process_time()
    strategy = make_strategy(name, metric, max(budgets), seed)
    final = run_search(_SPACE, strategy)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    assert final == strategy.best()
    accuracy, volume = {}, {}
    for budget in budgets:
        answer = strategy.best(strategy.history[:budget])  # what a budget-`budget` run returns
        accuracy[str(budget)] = _BENCHMARK.query(answer, metric)
        volume[str(budget)] = front_hypervolume(strategy.history[:budget])
    result = {"dataset": dataset, "strategy": name, "seed": seed, "accuracy": accuracy, "hypervolume": volume,
              "seconds": seconds, "cpu_seconds": cpu_seconds, "queries": len(strategy.history)}
    if hasattr(strategy, "counts"):
        result["counts"] = dict(strategy.counts)
    return result


def verify(task: tuple[str, str, int, list[int]]) -> dict[str, Any]:
    """Run seed ``task`` separately at each smaller budget: its answer must equal the prefix's."""
    from nasframe.runner import run_search

    dataset, name, seed, budgets = task
    metric = f"{dataset}_test_acc"
    got = {}
    for budget in budgets:
        strategy = make_strategy(name, metric, budget, seed)
        got[str(budget)] = _BENCHMARK.query(run_search(_SPACE, strategy), metric)
    return {"dataset": dataset, "strategy": name, "seed": seed, "separate": got}


def summarize(results: list[dict[str, Any]], datasets: list[str], strategies: list[str], budgets: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for dataset in datasets:
        for name in strategies:
            rows = [r for r in results if r["dataset"] == dataset and r["strategy"] == name]
            if not rows:
                continue
            for budget in budgets:
                values = [r["accuracy"][str(budget)] for r in rows]
                volumes = [r["hypervolume"][str(budget)] for r in rows]
                summary.setdefault(dataset, {}).setdefault(name, {})[str(budget)] = {
                    "mean": statistics.mean(values), "std": statistics.pstdev(values), "n": len(values),
                    "hit_optimum": sum(v >= OPTIMUM[dataset] - 0.005 for v in values),
                    "hypervolume": statistics.mean(volumes), "hypervolume_std": statistics.pstdev(volumes)}
            summary[dataset][name]["seconds_per_run"] = statistics.mean(r["seconds"] for r in rows)
            summary[dataset][name]["cpu_seconds_per_run"] = statistics.mean(r.get("cpu_seconds", math.nan) for r in rows)
    return summary


def print_table(summary: dict[str, Any], budgets: list[int]) -> None:
    for dataset, by_strategy in summary.items():
        print(f"\nNAS-Bench-201 {dataset}: true test accuracy (%) of the returned architecture, mean +- std "
              f"(optimum {OPTIMUM[dataset]})")
        print(f"{'strategy':42}" + "".join(f"{b:>17}" for b in budgets) + f"{'s/run':>8}{'CPU s':>8}")
        for name, by_budget in by_strategy.items():
            cells = "".join(f"{by_budget[str(b)]['mean']:>10.2f} +-{by_budget[str(b)]['std']:5.2f}" for b in budgets)
            print(f"{LABELS[name]:42}{cells}{by_budget['seconds_per_run']:8.2f}{by_budget['cpu_seconds_per_run']:8.2f}")
        print(f"\nNAS-Bench-201 {dataset}: hypervolume of the evaluated architectures' accuracy/FLOPs front "
              "(fraction of the reference box), mean +- std")
        print(f"{'strategy':42}" + "".join(f"{b:>17}" for b in budgets))
        for name, by_budget in by_strategy.items():
            cells = "".join(f"{by_budget[str(b)]['hypervolume']:>10.4f} +-{by_budget[str(b)]['hypervolume_std']:.4f}" for b in budgets)
            print(f"{LABELS[name]:42}{cells}")


def plot(summary: dict[str, Any], budgets: list[int], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 4.5), squeeze=False)
    for axis, (dataset, by_strategy) in zip(axes[0], summary.items()):
        for name, by_budget in by_strategy.items():
            means = [by_budget[str(b)]["mean"] for b in budgets]
            stds = [by_budget[str(b)]["std"] for b in budgets]
            axis.errorbar(budgets, means, yerr=stds, marker="o", capsize=3, label=LABELS[name])
        axis.axhline(OPTIMUM[dataset], color="gray", linestyle=":", label=f"optimum {OPTIMUM[dataset]}")
        axis.set_xscale("log", base=2)
        axis.set_xticks(budgets, [str(b) for b in budgets])
        axis.set_xlabel("queries (distinct architectures evaluated)")
        axis.set_ylabel("test accuracy of the returned architecture (%)")
        axis.set_title(f"NAS-Bench-201 {dataset}")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def compare(results: list[dict[str, Any]], datasets: list[str], budgets: list[int], first: str, second: str) -> list[dict[str, Any]]:
    """``first`` minus ``second`` at each budget: the difference of the mean true accuracies with a
    Welch 95% interval (the strategies' seeds are independent runs, so the comparison is unpaired)."""
    from scipy import stats

    rows = []
    for dataset in datasets:
        for budget in budgets:
            a = [r["accuracy"][str(budget)] for r in results if (r["dataset"], r["strategy"]) == (dataset, first)]
            b = [r["accuracy"][str(budget)] for r in results if (r["dataset"], r["strategy"]) == (dataset, second)]
            if len(a) < 2 or len(b) < 2:
                continue
            test = stats.ttest_ind(a, b, equal_var=False)
            low, high = test.confidence_interval(0.95)
            verdict = (f"{first} ahead" if low > 0 else f"{second} ahead" if high < 0 else "no difference resolved")
            rows.append({"dataset": dataset, "budget": budget, "difference": statistics.fmean(a) - statistics.fmean(b),
                         "low": float(low), "high": float(high), "p": float(test.pvalue), "seeds": min(len(a), len(b)),
                         "verdict": verdict})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--baseline-seeds", type=int, default=None, help="seeds for random search and evolution (default: --seeds)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--datasets", nargs="+", default=["cifar10", "cifar100"], choices=list(OPTIMUM))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES + EXTRA))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--table", default=str(TABLE))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_nb201.json"))
    parser.add_argument("--seminas-args", type=json.loads, default={}, metavar="JSON",
                        help='SemiNAS arguments for the seminas, seminas_m0 and seminas_rank arms, e.g. \'{"steps": 10}\' '
                             '(not seminas_previous, the reference)')
    parser.add_argument("--verify", action="store_true", help="re-run seed 0 at each budget separately and compare")
    parser.add_argument("--allow-busy", action="store_true",
                        help=f"start even when the 1-minute load average is >= {BUSY_LOAD} (the per-run seconds are then no timing)")
    args = parser.parse_args(argv)
    start_load = os.getloadavg()
    if start_load[0] >= BUSY_LOAD and not args.allow_busy:
        sys.exit(f"1-minute load average {start_load[0]:.2f} >= {BUSY_LOAD}: wait for a quiet machine, or pass --allow-busy")
    if not Path(args.table).is_file():
        sys.exit(f"NAS-Bench-201 table {args.table!r} not found; pass --table")
    if not isinstance(args.seminas_args, dict):
        sys.exit(f"--seminas-args must be a JSON object of SemiNAS arguments, got {args.seminas_args!r}")
    if args.seminas_args:
        import inspect

        from nasframe_seminas import SemiNAS
        accepted = set(inspect.signature(SemiNAS).parameters) - {"evaluator", "budget", "seed"}
        unknown = sorted(set(args.seminas_args) - accepted)
        if unknown:
            sys.exit(f"--seminas-args: unknown SemiNAS arguments {unknown}; accepted: {sorted(accepted)}")
    budgets = sorted(set(args.budgets))
    # the cheap baselines first, then SemiNAS seed by seed (both variants, both datasets), so that
    # the partial results written after every run stay balanced if the run is cut short
    baseline_seeds = args.baseline_seeds if args.baseline_seeds is not None else args.seeds
    tasks = [(d, s, seed, budgets) for s in args.strategies if not s.startswith("seminas") for d in args.datasets
             for seed in range(baseline_seeds)]
    tasks += [(d, s, seed, budgets) for seed in range(args.seeds) for d in args.datasets for s in args.strategies if s.startswith("seminas")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = []
    with multiprocessing.get_context("spawn").Pool(args.workers, _init_worker, (args.table, args.seminas_args)) as pool:
        for i, result in enumerate(pool.imap_unordered(run_one, tasks), 1):
            results.append(result)
            print(f"[{i}/{len(tasks)} {time.perf_counter() - start:6.0f}s] {result['dataset']} {result['strategy']} "
                  f"seed {result['seed']}: {result['accuracy']}", flush=True)
            done = sorted({r["strategy"] for r in results}, key=list(STRATEGIES + EXTRA).index)
            partial = {"complete": False, "budgets": budgets, "summary": summarize(results, sorted({r["dataset"] for r in results}), done, budgets),
                       "runs": results}
            out.with_suffix(".partial.json").write_text(json.dumps(partial, indent=1))
        checks = pool.map(verify, [(d, s, 0, budgets) for s in args.strategies for d in args.datasets]) if args.verify else []
    results.sort(key=lambda r: (r["dataset"], r["strategy"], r["seed"]))
    summary = summarize(results, args.datasets, args.strategies, budgets)
    print_table(summary, budgets)
    mismatches = []
    for check in checks:
        prefix = next(r for r in results if (r["dataset"], r["strategy"], r["seed"]) == (check["dataset"], check["strategy"], 0))
        if any(not math.isclose(prefix["accuracy"][b], v) for b, v in check["separate"].items()):
            mismatches.append(check)
    pairs = {"seminas_vs_tpe": ("seminas", "tpe"), "seminas_vs_previous": ("seminas", "seminas_previous")}
    comparisons = {key: compare(results, args.datasets, budgets, first, second)
                   for key, (first, second) in pairs.items() if {first, second} <= set(args.strategies)}
    for key, rows in comparisons.items():
        first, second = pairs[key]
        print()
        for c in rows:
            print(f"{LABELS[first]} - {LABELS[second]}, {c['dataset']} @{c['budget']}: {c['difference']:+.3f} points, 95% CI "
                  f"[{c['low']:+.3f}, {c['high']:+.3f}] (Welch, {c['seeds']} seeds each): {c['verdict']}")
    if args.verify:
        print(f"\nseparate runs at each budget (seed 0) agree with the prefixes: {not mismatches} ({len(checks)} checked)")
    payload = {"complete": True, "budgets": budgets, "seminas_args": args.seminas_args, "seeds": args.seeds, "baseline_seeds": baseline_seeds, "optimum": OPTIMUM,
               "summary": summary, "verify": {"checked": len(checks), "mismatches": mismatches}, "runs": results,
               **{key: comparisons.get(key, []) for key in pairs}, "workers": args.workers, "cpu_count": os.cpu_count(),
               "load_average_at_start": list(start_load), "load_average_at_end": list(os.getloadavg()),
               "seconds": time.perf_counter() - start}
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text(json.dumps(payload, indent=1))
    os.replace(temporary, out)
    plot(summary, budgets, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
