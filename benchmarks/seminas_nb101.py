"""SemiNAS's predictor on NAS-Bench-101: does pseudo-labelling help with 100 labels?

On NASLib's 500-architecture NAS-Bench-101 sample (deduplicated by pruned cell, so no held-out
network also sits in the training set), train the SemiNAS encoder-predictor-decoder on
``--labelled`` architectures with their 108-epoch validation accuracy, (a) plus ``--unlabelled``
random NAS-Bench-101 architectures pseudo-labelled by the predictor, (b) on the labelled ones only
(same number of updates, same initial weights; with pseudo-labels the labelled ones are up-sampled
``--up-sample`` times, as in the paper), and report the Spearman correlation between
predicted and true validation accuracy on the held-out architectures, over ``--repeats`` splits.

    nice python benchmarks/seminas_nb101.py [--repeats 5] [--labelled 100] [--unlabelled 1000] [--up-sample 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau, spearmanr

from nasframe.spaces.nb101 import NB101Space
from nasframe.tabular import NB101Benchmark
from nasframe_seminas import SemiNASModel, semi_supervised_fit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "nb101" / "naslib_zc_nasbench101.json"


def fit_and_score(space: NB101Space, labelled: list, targets: torch.Tensor, unlabelled: list, held_out: list,
                  truth: list[float], args: argparse.Namespace, seed: int) -> dict[str, float]:
    length = len(space.token_choices())
    encode = lambda archs: torch.tensor([space.to_tokens(a) for a in archs] or [[0] * length], dtype=torch.long)[: len(archs)]  # noqa: E731
    torch.manual_seed(seed)  # same initial weights for both variants
    model = SemiNASModel.for_space(space)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    mean, std = float(targets.mean()), float(targets.std())
    semi_supervised_fit(model, optimizer, encode(labelled), (targets - mean) / std, encode(unlabelled), args.steps,
                        args.pseudo_steps, args.batch_size, torch.Generator().manual_seed(seed), up_sample=args.up_sample)
    predicted = model.predict(encode(held_out)).tolist()
    return {"spearman": float(spearmanr(predicted, truth).statistic), "kendall": float(kendalltau(predicted, truth).statistic)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--labelled", type=int, default=100)
    parser.add_argument("--unlabelled", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=300, help="updates on the labelled data")
    parser.add_argument("--pseudo-steps", type=int, default=300, help="updates on labelled + pseudo-labelled")
    parser.add_argument("--up-sample", type=int, default=10, help="labelled architectures repeated this many times next to the pseudo-labelled (the paper: 10)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "seminas_nb101.json"))
    args = parser.parse_args(argv)
    if not Path(args.data).is_file():
        sys.exit(f"NAS-Bench-101 sample {args.data!r} not found; pass --data")
    torch.set_num_threads(1)
    start = time.perf_counter()
    benchmark = NB101Benchmark(args.data)
    space = NB101Space()
    unique: dict[str, object] = {}
    for architecture in benchmark.architectures():  # one per pruned cell: held-out networks never leak into training
        unique.setdefault(json.dumps(space.pruned(architecture)), architecture)
    architectures = list(unique.values())
    print(f"{len(benchmark.architectures())} architectures in the sample, {len(architectures)} distinct pruned cells; "
          f"{args.labelled} labelled, {len(architectures) - args.labelled} held out, {args.unlabelled} unlabelled")
    runs = []
    for repeat in range(args.repeats):
        generator = torch.Generator().manual_seed(repeat)
        order = torch.randperm(len(architectures), generator=generator).tolist()
        labelled = [architectures[i] for i in order[: args.labelled]]
        held_out = [architectures[i] for i in order[args.labelled:]]
        targets = torch.tensor([benchmark.query(a, "val_accuracy") for a in labelled])
        truth = [benchmark.query(a, "val_accuracy") for a in held_out]
        unlabelled = [space.sample(generator) for _ in range(args.unlabelled)]
        semi = fit_and_score(space, labelled, targets, unlabelled, held_out, truth, args, repeat)
        supervised = fit_and_score(space, labelled, targets, [], held_out, truth, args, repeat)
        runs.append({"repeat": repeat, "pseudo_labelled": semi, "labelled_only": supervised})
        print(f"split {repeat}: Spearman {semi['spearman']:.3f} with pseudo-labels, {supervised['spearman']:.3f} labelled only", flush=True)
    summary = {}
    for variant in ("pseudo_labelled", "labelled_only"):
        for stat in ("spearman", "kendall"):
            values = [r[variant][stat] for r in runs]
            summary.setdefault(variant, {})[stat] = {"mean": statistics.mean(values), "std": statistics.pstdev(values)}
    print(f"\nNAS-Bench-101 (NASLib sample), held-out Spearman / Kendall of predicted vs true validation accuracy, "
          f"{args.repeats} splits:")
    print(f"  {args.labelled} labelled + {args.unlabelled} pseudo-labelled: Spearman {summary['pseudo_labelled']['spearman']['mean']:.3f} "
          f"+- {summary['pseudo_labelled']['spearman']['std']:.3f}, Kendall {summary['pseudo_labelled']['kendall']['mean']:.3f}")
    print(f"  {args.labelled} labelled only:{'':20}Spearman {summary['labelled_only']['spearman']['mean']:.3f} "
          f"+- {summary['labelled_only']['spearman']['std']:.3f}, Kendall {summary['labelled_only']['kendall']['mean']:.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "distinct_cells": len(architectures), "summary": summary, "runs": runs,
                               "seconds": time.perf_counter() - start}, indent=1))
    print(f"wrote {out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
