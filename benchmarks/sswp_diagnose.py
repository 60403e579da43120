"""Why do SSWP's concomitant weights not beat random initialisation in ``sswp_cifar10.py``'s CPU setting?

``sswp_cifar10.py`` measures the paper's claim; this script tests the causes the issue names, at the
same size and with the same runs (it imports that benchmark's search, pre-training and fine-tuning):

  schedule     how many weight steps trained the ops the search keeps (single-path steps share each
               edge's steps among its 7 ops), and the kNN accuracy of the same architecture pre-trained
               with SimCLR for only that many steps: if it matches the search's kNN, the search's
               features are weak because each kept op trained little, not because of the search;
  collapse     the effective rank (exp of the entropy of the normalised singular values) and the mean
               per-dimension std of the L2-normalised features on the test images, at initialisation,
               after the search and after pre-training: a collapsed SimCLR gives a rank near 1;
  BatchNorm    the kNN accuracy of the search's export with its BatchNorm running statistics as
               exported and re-estimated on training images (``nasframe.buffers.recalibrate_batchnorm``);
  fine-tuning  (a), (b) and (c) fine-tuned again at a lower learning rate (pre-trained weights can be
               washed out by a rate chosen for random initialisation);
  temperature  (c) pre-trained with SimCLR temperature 0.5 (SimCLR's CIFAR value) instead of the
               paper's 0.07, then kNN and fine-tuning: does SimCLR pre-training help fine-tuning at all here?

The projection head is re-initialised at export, as the paper does, so it cannot be the cause of a
fine-tuning gap; it is not probed. Writes benchmarks/results/sswp_diagnose.json (atomically).

    python benchmarks/sswp_diagnose.py                 # ~25 min on a quiet 2-core CPU
    python benchmarks/sswp_diagnose.py --cells 3 --channels 4 --search-epochs 2 --limit-train 640 \\
        --finetune-epochs 2 4 --finetune-batch-sizes 32 4 --seeds 0 1 --allow-busy   # does it all run?

Options are ``sswp_cifar10.py``'s, plus ``--low-lr`` and ``--temperature``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sswp_cifar10 as bench  # noqa: E402  (the benchmark whose result this explains)

from nasframe import load_model  # noqa: E402
from nasframe.buffers import recalibrate_batchnorm  # noqa: E402
from nasframe.evaluation import INIT_SEED, features_and_logits, knn_accuracy, validation_images  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--low-lr", type=float, default=0.005, help="the second fine-tuning learning rate")
    extra.add_argument("--temperature", type=float, default=0.5, help="SimCLR temperature of the second pre-training")
    mine, rest = extra.parse_known_args(argv)
    args = bench.parse_args(rest + ([] if any(a.startswith("--output") for a in rest) else
                                    ["--output", str(bench.ROOT / "benchmarks" / "results" / "sswp_diagnose.json")]))
    args.low_lr, args.temperature = mine.low_lr, mine.temperature
    return args


@bench.timed
def pretrain(args: argparse.Namespace, workdir: Path, architecture: str, steps: int, name: str,
             temperature: float = 0.07) -> dict:
    """SimCLR pre-training of ``architecture`` from the search's initial weights for ``steps`` weight steps."""
    bench.seed_everything(args.search_seed, workers=True)
    space = bench.make_space(args)
    data = bench.search_data(args, bench.WeightHalf)
    strategy = bench.FixedArchitecture(space.parse(architecture), seed=args.search_seed)
    nas = bench.search_module(args, space, strategy, workdir / f"{name}_export", temperature=temperature)
    fit = bench.trainer(args, max_epochs=args.search_epochs, max_steps=steps, limit_val_batches=0,
                        default_root_dir=str(workdir / name))
    fit.fit(nas, datamodule=data)
    if fit.global_step != steps:
        raise bench.IncompleteRun(f"pre-training {name} took {fit.global_step} of its {steps} steps")
    return {"export": str(workdir / f"{name}_export"), "weight_steps": fit.global_step, "knn": nas.evaluation,
            "temperature": temperature}


def feature_statistics(features: torch.Tensor) -> dict:
    normalised = torch.nn.functional.normalize(features.double(), dim=1)
    singular = torch.linalg.svdvals(normalised - normalised.mean(0))
    p = singular / singular.sum()
    return {"effective_rank": float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())),
            "dimensions": features.shape[1], "mean_std": float(normalised.std(0).mean())}


@bench.timed
def probe(args: argparse.Namespace, exports: dict[str, str], architecture: str) -> dict:
    """Collapse statistics and kNN (as exported / BatchNorm re-estimated) of each start's features;
    ``init``: the architecture freshly built (seed ``INIT_SEED``, as ``knn/accuracy_at_init``)."""
    bench.seed_everything(args.search_seed, workers=True)
    data = bench.search_data(args)
    data.setup("fit")
    test = validation_images(data)
    calibration = [batch[0] if isinstance(batch, (list, tuple)) else batch
                   for _, batch in zip(range(20), data.calibration_dataloader())]
    space = bench.make_space(args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        fresh = space.build(space.parse(architecture)).eval()
    networks = {"init": fresh, **{name: load_model(directory) for name, directory in exports.items()}}
    out = {}
    for name, network in networks.items():
        features, _, labels = features_and_logits(network, test)
        row = {**feature_statistics(features), "knn_as_exported": knn_accuracy(features, labels)}
        recalibrated = copy.deepcopy(network)
        recalibrate_batchnorm(recalibrated, calibration)
        features, _, labels = features_and_logits(recalibrated, test)
        row["knn_bn_recalibrated"] = knn_accuracy(features, labels)
        out[name] = row
    return out


def plan(args: argparse.Namespace, workdir: Path) -> list[bench.Task]:
    low = argparse.Namespace(**{**vars(args), "finetune_lr": args.low_lr})
    search = lambda r: r["search"]  # noqa: E731
    tasks = [
        bench.Task("search", bench.run_search, (), lambda r: (args, workdir)),
        bench.Task("pretraining", pretrain, ("search",),
                   lambda r: (args, workdir, search(r)["architecture"], search(r)["weight_steps"], "pretraining")),
        bench.Task("pretraining_t", pretrain, ("search",),
                   lambda r: (args, workdir, search(r)["architecture"], search(r)["weight_steps"], "pretraining_t",
                              args.temperature)),
        bench.Task("pretraining_short", pretrain, ("search",),
                   lambda r: (args, workdir, search(r)["architecture"],
                              max(1, round(search(r)["chosen_op_steps"]["chosen_op_steps_mean"])), "pretraining_short")),
        bench.Task("probe", probe, ("search", "pretraining", "pretraining_short"),
                   lambda r: (args, {"a": search(r)["export"], "c": r["pretraining"]["export"],
                                     "c_short": r["pretraining_short"]["export"]}, search(r)["architecture"])),
    ]
    starts = {"a": ("search", args), "b": ("search", args), "c": ("pretraining", args)}
    for seed in args.seeds:  # 10% labels only: the benchmark's target fraction
        for variant, (source, _) in starts.items():
            tasks.append(bench.Task(f"low_lr/{variant}/{seed}", bench.run_finetune, (source,),
                                    lambda r, v=variant, s=seed, src=source: (low, v, r[src]["export"], s, 0)))
        tasks.append(bench.Task(f"temperature/c/{seed}", bench.run_finetune, ("pretraining_t",),
                                lambda r, s=seed: (args, "c", r["pretraining_t"]["export"], s, 0)))
    return tasks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    if load[0] >= bench.BUSY_LOAD and not args.allow_busy:
        raise SystemExit(f"1-minute load average {load[0]:.2f} >= {bench.BUSY_LOAD}; wait, or pass --allow-busy")
    began = time.perf_counter()

    def done(name: str, result: dict) -> None:
        shown = {k: v for k, v in result.items() if k in ("accuracy", "knn", "weight_steps", "chosen_op_steps")}
        print(f"[{(time.perf_counter() - began) / 60:5.1f} min] {name}: {shown if name != 'probe' else result}", flush=True)

    with tempfile.TemporaryDirectory(prefix="sswp_diagnose_") as tmp:
        try:
            results = bench.run_tasks(plan(args, Path(tmp)), args.workers, args.threads, done)
        except (bench.NASFrameError, bench.IncompleteRun) as error:
            raise SystemExit(f"FAILED, no results written: {error}") from None
    accuracy = lambda group, variant: [results[f"{group}/{variant}/{s}"]["accuracy"] for s in args.seeds]  # noqa: E731
    low = {v: bench.spread(accuracy("low_lr", v)) for v in "abc"}
    payload = {
        "config": vars(args), "load_average_start": list(load), "cpu_count": os.cpu_count(),
        "search": {k: v for k, v in results["search"].items() if k != "export"},
        "pretraining": {name: {k: v for k, v in results[name].items() if k != "export"}
                        for name in ("pretraining", "pretraining_short", "pretraining_t")},
        "features": {k: v for k, v in results["probe"].items() if k not in ("wall_seconds", "cpu_seconds")},
        "finetune_low_lr": {"lr": args.low_lr, "accuracy": low,
                            "paired": {f"a_minus_{v}": bench.spread([a - x for a, x in zip(accuracy("low_lr", "a"),
                                                                                          accuracy("low_lr", v))])
                                       for v in "bc"},
                            "c_minus_b": bench.spread([c - b for c, b in zip(accuracy("low_lr", "c"), accuracy("low_lr", "b"))])},
        "finetune_temperature": {"temperature": args.temperature, "c": bench.spread(accuracy("temperature", "c"))},
        "wall_seconds": round(time.perf_counter() - began, 1), "load_average_end": list(os.getloadavg()),
    }
    bench.write_atomically(Path(args.output), payload)
    print(f"wrote {args.output} ({payload['wall_seconds'] / 60:.1f} min, load average {load[0]:.2f} at start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
