"""Reproduce epsinas on NAS-Bench-201 CIFAR-10 with real images.

Scores K architectures (default 1000 sampled with a fixed seed; ``--all`` for the 15,625) on 256 real
CIFAR-10 training images, and reports, as printed lines and JSON (benchmarks/results/epsinas_nb201.json):

* Spearman / Kendall against the 200-epoch CIFAR-10 test accuracy, global and top-10% (by accuracy),
  over every finite float64 score, and over the subset where a plain float32 computation stays finite;
* NaN counts (float64, and float32 at w = 1e-7), pick-best-of-1000 test accuracy;
* the other zero-cost proxies of NASLib's NAS-Bench-201 scores on their own architectures;
* speed: architectures/second at batch 256 and 64, FLOPs (torch.utils.flop_counter), achieved GFLOP/s
  against a plain large convolution timed on the same machine, and checks that the width-reduced
  float64 computation reproduces the full-width network;
* a scatter plot (benchmarks/results/epsinas_nb201.png).

    nice python benchmarks/epsinas_nb201.py            # 1000 architectures
    nice python benchmarks/epsinas_nb201.py --all      # all 15,625
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau, spearmanr
from torch.utils.flop_counter import FlopCounterMode

from nasframe.data import NpzDataModule
from nasframe.spaces.nb201 import NB201Space
from nasframe.tabular.nb201 import NB201Benchmark
from nasframe_epsinas.score import EpsinasScorer, epsinas_score, normalise

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PAPER_MEAN = tuple(v / 255 for v in (125.3, 123.0, 113.9))
PAPER_STD = tuple(v / 255 for v in (63.0, 62.1, 66.7))
NASLIB_OPS = {0: "skip_connect", 1: "none", 2: "nor_conv_3x3", 3: "nor_conv_1x1", 4: "avg_pool_3x3"}
NASLIB_PROXIES = ("synflow", "jacov", "nwot", "snip", "grad_norm", "grasp", "fisher", "epe_nas", "l2_norm", "plain",
                  "flops", "params")


def correlations(scores: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    """Spearman and Kendall (tau-b) over finite scores, global and on the top 10% by accuracy."""
    keep = np.isfinite(scores)
    s, a = scores[keep], accuracy[keep]
    top = a >= np.quantile(a, 0.9)
    return {"n": int(keep.sum()), "spearman": float(spearmanr(s, a)[0]), "kendall": float(kendalltau(s, a)[0]),
            "top10_n": int(top.sum()), "top10_spearman": float(spearmanr(s[top], a[top])[0]),
            "top10_kendall": float(kendalltau(s[top], a[top])[0])}


def fixed_batch(path: Path, size: int) -> torch.Tensor:
    """The first training batch, exactly as examples/epsinas_nb201.yaml feeds it (no shuffle, no augmentation)."""
    data = NpzDataModule(str(path), batch_size=size, shuffle=False, mean=PAPER_MEAN, std=PAPER_STD)
    return next(iter(data.train_dataloader()))[0]


def flops(space: NB201Space, architecture, batch: int) -> int:
    """FLOPs of one forward (features + a single-output head) counted on the meta device: no compute."""
    with torch.device("meta"):
        network = space.build(architecture)
        with FlopCounterMode(display=False) as counter:
            network.forward_features(torch.empty(batch, 3, 32, 32)).sum(1)
    return counter.get_total_flops()


def conv_reference(dtype: torch.dtype, repeats: int = 3) -> float:
    """GFLOP/s of a plain large 3x3 convolution (batch 256, 64 -> 64 channels, 16x16), best of ``repeats``."""
    x, w = torch.randn(256, 64, 16, 16, dtype=dtype), torch.randn(64, 64, 3, 3, dtype=dtype)
    with torch.inference_mode():
        torch.nn.functional.conv2d(x, w, padding=1)
        best = min(_timed(lambda: torch.nn.functional.conv2d(x, w, padding=1)) for _ in range(repeats))
    return 2 * 256 * 64 * 64 * 9 * 16 * 16 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def plain_outputs(space: NB201Space, architecture, x: torch.Tensor, dtype: torch.dtype, constants) -> torch.Tensor:
    """The original computation: full width, ordinary convolutions, no width or box-sum tricks."""
    scorer = EpsinasScorer(space, constants, dtype="float64" if dtype == torch.float64 else "float32", width=None,
                           verify_samples=0, use_supernet=False, flush_denormal=False, box_sums=False,
                           rescale_at=None)
    return scorer.outputs(architecture, x)


def variants(space: NB201Space, architectures: list, accuracy: np.ndarray, data: Path, count: int, batch: int) -> dict:
    """Why the all-architecture correlation differs: the same score with one ingredient changed at a time
    (BN gamma, normalisation, input preprocessing, constants, batch), on the first ``count`` architectures."""
    from torch.nn.modules.batchnorm import _BatchNorm

    archs, acc = architectures[:count], accuracy[:count]
    raw = torch.from_numpy(np.load(data)["x_train"][:batch]).float() / 255
    paper = (raw - torch.tensor(PAPER_MEAN).view(1, 3, 1, 1)) / torch.tensor(PAPER_STD).view(1, 3, 1, 1)

    def outputs(constants=(1e-7, 1.0), x=paper, dtype="float64", gamma_one=False) -> torch.Tensor:
        scorer = EpsinasScorer(space, constants, dtype=dtype, verify_samples=0, rescale_at=None if dtype == "float32" else "layers")
        if gamma_one:  # BN gamma left at 1 instead of the constant
            for net in scorer._networks(archs[0])[0]:
                bn = {id(m.weight) for m in net.module.modules() if isinstance(m, _BatchNorm) and m.weight is not None}
                for p, _ in net.weights:
                    if id(p) in bn:
                        p.fill_(1.0)
                net.weights = [(p, r) for p, r in net.weights if id(p) not in bn]
        return torch.stack([scorer.outputs(a, x) for a in archs], 1)

    finite32 = np.isfinite(epsinas_score(*outputs(dtype="float32")).numpy())

    def keep_zeros(o: torch.Tensor) -> np.ndarray:
        z = (o - o.amin(-1, keepdim=True)) / (o.amax(-1, keepdim=True) - o.amin(-1, keepdim=True))
        return ((z[0] - z[1]).abs().mean(-1) / z.mean((0, 2))).numpy()

    cases = {
        "as in the paper": lambda: epsinas_score(*outputs()).numpy(),
        "zeros kept (not missing)": lambda: keep_zeros(outputs()),
        "BN gamma = 1": lambda: epsinas_score(*outputs(gamma_one=True)).numpy(),
        "inputs in [0,1], not normalised": lambda: epsinas_score(*outputs(x=raw)).numpy(),
        "random normal inputs": lambda: epsinas_score(*outputs(x=torch.randn(paper.shape, generator=torch.Generator().manual_seed(0)))).numpy(),
        "constants 1e-5, 1": lambda: epsinas_score(*outputs((1e-5, 1.0))).numpy(),
        "constants 1e-3, 1": lambda: epsinas_score(*outputs((1e-3, 1.0))).numpy(),
    }
    result = {"architectures": len(archs), "batch": batch, "float32_finite": int(finite32.sum())}
    for name, compute in cases.items():
        scores = compute()
        result[name] = {"all": correlations(scores, acc), "float32_finite": correlations(np.where(finite32, scores, np.nan), acc)}
        print(f"  variant {name:32} all: Spearman {result[name]['all']['spearman']:.3f}  "
              f"float32-finite: {result[name]['float32_finite']['spearman']:.3f}")
    return result


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
        scores = np.array([float(v) if v is not None else math.nan for v in values])
        result[proxy] = correlations(scores, accuracy)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--all", action="store_true", help="score all 15,625 architectures")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 is faster on a busy machine)")
    parser.add_argument("--constants", type=float, nargs=2, default=(1e-7, 1.0))
    parser.add_argument("--checks", type=int, default=8, help="architectures for the full-width float32 comparison")
    parser.add_argument("--checks64", type=int, default=2, help="architectures for the full-width float64 comparison")
    parser.add_argument("--variants", type=int, default=0, help="architectures for the ingredient study (batch 64); 0 skips it")
    parser.add_argument("--data", default=str(SHARED / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--table", default=str(SHARED / "nb201" / "nb201_test_accuracy.csv"))
    parser.add_argument("--naslib", default=str(SHARED / "nb201" / "naslib_zc_nasbench201.json"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "epsinas_nb201.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start_load = os.getloadavg()[0]  # the machine may be shared: speeds are only comparable at similar load
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
    accuracy = np.array([table.query(a) for a in architectures])
    x = fixed_batch(Path(args.data), args.batch)
    print(f"epsinas on NAS-Bench-201 CIFAR-10: {len(architectures)} architectures, batch {tuple(x.shape)}, "
          f"constants {constants}, {args.threads} thread(s)")

    # ---- the score: float64, width 1, box sums (all exact), and float32 at the small constant ---------
    scorer = EpsinasScorer(space, constants, dtype="float64", width=1, verify_samples=8)
    scorer.outputs(architectures[0], x)  # warm up and verify against the full-width network
    start = time.perf_counter()
    outputs = [scorer.outputs(a, x) for a in architectures]
    seconds = time.perf_counter() - start
    scores = epsinas_score(*torch.stack(outputs, 1)).numpy()
    print(f"scored in {seconds:.1f} s: {len(architectures) / seconds:.2f} architectures/s at batch {args.batch}")

    # float32 at w1 (the small constant is the one that collapses): where a plain float32 forward stays finite
    small = EpsinasScorer(space, (constants[0], constants[1]), dtype="float32", width=1, verify_samples=0, rescale_at=None)
    net, _ = small._networks(architectures[0])
    collapsed = []
    xf = x.float()
    with small._numerics():
        for a in architectures:
            y = net[0].output(xf, constants[0], a)
            collapsed.append(bool((y.amax() == y.amin()) or not torch.isfinite(y).all()))
    collapsed = np.array(collapsed)
    finite32 = np.isfinite(scores) & ~collapsed

    result: dict = {"architectures": len(architectures), "all": args.all, "seed": args.seed, "batch": args.batch,
                    "constants": list(constants), "threads": args.threads, "cpus": os.cpu_count(),
                    "load_average_at_start": start_load}
    result["nan_float64"] = int(np.isnan(scores).sum())
    result["nan_float32"] = int((np.isnan(scores) | collapsed).sum())
    result["nan_float32_median_accuracy"] = float(np.median(accuracy[collapsed & np.isfinite(scores)])) if (collapsed & np.isfinite(scores)).any() else None
    result["nan_float64_max_accuracy"] = float(accuracy[np.isnan(scores)].max()) if np.isnan(scores).any() else None
    result["correlation_all"] = correlations(scores, accuracy)
    result["correlation_float32_finite"] = correlations(np.where(finite32, scores, np.nan), accuracy)
    rescued = collapsed & np.isfinite(scores)
    if rescued.sum() > 2:  # the architectures only float64 can score: how do they rank among themselves?
        result["correlation_float32_nan_only"] = correlations(np.where(rescued, scores, np.nan), accuracy)
        result["median_score"] = {"float32_finite": float(np.median(scores[finite32])), "float32_nan": float(np.median(scores[rescued]))}
        result["median_accuracy"] = {"float32_finite": float(np.median(accuracy[finite32])), "float32_nan": float(np.median(accuracy[rescued]))}
    ranked_last = np.where(np.isnan(scores), -np.inf, scores)  # a NaN score ranks last, as in a search
    result["spearman_all_nan_ranked_last"] = float(spearmanr(ranked_last, accuracy)[0])

    # ---- pick-best: the best finite score's test accuracy in 20 draws of 1000 --------------------------
    rng = np.random.default_rng(args.seed)
    draw = min(1000, len(architectures))
    replace = draw == len(architectures)  # one scored set of 1000: bootstrap draws
    picks = []
    for _ in range(20):
        idx = rng.choice(len(architectures), draw, replace=replace)
        idx = idx[np.isfinite(scores[idx])]
        picks.append(accuracy[idx[np.argmax(scores[idx])]])
    best = int(np.nanargmax(scores))
    result["pick_best"] = {"draws": 20, "size": draw, "with_replacement": replace, "mean_test_accuracy": float(np.mean(picks)),
                           "std": float(np.std(picks)), "best_of_scored_set": {"arch": space.format(architectures[best]),
                                                                               "test_accuracy": float(accuracy[best])},
                           "table_optimum": table.best()[1]}

    # ---- speed: batch 64, FLOPs, GFLOP/s against a plain convolution -----------------------------------
    subset = architectures[: min(100, len(architectures))]
    x64 = x[:64]
    scorer64 = EpsinasScorer(space, constants, dtype="float64", width=1, verify_samples=0)
    scorer64.outputs(subset[0], x64)
    t64 = _timed(lambda: [scorer64.outputs(a, x64) for a in subset])
    full_flops = np.array([2 * flops(space, a, args.batch) for a in subset])  # two constants per architecture
    narrow_space = scorer.narrow_space
    narrow_flops = np.array([2 * flops(narrow_space, a, args.batch) for a in subset])
    t256 = _timed(lambda: [scorer.outputs(a, x) for a in subset])
    ref32, ref64 = conv_reference(torch.float32), conv_reference(torch.float64)

    checks = architectures[: args.checks]
    plain32, agree, plain_seconds = [], 0, 0.0
    for a, out in zip(checks, outputs):
        start = time.perf_counter()
        y = plain_outputs(space, a, x, torch.float32, constants)
        plain_seconds += time.perf_counter() - start
        plain32.append(float(epsinas_score(*y)))
        agree += bool(math.isnan(plain32[-1])) == bool(collapsed[architectures.index(a)] or math.isnan(scores[architectures.index(a)]))
    check_flops = sum(2 * flops(space, a, args.batch) for a in checks)
    worst64 = 0.0
    # the float32-NaN architectures are where float64 must be right: check those against the plain full width
    for a in [architectures[i] for i in np.flatnonzero(collapsed & np.isfinite(scores))[: args.checks64]]:
        y = plain_outputs(space, a, x, torch.float64, constants)
        ours = outputs[architectures.index(a)]
        # after min-max normalisation: our outputs carry the tracked power of two, which the score ignores
        ours, y = normalise(ours), normalise(y)
        worst64 = max(worst64, float(((ours - y).abs() / y.abs()).nan_to_num(0.0).max()))
    result["speed"] = {
        "architectures_per_second_batch256": len(architectures) / seconds,
        "architectures_per_second_batch64": len(subset) / t64,
        "original_seconds_per_architecture_batch256": "~1.9 (digest, original code, autograd on, float32)",
        "plain_float32_full_width_seconds_per_architecture_batch256": plain_seconds / len(checks),
        "speedup_vs_plain_float32": (plain_seconds / len(checks)) / (seconds / len(architectures)),
        "full_width_gflop_per_architecture_batch256": float(full_flops.mean() / 1e9),
        "computed_gflop_per_architecture_batch256": float(narrow_flops.mean() / 1e9),
        "reference_conv_gflops_float32": ref32, "reference_conv_gflops_float64": ref64,
        "plain_float32_gflops": check_flops / plain_seconds / 1e9,
        "plain_float32_fraction_of_reference": check_flops / plain_seconds / 1e9 / ref32,
        "ours_effective_gflops": float(full_flops.sum() / t256 / 1e9),
        "ours_effective_vs_reference_float32": float(full_flops.sum() / t256 / 1e9 / ref32),
        "ours_computed_gflops": float(narrow_flops.sum() / t256 / 1e9),
        "note": "ours: float64 on a width-1 network with box-sum convolutions (exact for constant weights); "
                "'computed' counts the FLOPs of the width-1 network with ordinary convolutions, 'effective' the "
                "full-width network's; FLOPs from torch.utils.flop_counter (conv/linear only)",
    }
    result["checks"] = {"float32_nan_pattern_agrees": f"{agree}/{len(checks)}", "plain_float32_scores": plain32,
                        "float64_full_width_max_relative_normalised_output_difference": worst64, "float64_checked": args.checks64}

    result["scores"] = [{"arch": space.format(a), "score": None if math.isnan(v) else float(v), "float32_nan": bool(c or math.isnan(v)),
                         "cifar10_test_acc": float(t)} for a, v, c, t in zip(architectures, scores, collapsed, accuracy)]
    if args.variants:
        result["variants"] = variants(space, architectures, accuracy, Path(args.data), args.variants, 64)
    if Path(args.naslib).is_file():
        result["naslib_proxies_own_architectures"] = naslib_proxies(Path(args.naslib), table)
    result["paper"] = {"spearman": 0.87, "kendall": 0.69, "top10_spearman": 0.50, "pick_best_mean": 93.86}

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    plot(scores, accuracy, collapsed, out.with_suffix(".png"), result)
    print(f"load average: {start_load:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} CPUs)")
    print(f"wrote {out} and {out.with_suffix('.png')}")


def report(r: dict) -> None:
    c, c32, s = r["correlation_all"], r["correlation_float32_finite"], r["speed"]
    print(f"NaN scores: float64 {r['nan_float64']} / {r['architectures']}; plain float32 {r['nan_float32']} "
          f"(median accuracy of those float64 rescues: {r['nan_float32_median_accuracy']})")
    for name, v in (("all finite (float64)", c), ("float32-finite subset", c32)):
        print(f"{name:24} n={v['n']:5}  Spearman {v['spearman']:.3f}  Kendall {v['kendall']:.3f}  "
              f"top-10% Spearman {v['top10_spearman']:.3f}  Kendall {v['top10_kendall']:.3f}")
    if "correlation_float32_nan_only" in r:
        v = r["correlation_float32_nan_only"]
        print(f"{'float32-NaN only':24} n={v['n']:5}  Spearman {v['spearman']:.3f}  Kendall {v['kendall']:.3f}; median score "
              f"{r['median_score']['float32_nan']:.3g} vs {r['median_score']['float32_finite']:.3g} (float32-finite), median accuracy "
              f"{r['median_accuracy']['float32_nan']:.2f} vs {r['median_accuracy']['float32_finite']:.2f}")
    print(f"Spearman with NaN ranked last: {r['spearman_all_nan_ranked_last']:.3f}")
    p = r["pick_best"]
    print(f"pick-best-of-{p['size']} over {p['draws']} draws (replacement={p['with_replacement']}): mean test accuracy "
          f"{p['mean_test_accuracy']:.2f} (std {p['std']:.2f}); best of the scored set {p['best_of_scored_set']['test_accuracy']:.2f}")
    print(f"speed: {s['architectures_per_second_batch256']:.2f} arch/s at batch 256, {s['architectures_per_second_batch64']:.2f} at 64; "
          f"plain float32 full width {s['plain_float32_full_width_seconds_per_architecture_batch256']:.2f} s/arch "
          f"(x{s['speedup_vs_plain_float32']:.1f} faster now)")
    print(f"GFLOP/s: reference conv float32 {s['reference_conv_gflops_float32']:.1f}, float64 {s['reference_conv_gflops_float64']:.1f}; "
          f"plain float32 network {s['plain_float32_gflops']:.1f} ({100 * s['plain_float32_fraction_of_reference']:.0f}% of reference); "
          f"ours effective {s['ours_effective_gflops']:.1f} ({s['ours_effective_vs_reference_float32']:.1f}x reference), "
          f"computed {s['ours_computed_gflops']:.2f}")
    k = r["checks"]
    print(f"checks: float32 NaN pattern agrees {k['float32_nan_pattern_agrees']}; float64 width-1 vs plain full width max rel. "
          f"normalised output difference {k['float64_full_width_max_relative_normalised_output_difference']:.2e} on {k['float64_checked']}")
    for name, v in r.get("naslib_proxies_own_architectures", {}).items():
        print(f"  {name:10} n={v['n']:4}  Spearman {v['spearman']:.3f}  Kendall {v['kendall']:.3f}  top-10% {v['top10_spearman']:.3f}")


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
    c = r["correlation_all"]
    ax.set_title(f"NB201, {r['architectures']} archs: Spearman {c['spearman']:.3f}, Kendall {c['kendall']:.3f}")
    ax.set_ylim(max(0, np.nanmin(accuracy[ok]) - 1) if ok.any() else 0, 95)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
