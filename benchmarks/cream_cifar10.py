"""Cream of the Crop vs SPOS on the partial CIFAR-10 of ../shared/data: a paired, powered comparison.

For every seed both searches train the same CIFAR-sized MBConv supernet from the same initial weights,
with the same data order, epochs, optimizer and FLOPs range; SPOS is the core ``SinglePathStrategy``,
Cream adds the prioritized board, the matching network and distillation. Both pick their final path
after re-measuring their board (Cream) or leaderboard (SPOS) on the same 1,024 training images.

Evaluation images: the 932 test images plus ``--held-out`` (1,000) training images carved out with a
fixed seed before the datamodule sees the data, so that neither supernet ever trains on them (nor
scores a board path on them). Then, per seed and for both supernets:

* the inherited accuracy of the *same* ``--paths`` random paths (uniform inside the FLOPs range, drawn
  per seed), each extracted with the supernet's weights and its BatchNorm statistics re-estimated on
  ``--recalibration-batches`` training batches (the supernet's running statistics mix every path);
* the final path's inherited accuracy against the median random path, on the same images;
* for the first seed, Kendall tau (and Spearman rho) of inherited accuracy against a short stand-alone
  training of the first ``--ranked`` random paths, and the final paths' stand-alone accuracy.

The comparison: per path, Cream's minus SPOS's inherited accuracy. Paths of one seed share both
supernets and their training runs, so their differences are correlated and not independent
replicates; the seed is the unit of replication. The interval is therefore a t-interval over the
per-seed mean differences (``scipy.stats.ttest_1samp``, seeds - 1 degrees of freedom), and its mean
is the mean over all path x seed pairs. The between-seed standard deviation is printed next to what
path and image sampling alone would give (the within-seed standard deviation / sqrt(paths)): when
the former dominates, more seeds, not more paths or images, narrow the interval. A half-width above
``--max-halfwidth`` (0.5 points) makes the script exit non-zero after writing its results: then a
missed target is no finding.

Targets: Cream - SPOS >= +1 point with the interval above 0; Cream's final path above the median
random path in at least 3 of 4 seeds (75%).

    python benchmarks/cream_cifar10.py           # defaults: 8 seeds x 8 epochs, ~24 min on a quiet 2-core CPU
    python benchmarks/cream_cifar10.py --seeds 0 1 --epochs 2 --paths 4 --ranked 3 --standalone-epochs 1 \\
        --limit-train 640 --allow-busy           # about a minute on a quiet machine: does it all run?
    python benchmarks/cream_cifar10.py --gpu     # the larger configuration, on CUDA when available

Prints per-seed lines and a summary and writes benchmarks/results/cream_cifar10.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer, seed_everything
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional import kendall_rank_corrcoef, spearman_corrcoef

from nasframe import NASModule
from nasframe.buffers import recalibrate_batchnorm
from nasframe.data import ImageArrayDataset, NpzDataModule
from nasframe.objectives import CrossEntropy, Distillation
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.strategies import SinglePathStrategy
from nasframe_cream import CreamStrategy

ROOT = Path(__file__).resolve().parents[1]
SPACE = dict(stage_channels=(16, 24, 40, 48, 96), stage_strides=(2, 2, 2, 1, 1), stem_channels=16, stem_stride=2,
             first_channels=16, head_channels=128, final_channels=256, kernels=(3, 5, 7), expansions=(4, 6),
             allow_skip=True, num_classes=10, in_channels=3, image_size=32)
HOLD_OUT_SEED = 20_201_206  # fixed: every seed and both arms are evaluated on the same held-out images
BUSY_LOAD = 1.5
# Five more blocks, almost four times the epochs (the FLOPs range moved to cover the same ~76% of
# paths), more seeds, and a stand-alone ranking worth the name. benchmarks/gpu_oneshot.py runs this.
GPU_PRESET = dict(epochs=30, stage_layers=[2, 3, 3, 3, 2], flops_range=[4.3e6, 5.8e6], seeds=list(range(12)),
                  workers=4, ranked=20, standalone_epochs=10)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    preset = " ".join(f"--{k.replace('_', '-')} " + " ".join(f"{v:g}" for v in (value if isinstance(value, list) else [value]))
                      for k, value in GPU_PRESET.items())
    parser.add_argument("--gpu", action="store_true",
                        help=f"the larger configuration for a GPU: {preset}; flags given explicitly override it. "
                             "Searches, evaluation and stand-alone training run on CUDA whenever it is available (pass --allow-busy "
                             "where other work loads the machine)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--held-out", type=int, default=1000,
                        help="training images never trained on, evaluated with the test images")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)),
                        help="one supernet pair per seed (initial weights, data order, random paths)")
    parser.add_argument("--epochs", type=int, default=8, help="supernet epochs, the same for both searches")
    parser.add_argument("--stage-layers", type=int, nargs=5, default=[1, 2, 2, 2, 1], help="blocks per searchable stage")
    parser.add_argument("--weight-sharing", choices=("independent", "nested"), default="independent",
                        help="supernet candidates: 'independent' (the paper's) or 'nested' slices of the largest")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--flops-range", type=float, nargs=2, default=[2.5e6, 3.6e6])
    parser.add_argument("--paths", type=int, default=20, help="random paths evaluated on both supernets, per seed")
    parser.add_argument("--recalibration-batches", type=int, default=8,
                        help="training batches re-estimating each evaluated path's BatchNorm statistics (0: keep the supernet's)")
    parser.add_argument("--ranked", type=int, default=10, help="of the first seed's paths, those trained stand-alone for Kendall tau")
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument("--no-final-standalone", action="store_true", help="skip stand-alone training of the first seed's final paths")
    parser.add_argument("--limit-train", type=int, default=0, help="train on only N of the remaining training images (0: all)")
    parser.add_argument("--board-size", type=int, default=10, help="Cream's board, and SPOS's leaderboard")
    parser.add_argument("--warmup-epochs", type=float, default=1.0, help="Cream: epochs before paths enter the board")
    parser.add_argument("--meta-every", type=int, default=10, help="Cream: steps between meta updates")
    parser.add_argument("--meta-lr", type=float, default=0.02, help="Cream: Adam learning rate of the matching network")
    parser.add_argument("--margin", type=float, default=3.0, help="Cream: board entry margin (accuracy points)")
    parser.add_argument("--kd-temperature", type=float, default=1.0, help="Cream: distillation temperature")
    parser.add_argument("--board-scoring", choices=CreamStrategy.BOARD_SCORING, default="fixed",
                        help="Cream: 'batch' (the paper's: the training batch) or 'fixed' (a fixed set of training images)")
    parser.add_argument("--score-images", type=int, default=256, help="Cream: size of the fixed scoring set")
    parser.add_argument("--rescore-epochs", type=float, default=1.0,
                        help="Cream: epochs between re-measurements of the board on the scoring set (0: never)")
    parser.add_argument("--final-rescore", action=argparse.BooleanOptionalAction, default=True,
                        help="both: re-measure the board (leaderboard) on training images before picking the final path")
    parser.add_argument("--final-score-images", type=int, default=1024, help="both: images of the final re-measurement")
    parser.add_argument("--spos-from", default=None, metavar="JSON",
                        help="reuse the SPOS arms of an earlier run's JSON instead of training them again (its SPOS "
                             "settings, seeds' random paths and evaluation images must equal this run's, else it stops): "
                             "a Cream-only setting (warm-up, meta lr, KD temperature, ...) then costs only the Cream searches")
    parser.add_argument("--save-supernets", default=None, help="directory to save the trained supernets in")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker")
    parser.add_argument("--workers", type=int, default=2, help="searches and stand-alone trainings run in this many processes")
    parser.add_argument("--max-halfwidth", type=float, default=0.5,
                        help="exit non-zero when the 95%% interval of Cream - SPOS is wider than +- this (points)")
    parser.add_argument("--allow-busy", action="store_true",
                        help=f"start even when the 1-minute load average is >= {BUSY_LOAD} (timings are then not comparable)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "cream_cifar10.json"))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--gpu", action="store_true")
    if pre.parse_known_args(argv)[0].gpu:
        parser.set_defaults(**GPU_PRESET)
    return parser.parse_args(argv)


# ---- data -------------------------------------------------------------------------------------------
def held_out_indices(train_size: int, count: int) -> np.ndarray:
    return np.sort(np.random.default_rng(HOLD_OUT_SEED).permutation(train_size)[:count])


class TrainingPart(NpzDataModule):
    """The ``.npz`` without its held-out training images: what the supernets (and stand-alone
    networks) train on, what the final re-scoring and BatchNorm recalibration read."""

    def __init__(self, path: str, held_out: int, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.held_out = held_out

    def load_arrays(self):
        x_train, y_train, x_test, y_test = super().load_arrays()
        keep = np.ones(len(x_train), dtype=bool)
        keep[held_out_indices(len(x_train), self.held_out)] = False
        return x_train[keep], y_train[keep], x_test, y_test


def training_data(args: argparse.Namespace, seed: int) -> TrainingPart:
    data = TrainingPart(args.data, args.held_out, batch_size=args.batch_size, limit_train=args.limit_train, seed=seed)
    data.setup()
    return data


def evaluation_images(args: argparse.Namespace) -> ImageArrayDataset:
    """The test images followed by the held-out training images, normalised as the training images are."""
    full = NpzDataModule(args.data)
    x_train, y_train, x_test, y_test = full.checked_arrays()
    held = held_out_indices(len(x_train), args.held_out)
    return ImageArrayDataset(np.concatenate([x_test, x_train[held]]), np.concatenate([y_test, y_train[held]]),
                             full.mean, full.std)


def make_space(args: argparse.Namespace) -> MBConvSpace:
    return MBConvSpace(**SPACE, stage_layers=tuple(args.stage_layers), weight_sharing=args.weight_sharing)


def random_paths(space: MBConvSpace, count: int, flops_range: tuple[float, float], seed: int) -> list[Architecture]:
    generator = torch.Generator().manual_seed(seed + 1234)
    paths: list[Architecture] = []
    for _ in range(1000 * count):
        arch = space.sample(generator)
        if flops_range[0] <= space.flops(arch) <= flops_range[1] and arch not in paths:
            paths.append(arch)
            if len(paths) == count:
                return paths
    raise SystemExit(f"--flops-range {flops_range} holds fewer than {count} distinct paths of this space; widen it")


# ---- one search and its evaluation ----------------------------------------------------------------
class StepTimer(Callback):
    """Process CPU seconds per training step: on a loaded machine a better predictor of the quiet
    machine's wall time than the wall time itself (one thread per worker)."""

    def __init__(self) -> None:
        self.cpu: list[float] = []

    def on_train_batch_start(self, *args: Any) -> None:
        self._start = time.process_time()

    def on_train_batch_end(self, *args: Any) -> None:
        self.cpu.append(time.process_time() - self._start)


def search(kind: str, args: argparse.Namespace, seed: int, data: TrainingPart, workdir: Path) -> tuple[NASModule, dict[str, Any]]:
    space = make_space(args)
    steps_per_epoch = len(data.train_dataloader())
    rescoring = dict(final_rescore=args.final_rescore, score_images=args.score_images,
                     final_score_images=args.final_score_images)
    if kind == "spos":  # with the final re-scoring Cream gets, so that the final paths compare fairly
        strategy = SinglePathStrategy(seed=seed, flops_range=tuple(args.flops_range), leaderboard_size=args.board_size,
                                      **rescoring)
        objectives = [CrossEntropy()]
    else:
        strategy = CreamStrategy(seed=seed, flops_range=tuple(args.flops_range), board_size=args.board_size, margin=args.margin,
                                 warmup_steps=int(args.warmup_epochs * steps_per_epoch), matching_images=8,
                                 meta_every=args.meta_every, meta_lr=args.meta_lr, board_scoring=args.board_scoring,
                                 rescore_every=int(args.rescore_epochs * steps_per_epoch), leaderboard_size=args.board_size,
                                 **rescoring)
        objectives = [CrossEntropy(), Distillation(temperature=args.kd_temperature)]
        _record_cream(strategy)
    seed_everything(seed, verbose=False)  # identical initial supernet weights for both searches
    nas = NASModule(space, strategy, objectives=objectives, export_dir=str(workdir / "export"), overwrite_export=True,
                    optimizer=lambda p: torch.optim.SGD(p, lr=args.lr, momentum=0.9, weight_decay=4e-5),
                    lr_scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=args.epochs))
    timer = StepTimer()
    trainer = Trainer(max_epochs=args.epochs, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                      callbacks=[timer], default_root_dir=str(workdir))
    start, start_cpu = time.perf_counter(), time.process_time()
    trainer.fit(nas, datamodule=data)
    warmup = int(args.warmup_epochs * steps_per_epoch) if kind == "cream" else len(timer.cpu)
    timing = {"search_seconds": round(time.perf_counter() - start, 1), "search_cpu_seconds": round(time.process_time() - start_cpu, 1),
              "steps": nas.global_step, "steps_per_epoch": steps_per_epoch,
              "cpu_per_step": _mean(timer.cpu[:warmup]), "cpu_per_step_after_warmup": _mean(timer.cpu[warmup:]),
              "final_rescore": strategy.final_rescore}
    return nas, timing


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _record_cream(strategy: CreamStrategy) -> None:
    """Diagnostics: how often each board rule fired, the rho values, how often the teacher was the board's best."""
    stats_ = strategy.benchmark_stats = {"rules": {}, "rho": [], "teacher_rank": [], "steps_with_teacher": 0}
    consider, before_loss = strategy.board.consider, strategy.before_loss

    def counted_consider(entry):
        rule = consider(entry)
        stats_["rules"][str(rule)] = stats_["rules"].get(str(rule), 0) + 1
        return rule

    def recorded_before_loss(nas, step):
        before_loss(nas, step)
        if "distillation" in step.term_weights:
            stats_["steps_with_teacher"] += 1
            stats_["rho"].append(2 * float(step.term_weights["distillation"]))
            ranks = [i for i, e in enumerate(strategy.board.entries) if e.architecture == step.extras["teacher_architecture"]]
            stats_["teacher_rank"].append(ranks[0] if ranks else -1)

    strategy.board.consider, strategy.before_loss = counted_consider, recorded_before_loss


def _cream_summary(stats_: dict[str, Any]) -> dict[str, Any]:
    rho, ranks = stats_["rho"], stats_["teacher_rank"]
    return {"board_rules": stats_["rules"], "steps_with_teacher": stats_["steps_with_teacher"],
            "rho_mean": statistics.mean(rho) if rho else None, "rho_min": min(rho) if rho else None,
            "rho_max": max(rho) if rho else None,
            "teacher_is_board_best": sum(r == 0 for r in ranks) / len(ranks) if ranks else None}


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def accuracy(network: nn.Module, images: DataLoader) -> float:
    network.eval()
    where = next(network.parameters()).device
    correct = total = 0
    for x, y in images:
        correct += int((network(x.to(where)).argmax(1) == y.to(where)).sum())
        total += len(y)
    return 100.0 * correct / total


def inherited_accuracy(space: MBConvSpace, supernet: nn.Module, architecture: Architecture,
                       calibration: list[torch.Tensor], images: DataLoader) -> float:
    network = space.extract(supernet, architecture)
    if calibration:
        recalibrate_batchnorm(network, calibration)
    return accuracy(network, images)


def start_worker(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    # Lightning's and nasframe's per-search banners, times 2 x seeds, would bury the results; they go
    # through the logger of whichever Lightning package was imported last (lightly brings the other)
    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run_arm(args: argparse.Namespace, seed: int, kind: str, paths: list[str]) -> dict[str, Any]:
    """One search (``kind`` on ``seed``) and the inherited accuracy of ``paths`` and of its final path."""
    start_worker(args)
    start, start_cpu = time.perf_counter(), time.process_time()
    data = training_data(args, seed)
    space = make_space(args)
    with tempfile.TemporaryDirectory() as tmp:
        nas, timing = search(kind, args, seed, data, Path(tmp))
    supernet = nas.supernet.to(device())
    if args.save_supernets:
        Path(args.save_supernets).mkdir(parents=True, exist_ok=True)
        torch.save({"supernet": supernet.state_dict(), "search_state": nas.strategy.search_state()},
                   Path(args.save_supernets) / f"{kind}_seed{seed}.pt")
    # the same batches for every path of both arms: the first training images, unaugmented
    calibration = [x for _, (x, _) in zip(range(args.recalibration_batches), data.calibration_dataloader())]
    images = DataLoader(evaluation_images(args), batch_size=256)
    evaluated_start = time.process_time()
    inherited = [inherited_accuracy(space, supernet, space.parse(path), calibration, images) for path in paths]
    final = nas.final_architecture
    final_inherited = inherited_accuracy(space, supernet, final, calibration, images)
    median = statistics.median(inherited)
    run = {"inherited": inherited, "mean_inherited": statistics.fmean(inherited), "median_inherited": median,
           "final_architecture": space.format(final), "final_flops": space.flops(final), "final_inherited": final_inherited,
           "final_minus_median": final_inherited - median, "final_above_median": final_inherited > median, **timing,
           "cpu_per_evaluated_path": round((time.process_time() - evaluated_start) / (len(paths) + 1), 3)}
    if kind == "cream":
        run["board"] = [{"architecture": space.format(e.architecture), "accuracy": e.accuracy, "flops": e.flops}
                        for e in nas.strategy.board.entries]
        run["diagnostics"] = _cream_summary(nas.strategy.benchmark_stats)
    run.update(seconds=round(time.perf_counter() - start, 1), cpu_seconds=round(time.process_time() - start_cpu, 1))
    print(f"seed {seed} {kind:5}: {timing['steps']} steps in {timing['search_seconds']:.0f}s, mean inherited "
          f"{run['mean_inherited']:.2f}%, final {run['final_architecture']} {final_inherited:.2f}% "
          f"(median random {median:.2f}%)", flush=True)
    return run


def run_standalone(args: argparse.Namespace, seed: int, path: str) -> dict[str, Any]:
    """``path`` trained from scratch for ``--standalone-epochs`` on the training part, evaluated on the evaluation images."""
    start_worker(args)
    start, start_cpu = time.perf_counter(), time.process_time()
    data, space = training_data(args, seed), make_space(args)
    torch.manual_seed(seed)
    where = device()
    network = space.build(space.parse(path)).to(where)
    loader = data.train_dataloader()
    optimizer = torch.optim.SGD(network.parameters(), lr=args.lr, momentum=0.9, weight_decay=4e-5, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.standalone_epochs * len(loader),
                                                    pct_start=0.15)
    network.train()
    for epoch in range(args.standalone_epochs):
        loader.sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(network(x.to(where)), y.to(where)).backward()
            optimizer.step()
            scheduler.step()
    result = accuracy(network, DataLoader(evaluation_images(args), batch_size=256))
    steps = args.standalone_epochs * len(loader)
    return {"accuracy": result, "seconds": round(time.perf_counter() - start, 1),
            "cpu_per_step": round((time.process_time() - start_cpu) / max(1, steps), 4)}


# ---- the comparison ------------------------------------------------------------------------------------
def paired_comparison(spos: list[list[float]], cream: list[list[float]], max_halfwidth: float) -> dict[str, Any]:
    """Cream - SPOS over path x seed pairs with a t-interval over the per-seed mean differences (see the docstring)."""
    differences = torch.tensor(cream, dtype=torch.float64) - torch.tensor(spos, dtype=torch.float64)  # (seeds, paths)
    per_seed = differences.mean(1)
    result: dict[str, Any] = {
        "method": "t-interval over per-seed mean differences (seeds - 1 degrees of freedom): paths of one seed share "
                  "both supernets, so the seed is the unit of replication",
        "per_seed_difference": per_seed.tolist(), "mean_difference": float(differences.mean()),
        "within_seed_path_std": float(differences.var(1).mean().sqrt()) if differences.shape[1] > 1 else None,
        "between_seed_std": None, "ci95": None, "halfwidth": None, "p_value": None}
    if len(per_seed) > 1:
        test = stats.ttest_1samp(per_seed.numpy(), 0.0)
        interval = test.confidence_interval(0.95)
        spread = float(per_seed.std())
        result.update(between_seed_std=spread, ci95=[float(interval.low), float(interval.high)],
                      halfwidth=float(interval.high - interval.low) / 2, p_value=float(test.pvalue),
                      seeds_needed=seeds_needed(spread, max_halfwidth))
    result["powered"] = result["halfwidth"] is not None and result["halfwidth"] <= max_halfwidth
    return result


def seeds_needed(spread: float, max_halfwidth: float, most: int = 1000) -> int | None:
    """The fewest seeds whose t-interval would be no wider than +-``max_halfwidth`` at this between-seed spread."""
    for n in range(2, most + 1):
        if stats.t.ppf(0.975, n - 1) * spread / math.sqrt(n) <= max_halfwidth:
            return n
    return None


def summarize(args: argparse.Namespace, arms: dict[int, dict[str, dict[str, Any]]], standalone: list[float],
              final_standalone: dict[str, float]) -> dict[str, Any]:
    seeds = args.seeds
    comparison = paired_comparison([arms[s]["spos"]["inherited"] for s in seeds],
                                   [arms[s]["cream"]["inherited"] for s in seeds], args.max_halfwidth)
    above = {kind: sum(arms[s][kind]["final_above_median"] for s in seeds) for kind in ("spos", "cream")}
    needed = math.ceil(0.75 * len(seeds))
    ranking = {"seed": seeds[0], "paths": len(standalone), "standalone_epochs": args.standalone_epochs,
               "standalone": standalone, "final_standalone": final_standalone}
    target = torch.tensor(standalone, dtype=torch.float64)
    for kind in ("spos", "cream"):
        preds = torch.tensor(arms[seeds[0]][kind]["inherited"][: len(standalone)], dtype=torch.float64)
        ranking[f"{kind}_kendall_tau"] = _finite(kendall_rank_corrcoef(preds, target)) if len(standalone) > 1 else None
        ranking[f"{kind}_spearman_rho"] = _finite(spearman_corrcoef(preds, target)) if len(standalone) > 1 else None
    interval = comparison["ci95"]
    targets = {
        "cream_minus_spos_at_least_1_with_ci_above_0": comparison["mean_difference"] >= 1.0 and interval is not None
        and interval[0] > 0,
        "cream_final_above_median_in_75pct_of_seeds": above["cream"] >= needed}
    return {"comparison": comparison, "final_above_median": {**above, "needed": needed, "seeds": len(seeds)},
            "ranking": ranking, "targets": targets,
            "spos_mean_inherited": statistics.fmean(arms[s]["spos"]["mean_inherited"] for s in seeds),
            "cream_mean_inherited": statistics.fmean(arms[s]["cream"]["mean_inherited"] for s in seeds)}


def _finite(value: torch.Tensor) -> float | None:
    """A correlation, or None where ties leave it undefined (JSON has no NaN)."""
    return float(value) if bool(torch.isfinite(value)) else None


def report(args: argparse.Namespace, arms: dict[int, dict[str, dict[str, Any]]], summary: dict[str, Any], images: int) -> None:
    print(f"\nCream vs SPOS, {args.weight_sharing} supernet, {args.epochs} epochs, {args.paths} paths per seed on {images:,} "
          f"images (test + held-out)")
    print(f"{'':4} {'mean inherited accuracy (%)':^23}   {'final - median random':^21}")
    print(f"{'seed':>4} {'SPOS':>7} {'Cream':>7} {'C - S':>7}   {'SPOS':>10} {'Cream':>10}")
    for seed, difference in zip(args.seeds, summary["comparison"]["per_seed_difference"]):
        spos, cream = arms[seed]["spos"], arms[seed]["cream"]
        print(f"{seed:>4} {spos['mean_inherited']:7.2f} {cream['mean_inherited']:7.2f} {difference:+7.2f}   "
              f"{spos['final_minus_median']:+10.2f} {cream['final_minus_median']:+10.2f}")
    c = summary["comparison"]
    if c["ci95"] is not None:
        noise = c["within_seed_path_std"] / math.sqrt(args.paths) if c["within_seed_path_std"] is not None else float("nan")
        print(f"Cream - SPOS: {c['mean_difference']:+.2f} points, 95% CI [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}] "
              f"(t-interval over {len(args.seeds)} per-seed means), p = {c['p_value']:.3f}; between-seed std "
              f"{c['between_seed_std']:.2f} (path and image sampling alone: ~{noise:.2f})")
        verdict = "holds" if c["powered"] else "DOES NOT HOLD"
        needed = f"; at this spread {c['seeds_needed']} seeds would be needed" if not c["powered"] and c["seeds_needed"] else ""
        print(f"half-width {c['halfwidth']:.2f} <= {args.max_halfwidth}: {verdict}{needed}")
    else:
        print(f"Cream - SPOS: {c['mean_difference']:+.2f} points; no interval from one seed")
    r = summary["ranking"]
    if len(r["standalone"]) > 1:
        tau = {kind: "undefined" if r[f"{kind}_kendall_tau"] is None else f"{r[f'{kind}_kendall_tau']:+.3f}" for kind in ("spos", "cream")}
        print(f"Kendall tau vs {r['standalone_epochs']}-epoch stand-alone (seed {r['seed']}, {r['paths']} paths, median "
              f"{statistics.median(r['standalone']):.2f}%): SPOS {tau['spos']}, Cream {tau['cream']}")
    if r["final_standalone"]:
        print("final paths stand-alone (seed {}): {}".format(
            r["seed"], ", ".join(f"{k} {v:.2f}%" for k, v in r["final_standalone"].items())))
    above, t = summary["final_above_median"], summary["targets"]
    met = lambda ok: "met" if ok else "missed"  # noqa: E731
    print(f"target Cream - SPOS >= +1 with the CI above 0: {met(t['cream_minus_spos_at_least_1_with_ci_above_0'])}")
    print(f"target Cream's final path above the median random path in >= {above['needed']}/{above['seeds']} seeds: "
          f"{above['cream']}/{above['seeds']} {met(t['cream_final_above_median_in_75pct_of_seeds'])} "
          f"(SPOS: {above['spos']}/{above['seeds']})")


# ---- driver ----------------------------------------------------------------------------------------------
# what the SPOS arm depends on: an earlier run's SPOS results stand in for this run's only when these agree
SPOS_SETTINGS = ("data", "held_out", "epochs", "stage_layers", "weight_sharing", "batch_size", "lr", "flops_range", "paths",
                 "recalibration_batches", "limit_train", "board_size", "final_rescore", "final_score_images", "threads")


def reused_spos_arms(args: argparse.Namespace, paths: dict[int, list[str]]) -> dict[int, dict[str, Any]]:
    """The SPOS arms of ``--spos-from`` for this run's seeds, after checking that they measured the same thing."""
    try:
        earlier = json.loads(Path(args.spos_from).read_text())
        config, per_seed, earlier_paths = earlier["config"], earlier["per_seed"], earlier["random_paths"]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"--spos-from {args.spos_from!r}: not a cream_cifar10.py result ({error})") from None
    differ = [f"{k}: {config.get(k)!r} there, {getattr(args, k)!r} here" for k in SPOS_SETTINGS
              if json.dumps(config.get(k)) != json.dumps(getattr(args, k))]
    if earlier.get("hold_out_seed") != HOLD_OUT_SEED:
        differ.append("its held-out images (hold-out seed)")
    missing = [s for s in args.seeds if str(s) not in per_seed or "spos" not in per_seed[str(s)]]
    if missing:
        differ.append(f"no SPOS arm for seeds {missing}")
    differ += [f"seed {s}'s random paths" for s in args.seeds if s not in missing and earlier_paths.get(str(s)) != paths[s]]
    if differ:
        raise SystemExit(f"--spos-from {args.spos_from!r} measured something else; SPOS must run again. Differences: "
                         + "; ".join(differ))
    return {s: per_seed[str(s)]["spos"] for s in args.seeds}


def run_all(args: argparse.Namespace, paths: dict[int, list[str]], ranked: list[str]) -> dict[str, Any]:
    """Every search and stand-alone training, in ``--workers`` processes.

    Longest tasks first (Cream's searches, then SPOS's, then stand-alone trainings): the pool takes
    them in order, so the workers finish close together. The first seed's final paths are trained
    stand-alone once its searches have picked them."""
    first = args.seeds[0]
    done_tasks: dict[str, Any] = {"arms": {seed: {} for seed in args.seeds}, "standalone": [None] * len(ranked),
                                  "final_standalone": {}, "standalone_cpu_per_step": []}
    kinds = ("cream", "spos")
    if args.spos_from:
        for seed, arm in reused_spos_arms(args, paths).items():
            done_tasks["arms"][seed]["spos"] = {**arm, "reused_from": args.spos_from}
        kinds = ("cream",)
        if not args.no_final_standalone:
            raise SystemExit("--spos-from: pass --no-final-standalone (the reused SPOS final path is not trained again)")
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(run_arm, args, seed, kind, paths[seed]): ("arm", seed, kind)
                   for kind in kinds for seed in args.seeds}
        pending.update({pool.submit(run_standalone, args, first, path): ("ranked", i, path) for i, path in enumerate(ranked)})
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    what, key, detail = pending.pop(future)
                    result = future.result()
                    if what == "arm":
                        done_tasks["arms"][key][detail] = result
                        if key == first and not args.no_final_standalone:
                            final = pool.submit(run_standalone, args, first, result["final_architecture"])
                            pending[final] = ("final", key, detail)
                        continue
                    done_tasks["standalone_cpu_per_step"].append(result["cpu_per_step"])
                    if what == "ranked":
                        done_tasks["standalone"][key] = result["accuracy"]
                    else:
                        done_tasks["final_standalone"][detail] = result["accuracy"]
        except BaseException:
            pool.shutdown(cancel_futures=True)  # one failed task fails the run: do not wait for the queue
            raise
    return done_tasks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()[0]
    if load >= BUSY_LOAD and not args.allow_busy:
        raise SystemExit(f"1-minute load average {load:.2f} >= {BUSY_LOAD}: the timings (and the 30-minute budget) assume "
                         "a quiet machine; wait, or pass --allow-busy")
    if args.threads * args.workers > (os.cpu_count() or 1):
        raise SystemExit(f"--threads x --workers: at most {os.cpu_count()} (the CPU cores)")
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit("--seeds must be distinct")
    begin = time.perf_counter()
    space = make_space(args)
    paths = {seed: [space.format(a) for a in random_paths(space, args.paths, tuple(args.flops_range), seed)] for seed in args.seeds}
    ranked = paths[args.seeds[0]][: args.ranked]
    done = run_all(args, paths, ranked)
    arms = done["arms"]
    images = len(evaluation_images(args))
    summary = summarize(args, arms, done["standalone"], done["final_standalone"])
    results = {"config": vars(args), "space": {**SPACE, "stage_layers": args.stage_layers}, "load_average_start": load,
               "load_average_end": os.getloadavg()[0], "cpu_count": os.cpu_count(), "device": str(device()),
               "evaluation_images": images, "hold_out_seed": HOLD_OUT_SEED, "random_paths": paths,
               "ranked_paths": ranked, "per_seed": {str(s): arms[s] for s in args.seeds}, **summary,
               "standalone_cpu_per_step": _mean(done["standalone_cpu_per_step"]),
               "wall_seconds": round(time.perf_counter() - begin, 1)}
    report(args, arms, summary, images)
    print(f"total {results['wall_seconds']:.0f}s (load average {load:.2f} at start, {results['load_average_end']:.2f} at end)")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    tmp.replace(output)
    print(f"wrote {output}")
    halfwidth = summary["comparison"]["halfwidth"]
    if not summary["comparison"]["powered"]:
        shown = "undefined (one seed)" if halfwidth is None else f"{halfwidth:.2f}"
        print(f"FAILED: the 95% interval's half-width {shown} exceeds --max-halfwidth {args.max_halfwidth}: "
              "not powered, a missed target is no finding", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
