"""Reproduce epsinas on NAS-Bench-201 CIFAR-10 with real images, as a score and as a search.

Scores K architectures (default 1000 sampled with a fixed seed; ``--all`` for the 15,625) and reports,
as printed lines and JSON written atomically (benchmarks/results/epsinas_nb201.json, with the load
average at the start):

* for each search ordering the evaluator offers (``float32_first``, the default: the architectures a
  float32 computation resolves, then the ones only float64 rescues; ``score``: one ranking of the plain
  score), Spearman and Kendall (torchmetrics) against the 200-epoch CIFAR-10 test accuracy, over all
  input-dependent architectures and over the subset a plain float32 computation scores finite (the
  paper's protocol), and the pick-best-of-1000 test accuracy over 20 draws (the paper's protocol,
  1000 drawn from the whole space each time, needs ``--all``; from a 1000-architecture sample the
  draws are bootstrap resamples of it);
* the honest figures: these correlations on the **first 256 training images in file order** (the
  original code's protocol), with 95% bootstrap intervals over architectures, and on ``--batches`` (5)
  **seeded random batches** of 256 training images, mean +- std (seed s: the first batch of
  ``NpzDataModule(seed=s)``, which permutes the images once; seed 0 is what ``examples/epsinas_nb201.yaml``
  feeds);
* NaN and degenerate counts (float64, and float32 at w = 1e-7), how the scorer's float32-range flag
  agrees with an actual float32 computation, the rescued architectures' median accuracy and score;
* speed: architectures/s with the shared computation (``nasframe_epsinas.shared``: equal cells once,
  equal operations once, the first cell across architectures) against one architecture at a time, and
  the plain full-width float32 network; a check that the width-reduced float64 computation reproduces
  the full-width one on float32-NaN architectures;
* the other zero-cost proxies of NASLib's NAS-Bench-201 scores on their own architectures;
* a scatter plot (benchmarks/results/epsinas_nb201.png).

    nice python benchmarks/epsinas_nb201.py --workers 2             # 1000 architectures, 6 batches
    nice python benchmarks/epsinas_nb201.py --all --workers 2       # all 15,625
    python benchmarks/epsinas_nb201.py --limit 40 --batches 1 --bootstrap 50 --out /tmp/e.json   # a quick check

``--workers N`` scores in N one-thread processes (faster than N threads for these small tensors).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchmetrics.functional import kendall_rank_corrcoef, spearman_corrcoef

from nasframe.data import NpzDataModule
from nasframe.spaces.nb201 import NB201Space
from nasframe.tabular.nb201 import NB201Benchmark
from nasframe_epsinas.score import ORDERINGS, EpsinasScorer, EpsinasScores, normalise
from nasframe_epsinas.shared import _Interner, cell_plan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAPER_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
PAPER_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))
NASLIB_OPS = {0: "skip_connect", 1: "none", 2: "nor_conv_3x3", 3: "nor_conv_1x1", 4: "avg_pool_3x3"}
NASLIB_PROXIES = ("synflow", "jacov", "nwot", "snip", "grad_norm", "grasp", "fisher", "epe_nas", "l2_norm", "plain",
                  "flops", "params")
PAPER = {"spearman": 0.87, "kendall": 0.69, "top10_spearman": 0.50, "pick_best_mean": 93.86}


# ---- statistics -------------------------------------------------------------------------------------
def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return float(spearman_corrcoef(torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.float64))))


def kendall(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (ties counted), torchmetrics."""
    return float(kendall_rank_corrcoef(torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.float64)),
                                       variant="b"))


def correlations(scores: np.ndarray, accuracy: np.ndarray, bootstrap: int = 0, kendall_bootstrap: int = 0,
                 seed: int = 0) -> dict[str, Any]:
    """Spearman and Kendall over the finite scores, global and on the top 10% by accuracy; with
    ``bootstrap`` resamples of the architectures, 95% percentile intervals."""
    keep = np.isfinite(scores)
    s, a = scores[keep], accuracy[keep]
    if len(s) < 3:
        return {"n": int(len(s))}
    top = a >= np.quantile(a, 0.9)
    result: dict[str, Any] = {"n": int(len(s)), "spearman": spearman(s, a), "kendall": kendall(s, a),
                              "top10_n": int(top.sum()), "top10_spearman": spearman(s[top], a[top]),
                              "top10_kendall": kendall(s[top], a[top])}
    rng = np.random.default_rng(seed)
    for name, fn, count in (("spearman", spearman, bootstrap), ("kendall", kendall, kendall_bootstrap)):
        if count > 0:
            values = [fn(s[i], a[i]) for i in (rng.integers(0, len(s), len(s)) for _ in range(count))]
            result[f"{name}_ci95"] = [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]
            result[f"{name}_bootstrap_resamples"] = count
    return result


def pick_best(scores: np.ndarray, accuracy: np.ndarray, seed: int, draws: int = 20, size: int = 1000) -> dict[str, Any]:
    """Test accuracy of the best finite score in ``draws`` draws of ``size`` architectures (with
    replacement when the scored set has no more than ``size``: bootstrap draws of it)."""
    rng = np.random.default_rng(seed)
    size = min(size, len(scores))
    replace = size == len(scores)
    picks = []
    for _ in range(draws):
        idx = rng.choice(len(scores), size, replace=replace)
        idx = idx[np.isfinite(scores[idx])]
        picks.append(float(accuracy[idx[np.argmax(scores[idx])]]) if len(idx) else math.nan)
    finite = np.flatnonzero(np.isfinite(scores))
    best = float(accuracy[finite[np.argmax(scores[finite])]]) if len(finite) else math.nan
    return {"draws": draws, "size": size, "with_replacement": replace, "mean_test_accuracy": float(np.nanmean(picks)),
            "std": float(np.nanstd(picks)), "picks": picks, "best_of_scored_set": best,
            "note": "the paper's protocol draws 1000 of the whole space 20 times: --all; from a 1000-architecture sample "
                    "the draws are bootstrap resamples of it, which mostly measure where its top few scores land"}


def mean_std(values: list[float]) -> dict[str, float]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)])
    return {"mean": float(v.mean()) if len(v) else math.nan, "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "n": int(len(v))}


# ---- data ---------------------------------------------------------------------------------------------
def seeded_indices(count: int, seed: int, size: int) -> np.ndarray:
    """The training images ``NpzDataModule(seed=seed, shuffle=False)`` puts first (it permutes once, seeded)."""
    return np.random.default_rng(seed).permutation(count)[:size]


def fixed_batch(path: Path, size: int) -> torch.Tensor:
    """The first training batch exactly as examples/epsinas_nb201.yaml feeds it (seed 0, no augmentation)."""
    data = NpzDataModule(str(path), batch_size=size, shuffle=False, mean=PAPER_MEAN, std=PAPER_STD)
    return next(iter(data.train_dataloader()))[0]


def batch_of(images: np.ndarray, indices: np.ndarray) -> torch.Tensor:
    """Training images ``indices`` (uint8), scaled to [0, 1] and normalised as in the paper."""
    x = torch.from_numpy(images[indices]).float() / 255
    return (x - torch.tensor(PAPER_MEAN).view(1, 3, 1, 1)) / torch.tensor(PAPER_STD).view(1, 3, 1, 1)


# ---- scoring, spread over processes ----------------------------------------------------------------------
def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def _score_chunk(task: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    strings, x, constants, dtype, rescale_at = task
    space = NB201Space()
    scorer = EpsinasScorer(space, constants, dtype=dtype, rescale_at=rescale_at, verify_samples=0)
    start = time.perf_counter()
    scores = scorer.evaluate([space.parse(s) for s in strings], x)
    return scores.eps.numpy(), scores.degenerate.numpy(), scores.float32_range.numpy(), time.perf_counter() - start


def score_all(space: NB201Space, architectures: list, x: torch.Tensor, constants: tuple, workers: int, threads: int,
              dtype: str = "float64", rescale_at: str | None = "layers") -> tuple[EpsinasScores, float]:
    """All architectures' scores with the shared computation, in ``workers`` processes (chunks of
    architectures sorted by their first nodes, so that each keeps its neighbours); wall seconds."""
    intern = _Interner()
    plans = [cell_plan(a.choices, intern) for a in architectures]
    first: dict[Any, Any] = {}
    for plan in plans:  # equal cells sort together, by the first nodes of their first architecture
        first.setdefault(plan.function, plan.node_keys)
    order = sorted(range(len(architectures)), key=lambda i: (plans[i].function is not None, first[plans[i].function],
                                                              plans[i].function or 0))
    strings = [space.format(architectures[i]) for i in order]
    # chunks with equal numbers of distinct cell functions (the work), each function in one chunk
    functions = [plans[i].function for i in order]
    starts = [k for k in range(len(order)) if functions[k] is not None and (k == 0 or functions[k] != functions[k - 1])]
    cuts = [0] + [starts[len(starts) * w // workers] for w in range(1, workers)] + [len(order)] if starts else [0, len(order)]
    chunks = [strings[a:b] for a, b in zip(cuts, cuts[1:])]
    tasks = [(chunk, x, constants, dtype, rescale_at) for chunk in chunks if chunk]
    start = time.perf_counter()
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(len(tasks), initializer=_init_worker, initargs=(1,)) as pool:
            parts = pool.map(_score_chunk, tasks)
    else:
        parts = [_score_chunk(task) for task in tasks]
    seconds = time.perf_counter() - start
    eps, degenerate, in_range = (np.concatenate([p[k] for p in parts]) for k in range(3))
    back = np.empty(len(order), dtype=np.int64)
    back[np.array(order)] = np.arange(len(order))
    return EpsinasScores(torch.from_numpy(eps[back]), torch.from_numpy(degenerate[back]), torch.from_numpy(in_range[back])), seconds


# ---- checks and speed -------------------------------------------------------------------------------------
def flops(space: NB201Space, architecture, batch: int) -> int:
    """FLOPs of one forward (features + a single-output head) counted on the meta device: no compute."""
    with torch.device("meta"):
        network = space.build(architecture)
        with FlopCounterMode(display=False) as counter:
            network.forward_features(torch.empty(batch, 3, 32, 32)).sum(1)
    return counter.get_total_flops()


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_outputs(space: NB201Space, architecture, x: torch.Tensor, dtype: str, constants) -> torch.Tensor:
    """The original computation: full width, ordinary convolutions, no width or box-sum tricks."""
    scorer = EpsinasScorer(space, constants, dtype=dtype, width=None, verify_samples=0, use_supernet=False,
                           flush_denormal=False, box_sums=False, rescale_at=None, degenerate_below=0.0)
    return scorer.outputs(architecture, x)


def speed_and_checks(space: NB201Space, architectures: list, x: torch.Tensor, constants: tuple, shared_seconds: float,
                     workers: int, finite32: np.ndarray, args: argparse.Namespace) -> dict[str, Any]:
    subset = architectures[: min(50, len(architectures))]
    one = EpsinasScorer(space, constants, verify_samples=8, share=False)
    one.measure(subset[:1], x)  # warm up and verify against the full-width network
    unshared = _timed(lambda: one.measure(subset, x)) / len(subset)
    checks = architectures[: args.checks]
    plain_seconds = sum(_timed(lambda a=a: plain_outputs(space, a, x, "float32", constants)) for a in checks)
    full_flops = float(np.mean([2 * flops(space, a, len(x)) for a in subset]))
    worst64, checked = 0.0, 0
    # the float32-NaN architectures are where float64 must be right: check those against the plain full width
    for i in np.flatnonzero(~finite32)[: args.checks64]:
        ours, plain = normalise(one.outputs(architectures[i], x)), normalise(plain_outputs(space, architectures[i], x, "float64", constants))
        if plain.isnan().all(-1).any():  # the plain network underflows here (what exponent tracking is for)
            continue
        worst64, checked = max(worst64, float(((ours - plain).abs() / plain.abs()).nan_to_num(0.0).max())), checked + 1
    return {
        "architectures_per_second_shared": len(architectures) / shared_seconds, "workers": workers,
        "shared_seconds": shared_seconds,
        "architectures_per_second_one_at_a_time": 1 / unshared, "one_at_a_time_threads": args.threads,
        "plain_float32_full_width_seconds_per_architecture": plain_seconds / max(len(checks), 1),
        "speedup_shared_vs_plain_float32": (plain_seconds / max(len(checks), 1)) / (shared_seconds / len(architectures)),
        "full_width_gflop_per_architecture": full_flops / 1e9,
        "float64_width1_vs_plain_full_width_max_relative_normalised_output_difference": worst64,
        "float64_checked_on_float32_nan_architectures": checked,
        "note": "shared: float64, width 1, box sums, exponent tracking, equal cells and operations computed once "
                "(nasframe_epsinas.shared), in --workers one-thread processes; one at a time: the same without sharing, "
                "--threads threads; plain: the original full-width float32 network. Timings depend on the machine's load.",
    }


def naslib_proxies(path: Path, table: NB201Benchmark) -> dict[str, dict]:
    raw = json.loads(path.read_text())["cifar10"]
    space = NB201Space()
    rows = []
    for key, entry in raw.items():
        codes = [int(c) for c in key.strip("()").split(",")]
        ops = [NASLIB_OPS[codes[k]] for k in (0, 1, 3, 2, 4, 5)]  # tuple order -> string order
        architecture = space.parse(f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|")
        rows.append((table.query(architecture), entry))
    accuracy = np.array([a for a, _ in rows])
    result = {}
    for proxy in NASLIB_PROXIES:
        values = [e[proxy]["score"] if isinstance(e.get(proxy), dict) else e.get(proxy) for _, e in rows]
        result[proxy] = correlations(np.array([float(v) if v is not None else math.nan for v in values]), accuracy)
    return result


# ---- the benchmark -------------------------------------------------------------------------------------------
def ordering_figures(scores: EpsinasScores, accuracy: np.ndarray, subset: np.ndarray, args: argparse.Namespace,
                     bootstrap: bool) -> dict[str, Any]:
    """For each ordering: correlations over all and over ``subset``, and pick-best."""
    out = {}
    for ordering in ORDERINGS:
        ordered = scores.ordered(ordering).numpy()
        n = int(np.isfinite(ordered).sum())
        kendall_boot = args.kendall_bootstrap if args.kendall_bootstrap >= 0 else (100 if n <= 2000 else 0)
        boot = dict(bootstrap=args.bootstrap, kendall_bootstrap=kendall_boot, seed=args.seed) if bootstrap else {}
        out[ordering] = {"all": correlations(ordered, accuracy, **boot),
                         "float32_finite": correlations(np.where(subset, ordered, np.nan), accuracy, **boot),
                         "pick_best": pick_best(ordered, accuracy, args.seed)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--all", action="store_true", help="score all 15,625 architectures")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N architectures (a quick check)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=5, help="seeded random batches besides the first 256 in file order")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the Spearman intervals")
    parser.add_argument("--kendall-bootstrap", type=int, default=-1,
                        help="resamples for the Kendall intervals (torchmetrics' Kendall is O(n^2)); -1: 100 up to 2,000 architectures, else none")
    parser.add_argument("--workers", type=int, default=1, help="one-thread processes for the shared scoring")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the main process (one-at-a-time timing, checks)")
    parser.add_argument("--constants", type=float, nargs=2, default=(1e-7, 1.0))
    parser.add_argument("--checks", type=int, default=4, help="architectures for the plain full-width float32 timing")
    parser.add_argument("--checks64", type=int, default=2, help="float32-NaN architectures for the full-width float64 comparison")
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nb201_test_accuracy.csv"))
    parser.add_argument("--naslib", default=str(SHARED / "nb201" / "naslib_zc_nasbench201.json"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "epsinas_nb201.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start_load = os.getloadavg()  # the machine may be shared: speeds are only comparable at similar load
    started = time.perf_counter()
    constants = tuple(args.constants)

    table = NB201Benchmark(args.table)
    space = NB201Space()
    if args.all:
        architectures = table.architectures()
    else:
        generator, chosen = torch.Generator().manual_seed(args.seed), {}
        while len(chosen) < args.samples:
            chosen.setdefault(space.sample(generator), None)
        architectures = list(chosen)
    if args.limit:
        architectures = architectures[: args.limit]
    accuracy = np.array([table.query(a) for a in architectures])
    images = np.load(args.data)["x_train"]
    x = batch_of(images, np.arange(args.batch))  # the original code's protocol
    print(f"epsinas on NAS-Bench-201 CIFAR-10: {len(architectures)} architectures, batch {tuple(x.shape)} (first {args.batch} "
          f"training images in file order) + {args.batches} seeded batches, constants {constants}, {args.workers} worker(s)")

    # ---- the first 256 images in file order: float64 (shared), and a plain float32 computation -------------
    # the fast computation's self-check against the full-width network, before any work (workers skip it)
    EpsinasScorer(space, constants, verify_samples=8).measure(architectures[:16], x[:32])
    scores, seconds = score_all(space, architectures, x, constants, args.workers, args.threads)
    print(f"scored in {seconds:.1f} s: {len(architectures) / seconds:.2f} architectures/s (shared computation, {args.workers} worker(s))")
    scores32, seconds32 = score_all(space, architectures, x, constants, args.workers, args.threads, dtype="float32", rescale_at=None)
    eps, finite32 = scores.eps.numpy(), np.isfinite(scores32.eps.numpy())
    dependent = np.isfinite(eps)
    in_range = scores.float32_range.numpy()
    rescued = dependent & ~finite32

    result: dict[str, Any] = {
        "architectures": len(architectures), "all": args.all, "limit": args.limit, "seed": args.seed, "batch": args.batch,
        "constants": list(constants), "workers": args.workers, "threads": args.threads, "cpus": os.cpu_count(),
        "load_average_at_start": list(start_load), "paper": PAPER,
        "nan_float64": int((~dependent).sum()), "degenerate_float64": int(scores.degenerate.sum()),
        "nan_float32": int((~finite32).sum()), "float32_seconds": seconds32,
        "float32_range_flag_agrees_with_float32": f"{int((in_range == finite32)[dependent].sum())}/{int(dependent.sum())}",
        "rescued_median_accuracy": float(np.median(accuracy[rescued])) if rescued.any() else None,
        "float64_nan_max_accuracy": float(accuracy[~dependent].max()) if (~dependent).any() else None,
    }
    if rescued.sum() > 2 and (dependent & finite32).any():
        result["median_score"] = {"float32_finite": float(np.median(eps[dependent & finite32])), "rescued": float(np.median(eps[rescued]))}
        result["median_accuracy"] = {"float32_finite": float(np.median(accuracy[dependent & finite32])), "rescued": float(np.median(accuracy[rescued]))}
        result["rescued_only"] = correlations(np.where(rescued, eps, np.nan), accuracy)
    result["first_256"] = ordering_figures(scores, accuracy, finite32, args, bootstrap=True)
    paper_protocol = np.where(finite32, scores32.eps.numpy(), np.nan)  # the original: float32, its NaNs left out
    result["paper_protocol"] = {"float32_scores": correlations(paper_protocol, accuracy),
                                "pick_best": pick_best(paper_protocol, accuracy, args.seed)}

    # ---- seeded batches: the same figures, mean +- std over batches ---------------------------------------------
    per_batch = []
    for seed in range(args.batches):
        batch = batch_of(images, seeded_indices(len(images), seed, args.batch))
        if seed == 0:  # seed 0 is what examples/epsinas_nb201.yaml feeds (its datamodule shuffles with seed 0)
            assert torch.allclose(batch, fixed_batch(Path(args.data), args.batch), atol=1e-6), "seeded batch 0 is not the example's"
        batch_scores, _ = score_all(space, architectures, batch, constants, args.workers, args.threads)
        figures = ordering_figures(batch_scores, accuracy, batch_scores.float32_range.numpy(), args, bootstrap=False)
        figures["nan"] = int(batch_scores.eps.isnan().sum())
        per_batch.append(figures)
        print(f"  seeded batch {seed}: " + ", ".join(f"{o} Spearman {figures[o]['all'].get('spearman', math.nan):.3f}" for o in ORDERINGS))
    result["seeded_batches"] = {"seeds": list(range(args.batches)), "per_batch": per_batch, "summary": {
        ordering: {group: {stat: mean_std([b[ordering][group].get(stat) for b in per_batch])
                           for stat in ("spearman", "kendall", "top10_spearman")} for group in ("all", "float32_finite")}
                   | {"pick_best": mean_std([b[ordering]["pick_best"]["mean_test_accuracy"] for b in per_batch])}
        for ordering in ORDERINGS}} if per_batch else {}

    result["speed"] = speed_and_checks(space, architectures, x, constants, seconds, args.workers, finite32, args)
    result["scores"] = [{"arch": space.format(a), "score": None if math.isnan(v) else float(v), "float32_nan": bool(not f),
                         "float32_range": bool(r), "cifar10_test_acc": float(t)}
                        for a, v, f, r, t in zip(architectures, eps, finite32, in_range, accuracy)]
    if Path(args.naslib).is_file():
        result["naslib_proxies_own_architectures"] = naslib_proxies(Path(args.naslib), table)
    result["wall_seconds"] = time.perf_counter() - started
    result["load_average_at_end"] = list(os.getloadavg())

    out = Path(args.out)
    write_json(out, result)
    report(result)
    plot(eps, accuracy, ~finite32, out.with_suffix(".png"), result)
    print(f"load average: {start_load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end ({os.cpu_count()} CPUs)")
    print(f"wrote {out} and {out.with_suffix('.png')}")


def write_json(path: Path, data: dict) -> None:
    """Atomically: a temporary file in the same directory, then ``os.replace`` (NaN written as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_nulls(data), indent=2) + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _nulls(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nulls(v) for v in value]
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and value is not None and math.isfinite(value) else "n/a"


def _ci(c: dict, name: str) -> str:
    ci = c.get(f"{name}_ci95")
    return f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""


def report(r: dict) -> None:
    print(f"NaN: float64 {r['nan_float64']} / {r['architectures']} ({r['degenerate_float64']} degenerate); plain float32 "
          f"{r['nan_float32']} (median accuracy of the rescued: {r['rescued_median_accuracy']}); float32-range flag agrees with "
          f"float32 on {r['float32_range_flag_agrees_with_float32']}")
    print(f"first {r['batch']} training images in file order (95% bootstrap intervals over architectures):")
    for ordering, f in r["first_256"].items():
        for group in ("all", "float32_finite"):
            c = f[group]
            print(f"  {ordering:13} {group:15} n={c['n']:5}  Spearman {_fmt(c.get('spearman'))}{_ci(c, 'spearman')}  "
                  f"Kendall {_fmt(c.get('kendall'))}{_ci(c, 'kendall')}  top-10% Spearman {_fmt(c.get('top10_spearman'))}")
        p = f["pick_best"]
        print(f"  {ordering:13} pick-best-of-{p['size']} over {p['draws']} draws{' (bootstrap)' if p['with_replacement'] else ''}: "
              f"{_fmt(p['mean_test_accuracy'], 2)} (std {_fmt(p['std'], 2)}); best of all scored: {_fmt(p['best_of_scored_set'], 2)}")
    p = r["paper_protocol"]
    print(f"  paper protocol (float32 scores, NaN left out): Spearman {_fmt(p['float32_scores'].get('spearman'))}, "
          f"pick-best {_fmt(p['pick_best']['mean_test_accuracy'], 2)}   (paper: Spearman 0.87, Kendall 0.69, pick-best 93.86)")
    if r["seeded_batches"]:
        print(f"{len(r['seeded_batches']['seeds'])} seeded batches of {r['batch']}, mean +- std:")
        for ordering, s in r["seeded_batches"]["summary"].items():
            for group in ("all", "float32_finite"):
                sp, kd = s[group]["spearman"], s[group]["kendall"]
                print(f"  {ordering:13} {group:15} Spearman {_fmt(sp['mean'])} +- {_fmt(sp['std'])}  Kendall {_fmt(kd['mean'])} +- {_fmt(kd['std'])}")
            print(f"  {ordering:13} pick-best {_fmt(s['pick_best']['mean'], 2)} +- {_fmt(s['pick_best']['std'], 2)}")
    s = r["speed"]
    print(f"speed: {s['architectures_per_second_shared']:.2f} arch/s shared ({s['workers']} worker(s)), "
          f"{s['architectures_per_second_one_at_a_time']:.2f} one at a time, plain float32 full width "
          f"{s['plain_float32_full_width_seconds_per_architecture']:.2f} s/arch (x{s['speedup_shared_vs_plain_float32']:.1f})")
    print(f"check: float64 width 1 vs plain full width, max rel. normalised output difference "
          f"{s['float64_width1_vs_plain_full_width_max_relative_normalised_output_difference']:.2e} on "
          f"{s['float64_checked_on_float32_nan_architectures']} float32-NaN architectures")
    for name, v in r.get("naslib_proxies_own_architectures", {}).items():
        print(f"  {name:10} n={v['n']:4}  Spearman {_fmt(v.get('spearman'))}  Kendall {_fmt(v.get('kendall'))}  top-10% {_fmt(v.get('top10_spearman'))}")


def plot(scores: np.ndarray, accuracy: np.ndarray, collapsed: np.ndarray, path: Path, r: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    ok = np.isfinite(scores)
    ax.scatter(scores[ok & ~collapsed], accuracy[ok & ~collapsed], s=4, alpha=0.5, label="finite in float32")
    ax.scatter(scores[ok & collapsed], accuracy[ok & collapsed], s=4, alpha=0.5, c="tab:red", label="NaN in float32, finite in float64")
    ax.set_xscale("log")
    ax.set_xlabel("epsinas score")
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    c = r["first_256"]["score"]["all"]
    ax.set_title(f"NB201, {r['architectures']} archs: Spearman {_fmt(c.get('spearman'))}, Kendall {_fmt(c.get('kendall'))}")
    ax.set_ylim(max(0, np.nanmin(accuracy[ok]) - 1) if ok.any() else 0, 95)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
