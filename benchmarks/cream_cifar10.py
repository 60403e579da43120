"""Cream of the Crop vs SPOS alone on the partial CIFAR-10 of ../shared/data, same supernet budget.

Both searches train the same CIFAR-sized MBConv supernet (same initial weights, data order, epochs,
optimizer and FLOPs range); SPOS is the core ``SinglePathStrategy``, Cream adds the prioritized
board, the matching network and distillation. Then, for each trained supernet:

* mean test accuracy of ``--paths`` random paths (uniform inside the FLOPs range, the same paths for
  both) with inherited weights (BatchNorm statistics re-estimated on a few training batches per path,
  as one-shot methods do, since the supernet's running statistics mix all paths);
* the final path (SPOS: best training-batch path; Cream: best board path): its inherited accuracy,
  FLOPs, and whether it beats the median random path; optionally its short stand-alone accuracy;
* Kendall tau (and Spearman rho) between inherited accuracy and a short stand-alone training from
  scratch of the first ``--ranked`` random paths.

Cream's defaults here: the board measured on a fixed set of 256 training images and re-measured once an
epoch, the final path picked after re-measuring the board on 1024 training images, and a matching
network meta-updated every 10 steps at learning rate 0.02 (a 720-step search needs that to move rho
at all). ``--board-scoring batch --rescore-epochs 0 --no-final-rescore --meta-every 20 --meta-lr 1e-3``
gives the paper's rules (the training batch decides) with the previous defaults.

    python benchmarks/cream_cifar10.py                       # defaults: < 30 min on 2 shared CPU cores
    python benchmarks/cream_cifar10.py --epochs 1 --paths 4 --ranked 3 --standalone-epochs 1 --limit-train 512
    python benchmarks/cream_cifar10.py --seeds 0 1 2 3 --workers 2   # Cream - SPOS over seeds (~17 min)

Prints a table and writes benchmarks/results/cream_cifar10.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer, seed_everything
from torch import nn
from torchmetrics.functional import kendall_rank_corrcoef, spearman_corrcoef

from nasframe import NASModule
from nasframe.data import NpzDataModule
from nasframe.objectives import CrossEntropy, Distillation
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.strategies import SinglePathStrategy
from nasframe_cream import CreamStrategy

ROOT = Path(__file__).resolve().parents[1]
SPACE = dict(stage_channels=(16, 24, 40, 48, 96), stage_layers=(1, 2, 2, 2, 1), stage_strides=(2, 2, 2, 1, 1),
             stem_channels=16, stem_stride=2, first_channels=16, head_channels=128, final_channels=256,
             kernels=(3, 5, 7), expansions=(4, 6), allow_skip=True, num_classes=10, in_channels=3, image_size=32)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--epochs", type=int, default=10, help="supernet epochs, the same for both searches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--flops-range", type=float, nargs=2, default=(2.5e6, 3.6e6))
    parser.add_argument("--paths", type=int, default=20, help="random paths scored with inherited weights")
    parser.add_argument("--ranked", type=int, default=10, help="of those, paths trained stand-alone for Kendall tau")
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument("--no-final-standalone", action="store_true", help="skip stand-alone training of the final paths")
    parser.add_argument("--recalibration-batches", type=int, default=8)
    parser.add_argument("--limit-train", type=int, default=0, help="use only N training images (0: all)")
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="Cream: epochs before paths enter the board")
    parser.add_argument("--meta-every", type=int, default=10, help="Cream: steps between meta updates")
    parser.add_argument("--meta-lr", type=float, default=0.02, help="Cream: Adam learning rate of the matching network")
    parser.add_argument("--margin", type=float, default=3.0, help="Cream: board entry margin (batch accuracy points)")
    parser.add_argument("--board-scoring", choices=CreamStrategy.BOARD_SCORING, default="fixed",
                        help="Cream: 'batch' (the paper's: the training batch) or 'fixed' (a fixed set of training images)")
    parser.add_argument("--score-images", type=int, default=256, help="Cream: size of the fixed scoring set")
    parser.add_argument("--rescore-epochs", type=float, default=1.0,
                        help="Cream: epochs between re-measurements of the board on the scoring set (0: never)")
    parser.add_argument("--final-rescore", action=argparse.BooleanOptionalAction, default=True,
                        help="Cream: re-measure the board paths on the scoring set before picking the final path")
    parser.add_argument("--final-score-images", type=int, default=1024, help="Cream: images of the final re-measurement")
    parser.add_argument("--save-supernets", default=None, help="directory to save the trained supernets in")
    parser.add_argument("--weight-sharing", choices=("independent", "nested"), default="independent",
                        help="supernet candidates: 'independent' (the paper's) or 'nested' slices of the largest")
    parser.add_argument("--kd-temperature", type=float, default=1.0)
    parser.add_argument("--kinds", nargs="+", choices=("spos", "cream"), default=["spos", "cream"],
                        help="searches to run (targets need both)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (1 is fastest on a loaded shared machine; at most 2 here)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="run every seed (overrides --seed) and summarise Cream - SPOS over them; stand-alone "
                             "training (Kendall tau, final paths) runs for the first seed only")
    parser.add_argument("--workers", type=int, default=1, help="seeds run in parallel processes (--seeds; at most 2 here)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "cream_cifar10.json"))
    return parser.parse_args()


def make_data(args: argparse.Namespace) -> NpzDataModule:
    data = NpzDataModule(args.data, batch_size=args.batch_size, limit_train=args.limit_train, seed=args.seed)
    data.setup()
    return data


def search(kind: str, args: argparse.Namespace, data: NpzDataModule, workdir: Path) -> tuple[NASModule, float]:
    space = MBConvSpace(**SPACE, weight_sharing=args.weight_sharing)
    steps_per_epoch = len(data.train_dataloader())
    if kind == "spos":
        strategy = SinglePathStrategy(seed=args.seed, flops_range=tuple(args.flops_range))
        objectives = [CrossEntropy()]
    else:
        strategy = CreamStrategy(seed=args.seed, flops_range=tuple(args.flops_range), board_size=10, margin=args.margin,
                                 warmup_steps=int(args.warmup_epochs * steps_per_epoch), matching_images=8,
                                 meta_every=args.meta_every, meta_lr=args.meta_lr, board_scoring=args.board_scoring,
                                 score_images=args.score_images, rescore_every=int(args.rescore_epochs * steps_per_epoch),
                                 final_rescore=args.final_rescore, final_score_images=args.final_score_images)
        objectives = [CrossEntropy(), Distillation(temperature=args.kd_temperature)]
        _record_cream(strategy)
    seed_everything(args.seed, verbose=False)  # identical initial supernet weights for both searches
    nas = NASModule(space, strategy, objectives=objectives, export_dir=str(workdir / kind / "export"), overwrite_export=True,
                    optimizer=lambda p: torch.optim.SGD(p, lr=args.lr, momentum=0.9, weight_decay=4e-5),
                    lr_scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=args.epochs))
    trainer = Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                      default_root_dir=str(workdir / kind))
    start = time.perf_counter()
    trainer.fit(nas, datamodule=data)
    return nas, time.perf_counter() - start


def _record_cream(strategy: CreamStrategy) -> None:
    """Diagnostics: how often each board rule fired, the rho values, how often the teacher was the board's best."""
    stats = strategy.benchmark_stats = {"rules": {}, "rho": [], "teacher_rank": [], "steps_with_teacher": 0}
    consider, before_loss = strategy.board.consider, strategy.before_loss

    def counted_consider(entry):
        rule = consider(entry)
        stats["rules"][str(rule)] = stats["rules"].get(str(rule), 0) + 1
        return rule

    def recorded_before_loss(nas, step):
        before_loss(nas, step)
        if "distillation" in step.term_weights:
            stats["steps_with_teacher"] += 1
            stats["rho"].append(2 * float(step.term_weights["distillation"]))
            ranks = [i for i, e in enumerate(strategy.board.entries) if e.architecture == step.extras["teacher_architecture"]]
            stats["teacher_rank"].append(ranks[0] if ranks else -1)

    strategy.board.consider, strategy.before_loss = counted_consider, recorded_before_loss


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    rho, ranks = stats["rho"], stats["teacher_rank"]
    return {"board_rules": stats["rules"], "steps_with_teacher": stats["steps_with_teacher"],
            "rho_mean": statistics.mean(rho) if rho else None, "rho_min": min(rho) if rho else None,
            "rho_max": max(rho) if rho else None,
            "teacher_is_board_best": sum(r == 0 for r in ranks) / len(ranks) if ranks else None}


@torch.no_grad()
def test_accuracy(network: nn.Module, data: NpzDataModule) -> float:
    network.eval()
    correct = total = 0
    for x, y in data.val_dataloader():
        correct += int((network(x).argmax(1) == y).sum())
        total += len(y)
    return 100.0 * correct / total


@torch.no_grad()
def inherited_accuracy(space: MBConvSpace, supernet: nn.Module, architecture: Architecture, data: NpzDataModule,
                       batches: list[torch.Tensor]) -> float:
    network = space.extract(supernet, architecture)
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the recalibration batches
    network.train()
    for x in batches:
        network(x)
    return test_accuracy(network, data)


def standalone_accuracy(space: MBConvSpace, architecture: Architecture, data: NpzDataModule, epochs: int, lr: float,
                        seed: int) -> float:
    torch.manual_seed(seed)
    network = space.build(architecture)
    loader = data.train_dataloader()
    optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader), pct_start=0.15)
    network.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(network(x), y).backward()
            optimizer.step()
            scheduler.step()
    return test_accuracy(network, data)


def random_paths(space: MBConvSpace, count: int, flops_range: tuple[float, float], seed: int) -> list[Architecture]:
    generator = torch.Generator().manual_seed(seed + 1234)
    paths: list[Architecture] = []
    while len(paths) < count:
        arch = space.sample(generator)
        if flops_range[0] <= space.flops(arch) <= flops_range[1] and arch not in paths:
            paths.append(arch)
    return paths


def run_one_seed(args: argparse.Namespace) -> dict[str, Any]:
    """Both searches and every measurement for ``args.seed``; prints the table and returns the results."""
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    data = make_data(args)
    space = MBConvSpace(**SPACE, weight_sharing=args.weight_sharing)
    paths = random_paths(space, args.paths, tuple(args.flops_range), args.seed)
    recalibration = [x for _, (x, _) in zip(range(args.recalibration_batches), data.train_dataloader())]
    ranked = paths[: args.ranked]

    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items()}, "space": {k: list(v) if isinstance(v, tuple) else v
                                                                                         for k, v in SPACE.items()}}
    results["settings"]["flops_range"] = list(args.flops_range)
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            nas, seconds = search(kind, args, data, Path(tmp))
            supernet = nas.supernet.cpu()
            if args.save_supernets:
                Path(args.save_supernets).mkdir(parents=True, exist_ok=True)
                torch.save({"supernet": supernet.state_dict(), "search_state": nas.strategy.search_state()},
                           Path(args.save_supernets) / f"{kind}.pt")
            inherited = [inherited_accuracy(space, supernet, arch, data, recalibration) for arch in paths]
            final = nas.final_architecture
            final_inherited = inherited_accuracy(space, supernet, final, data, recalibration)
            run = {"search_seconds": round(seconds, 1), "seconds_per_step": round(seconds / max(1, nas.global_step), 3),
                   "steps": nas.global_step, "inherited": inherited,
                   "mean_inherited": statistics.mean(inherited), "std_inherited": statistics.pstdev(inherited),
                   "median_inherited": statistics.median(inherited), "final_architecture": space.format(final),
                   "final_flops": space.flops(final), "final_inherited": final_inherited,
                   "final_above_median": final_inherited > statistics.median(inherited)}
            if kind == "cream":
                run["board"] = [{"architecture": space.format(e.architecture), "batch_accuracy": e.accuracy, "flops": e.flops}
                                for e in nas.strategy.board.entries]
                run["diagnostics"] = _summary(nas.strategy.benchmark_stats)
                print(f"cream diagnostics: {run['diagnostics']}", flush=True)
            runs[kind] = run
            print(f"[{time.perf_counter() - begin:6.0f}s] {kind}: searched in {seconds:.0f}s, mean inherited "
                  f"{run['mean_inherited']:.2f}%, final {run['final_architecture']} {final_inherited:.2f}%", flush=True)

    standalone = [standalone_accuracy(space, arch, data, args.standalone_epochs, args.lr, args.seed) for arch in ranked]
    if ranked:
        print(f"[{time.perf_counter() - begin:6.0f}s] stand-alone of {len(ranked)} paths: {[round(a, 1) for a in standalone]}", flush=True)
    target = torch.tensor(standalone, dtype=torch.float64)
    for kind, run in runs.items():
        preds = torch.tensor(run["inherited"][: len(ranked)], dtype=torch.float64)
        run["kendall_tau"] = float(kendall_rank_corrcoef(preds, target)) if len(ranked) > 1 else None
        run["spearman_rho"] = float(spearman_corrcoef(preds, target)) if len(ranked) > 1 else None
        if not args.no_final_standalone:
            final = space.parse(run["final_architecture"])
            run["final_standalone"] = standalone_accuracy(space, final, data, args.standalone_epochs, args.lr, args.seed)
    results.update(runs=runs, random_paths=[space.format(a) for a in paths], standalone=standalone,
                   median_standalone=statistics.median(standalone) if standalone else None)
    spos, cream = runs.get("spos", {}), runs.get("cream", {})
    if spos and cream:
        results["targets"] = {
            "cream_mean_at_least_spos_plus_1": cream["mean_inherited"] >= spos["mean_inherited"] + 1.0,
            "cream_final_above_median_random": cream["final_above_median"],
        }
    results["total_seconds"] = round(time.perf_counter() - begin, 1)

    rows = [("search time (s)", "search_seconds", "{:.0f}"), ("seconds per supernet step", "seconds_per_step", "{:.3f}"),
            ("mean inherited acc, random paths (%)", "mean_inherited", "{:.2f}"),
            ("std inherited acc (%)", "std_inherited", "{:.2f}"), ("median inherited acc (%)", "median_inherited", "{:.2f}"),
            ("final path inherited acc (%)", "final_inherited", "{:.2f}"), ("final path FLOPs (M)", "final_flops", "{:.3f}"),
            ("final path above median random", "final_above_median", "{}"),
            ("final path stand-alone acc (%)", "final_standalone", "{:.2f}"),
            ("Kendall tau vs stand-alone", "kendall_tau", "{:.3f}"), ("Spearman rho vs stand-alone", "spearman_rho", "{:.3f}")]
    median = f" (median {results['median_standalone']:.2f}%)" if standalone else ""
    print(f"\nCream vs SPOS on {Path(args.data).name}, {args.weight_sharing} supernet: {args.epochs} epochs each, {len(paths)} random paths, "
          f"{len(ranked)} trained stand-alone for {args.standalone_epochs} epoch(s){median}")
    print(f"{'':40} {'SPOS':>12} {'Cream':>12}")
    for label, key, fmt in rows:
        cells = []
        for run in (spos, cream):
            value = run.get(key)
            value = value / 1e6 if key == "final_flops" and value is not None else value
            cells.append("-" if value is None else fmt.format(value))
        print(f"{label:40} {cells[0]:>12} {cells[1]:>12}")
    print(f"final paths: SPOS {spos.get('final_architecture', '-')} | Cream {cream.get('final_architecture', '-')}")
    if "targets" in results:
        print(f"targets: Cream mean >= SPOS + 1: {results['targets']['cream_mean_at_least_spos_plus_1']} "
              f"({cream['mean_inherited'] - spos['mean_inherited']:+.2f} points); Cream final above median random: "
              f"{results['targets']['cream_final_above_median_random']}; total {results['total_seconds']:.0f}s")
    else:
        print(f"total {results['total_seconds']:.0f}s")
    return results


def summarize_seeds(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Cream - SPOS over seeds: each seed trains both supernets from its own initial weights and data order."""
    differences = [r["runs"]["cream"]["mean_inherited"] - r["runs"]["spos"]["mean_inherited"] for r in per_seed]
    above = [r["runs"]["cream"]["final_above_median"] for r in per_seed]
    return {"seeds": [r["settings"]["seed"] for r in per_seed], "cream_minus_spos": differences,
            "mean_difference": statistics.mean(differences),
            "std_difference": statistics.stdev(differences) if len(differences) > 1 else None,
            "spos_mean_inherited": statistics.mean(r["runs"]["spos"]["mean_inherited"] for r in per_seed),
            "cream_mean_inherited": statistics.mean(r["runs"]["cream"]["mean_inherited"] for r in per_seed),
            "cream_final_above_median": sum(above), "targets": {
                "cream_mean_at_least_spos_plus_1": statistics.mean(differences) >= 1.0,
                "cream_final_above_median_random": sum(above) > len(above) / 2}}


def main() -> None:
    args = parse_args()
    if args.threads > 2 or args.workers * args.threads > 2:
        raise SystemExit("--threads x --workers: at most 2 (the machine is shared)")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if not args.seeds:
        results = run_one_seed(args)
    else:
        runs = []
        for i, seed in enumerate(args.seeds):
            extra = {} if i == 0 else {"ranked": 0, "no_final_standalone": True}
            runs.append(argparse.Namespace(**{**vars(args), "seed": seed, **extra}))
        begin = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            per_seed = pool.map(run_one_seed, runs, chunksize=1)
        results = {"per_seed": per_seed, "summary": summarize_seeds(per_seed),
                   "total_seconds": round(time.perf_counter() - begin, 1)}
        summary = results["summary"]
        spread = f" ± {summary['std_difference']:.2f} (std)" if summary["std_difference"] is not None else ""
        print(f"\nover seeds {summary['seeds']} ({args.weight_sharing} supernet): Cream - SPOS mean inherited "
              f"{summary['mean_difference']:+.2f}{spread}, per seed {[round(d, 2) for d in summary['cream_minus_spos']]}; "
              f"SPOS {summary['spos_mean_inherited']:.2f}%, Cream {summary['cream_mean_inherited']:.2f}%; Cream final path "
              f"above the median random path in {summary['cream_final_above_median']}/{len(per_seed)} seeds; "
              f"total {results['total_seconds']:.0f}s")
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
