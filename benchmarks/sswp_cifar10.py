"""SSWP-NAS on the partial CIFAR-10 of ../shared/data: do the weights of a label-free search beat random
initialisation and two-stage self-supervised pre-training when fine-tuned with few labels?

One label-free search (SimCLR, binary gates, warm-up -> search -> progressive pruning, the whole
schedule) exports the derived network with its concomitant weights. Then, for each fine-tuning seed
and label fraction, the same fine-tuning (epochs, batch size, optimizer, labelled images, data order)
of four starting points, tested on the 932 test images:

  (a) the searched architecture with the concomitant weights (the export of the search);
  (b) the same architecture from random initialisation;
  (c) the same architecture pre-trained with SimCLR from scratch (the paper's two-stage baseline):
      its path of a fresh supernet (the search's initial weights) trained with the search's objective,
      augmentations, optimizer, images and data order for as many weight steps as the search took;
  (d) a random architecture (one per seed) from random initialisation.

Pretrained starts get a fresh classifier (the search never trained one). A seed fixes the labelled
images, the data order, the augmentations and every random initialisation, so the four starts of a
seed are paired; the search and the pre-training run once (seed --search-seed). Reported per label
fraction: every accuracy, mean +- std over seeds, and the paired differences (a)-(b), (a)-(c), (a)-(d)
per seed with their mean and 95% t-interval (seeds - 1 degrees of freedom). Targets (first label
fraction, 10%): (a)-(b) >= 5 points on the mean with every seed positive; (a) >= (c) on the mean;
(b) >= 25% on the mean (the fine-tuning trains for real). Also: kNN accuracy (nasframe.evaluation:
10-fold kNN on the test images' features) of the searched network, of the same architecture at
initialisation and of the pre-trained one; the activation memory of a 2-path vs a 7-op step.

Complete runs only: no step is cut by a time limit. A search whose schedule did not run to its end, or
a pre-training or fine-tuning that stopped early, fails the benchmark (exit code 1, naming the phase)
and writes no results. Refuses to start on a busy machine (1-minute load average >= 1.5) unless
--allow-busy; the load is recorded either way.

    python benchmarks/sswp_cifar10.py        # ~22 min on a quiet 2-core CPU (estimated from per-step times)
    python benchmarks/sswp_cifar10.py --cells 3 --channels 4 --search-epochs 2 --limit-train 640 \\
        --finetune-epochs 2 4 --finetune-batch-sizes 32 4 --seeds 0 1 --allow-busy   # ~1 min: does it all run?
    python benchmarks/sswp_cifar10.py --gpu  # the larger configuration on one GPU (see --help; 8-minute budget)

The CPU estimate: 720 search weight steps at ~1.06 CPU s (architecture steps included), 720
pre-training steps at ~0.55 s, 12 fine-tunings of ~46 s (10%) and 12 of ~22 s (1%), measured per step
at this size on one thread of a shared machine, spread over two one-thread workers: the search's
chain (search, pre-training, then (c)'s fine-tunings) sets the pace while the rest fills in beside it.

Memory method: the bytes of every distinct tensor storage autograd saves for backward during one
forward (``torch.autograd.graph.saved_tensors_hooks``), i.e. the activation memory a training step
keeps alive, the part that grows with the number of paths; weights are the same in both.

Writes benchmarks/results/sswp_cifar10.json (atomically) and prints a table.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer, seed_everything
from lightly.transforms import SimCLRTransform
from scipy import stats
from torchvision import transforms as T

from nasframe import NASModule
from nasframe.data import NpzDataModule
from nasframe.errors import NASFrameError
from nasframe.export import SafetensorsExporter
from nasframe.finetune import FineTuneModule
from nasframe.objectives import SimCLR
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.darts import DARTSSpace
from nasframe.strategies import SinglePathStrategy
from nasframe_sswp import SSWPStrategy, binary_gates

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BUSY_LOAD = 1.5
VARIANTS = {"a": "concomitant weights (search export)", "b": "same architecture, random init",
            "c": "same architecture, SimCLR from scratch", "d": "random architecture, random init"}
TARGETS = {"a_minus_b": 5.0, "b_accuracy": 25.0}
# The DARTS search network's size (8 cells, C = 16) at full resolution, batches of 128, longer
# fine-tuning; four runs share the GPU and data loading gets the many CPU cores of a GPU machine (the
# SimCLR views, not the GPU, bound a search step). benchmarks/gpu_oneshot.py runs this in <= 8 min.
GPU_PRESET = dict(cells=8, channels=16, image_size=32, batch_size=128, search_epochs=30, finetune_epochs=[40, 200],
                  workers=4, threads=2, loader_workers=3, accelerator="auto")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    preset = " ".join(f"--{k.replace('_', '-')} " + " ".join(str(v) for v in (value if isinstance(value, list) else [value]))
                      for k, value in GPU_PRESET.items())
    parser.add_argument("--gpu", action="store_true",
                        help=f"the larger configuration for one GPU: {preset}; flags given explicitly override it")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--cells", type=int, default=5, help="DARTS cells of the searched (and every fine-tuned) network")
    parser.add_argument("--channels", type=int, default=8, help="C, the width of the first cells")
    parser.add_argument("--image-size", type=int, default=16, help="images are resized to this (32: full CIFAR size)")
    parser.add_argument("--batch-size", type=int, default=64, help="search and pre-training batch (x 2 views)")
    parser.add_argument("--search-epochs", type=int, default=20,
                        help="search epochs over the weight half of the training images; the pre-training takes as many")
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--label-fractions", type=float, nargs="+", default=[0.1, 0.01],
                        help="labelled fractions fine-tuned on; targets are judged on the first")
    parser.add_argument("--finetune-epochs", type=int, nargs="+", default=[20, 100], help="one per label fraction")
    parser.add_argument("--finetune-batch-sizes", type=int, nargs="+", default=[64, 16], help="one per label fraction")
    parser.add_argument("--finetune-lr", type=float, default=0.025, help="SGD, momentum 0.9, nesterov, wd 3e-4, cosine")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds (paired across starts)")
    parser.add_argument("--limit-train", type=int, default=0, help="use only N training images (0: all; for quick checks)")
    parser.add_argument("--workers", type=int, default=2, help="processes running the search, pre-training and fine-tunings")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads per worker")
    parser.add_argument("--loader-workers", type=int, default=0, help="data loader processes per run (0: in the worker)")
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator ('auto': a GPU when there is one)")
    parser.add_argument("--allow-busy", action="store_true",
                        help=f"start even when the 1-minute load average is >= {BUSY_LOAD} (timings are then not comparable)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "sswp_cifar10.json"))
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--gpu", action="store_true")
    if pre.parse_known_args(argv)[0].gpu:
        parser.set_defaults(**GPU_PRESET)
    args = parser.parse_args(argv)
    if not len(args.label_fractions) == len(args.finetune_epochs) == len(args.finetune_batch_sizes):
        parser.error("--label-fractions, --finetune-epochs and --finetune-batch-sizes need one value each per fraction")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must be distinct")
    if args.accelerator == "cpu" and args.workers * args.threads > (os.cpu_count() or 1):
        parser.error(f"--workers x --threads: at most {os.cpu_count()} (the CPU cores)")
    return args


class IncompleteRun(RuntimeError):
    """A pre-training or fine-tuning that stopped before its planned end: no result."""


# ---- data, networks, trainers -----------------------------------------------------------------------
def make_space(args: argparse.Namespace) -> DARTSSpace:
    return DARTSSpace(cells=args.cells, channels=args.channels, stem_multiplier=3, num_classes=10, in_channels=3,
                      image_size=args.image_size)


def eval_transform(size: int) -> T.Compose:
    return T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(MEAN, STD)])


def search_data(args: argparse.Namespace, kind: type[NpzDataModule] = NpzDataModule) -> NpzDataModule:
    """The label-free search's data: half the training images for weight steps, half for alpha steps,
    SimCLR views (colour jitter p 0.3, grayscale p 0.2, blur p 0.2); test images only for kNN."""
    views = SimCLRTransform(input_size=args.image_size, cj_prob=0.3, random_gray_scale=0.2, gaussian_blur=0.2,
                            normalize={"mean": list(MEAN), "std": list(STD)})
    return kind(args.data, batch_size=args.batch_size, label_fraction=0.0, architecture_split=0.5, train_transform=views,
                eval_transform=eval_transform(args.image_size), seed=args.search_seed, limit_train=args.limit_train,
                num_workers=args.loader_workers)


class WeightHalf(NpzDataModule):
    """The search's data without its architecture half: the pre-training's batches are the images,
    in the order, that the search's weight steps saw (and no architecture batch is loaded in vain)."""

    def train_dataloader(self) -> Any:
        return super().train_dataloader().iterables["weights"]


class FixedArchitecture(SinglePathStrategy):
    """Trains one given path of the supernet: self-supervised pre-training of a fixed architecture."""

    def __init__(self, architecture: Architecture, seed: int = 0) -> None:
        super().__init__(seed)
        self.architecture = architecture

    def propose(self, nas: NASModule) -> Architecture:
        return self.architecture


def trainer(args: argparse.Namespace, **kwargs: Any) -> Trainer:
    return Trainer(accelerator=args.accelerator, devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


def search_module(args: argparse.Namespace, space: DARTSSpace, strategy: Any, export: Path,
                  temperature: float = 0.07) -> NASModule:
    """SimCLR (the paper's temperature 0.07) with SGD 0.025 / momentum 0.9 / wd 4e-5, cosine over the
    epochs: the search's weights, and the pre-training's."""
    optimizer = lambda p: torch.optim.SGD(p, lr=0.025, momentum=0.9, weight_decay=4e-5)  # noqa: E731
    scheduler = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=args.search_epochs)  # noqa: E731
    return NASModule(space, strategy, objectives=[SimCLR(temperature=temperature)], optimizer=optimizer, lr_scheduler=scheduler,
                     export_dir=str(export))


def timed(run: Callable[..., dict]) -> Callable[..., dict]:
    """``run``'s result with its wall and CPU seconds (CPU: this process, i.e. what it would take alone)."""
    @functools.wraps(run)
    def timed_run(*args: Any) -> dict:
        wall, cpu = time.perf_counter(), time.process_time()
        result = run(*args)
        return {**result, "wall_seconds": round(time.perf_counter() - wall, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1)}
    return timed_run


# ---- the runs (each in a worker process) --------------------------------------------------------------
@timed
def run_search(args: argparse.Namespace, workdir: Path) -> dict:
    """The label-free search, its whole schedule; fails (``NASFrameError``, naming the phase) if it was cut."""
    seed_everything(args.search_seed, workers=True)
    space, data = make_space(args), search_data(args)
    strategy = SSWPStrategy(seed=args.search_seed)
    nas = search_module(args, space, strategy, workdir / "search_export")
    fit = trainer(args, max_epochs=args.search_epochs, limit_val_batches=0, default_root_dir=str(workdir / "search"))
    fit.fit(nas, datamodule=data)
    strategy.check_complete()  # on_fit_end checked it already; a benchmark states it
    if any((split.labels >= 0).any() for name, split in data._splits.items() if name != "val"):
        raise AssertionError("the search saw labelled training images")
    report = strategy.schedule_report()
    if report["frozen_cells"] < report["cells"]:  # only a pruning phase shorter than the cells leaves some open
        raise IncompleteRun(f"progressive pruning froze {report['frozen_cells']} of {report['cells']} cells in its "
                            f"{report['prune_steps']} steps: lengthen the search (--search-epochs)")
    return {"export": str(workdir / "search_export"), "architecture": space.format(nas.final_architecture),
            "weight_steps": strategy.step_count, "architecture_steps": fit.global_step - strategy.step_count,
            "phases": {phase: {"done": report[f"{phase}_steps"], "planned": report[f"{phase}_planned"]}
                       for phase in ("warmup", "search", "prune")},
            "frozen_cells": report["frozen_cells"], "cells": report["cells"], "knn": nas.evaluation,
            "chosen_op_steps": {k: report[k] for k in ("chosen_op_steps_mean", "chosen_op_steps_min") if k in report},
            "supernet_parameters": sum(p.numel() for p in nas.supernet.parameters()),
            "network_parameters": sum(p.numel() for p in nas.final_network(nas.final_architecture).parameters())}


@timed
def run_pretraining(args: argparse.Namespace, workdir: Path, architecture: str, weight_steps: int) -> dict:
    """(c)'s first stage: the searched architecture, SimCLR from the search's initial weights, for the
    search's number of weight steps on the same images."""
    seed_everything(args.search_seed, workers=True)  # the supernet starts where the search's did
    space = make_space(args)
    data = search_data(args, WeightHalf)
    nas = search_module(args, space, FixedArchitecture(space.parse(architecture), seed=args.search_seed),
                        workdir / "pretrained_export")
    fit = trainer(args, max_epochs=args.search_epochs, limit_val_batches=0, default_root_dir=str(workdir / "pretraining"))
    fit.fit(nas, datamodule=data)
    if fit.global_step != weight_steps:
        raise IncompleteRun(f"the SimCLR pre-training of (c) took {fit.global_step} weight steps, not the search's "
                            f"{weight_steps}: (c) would not be the same budget")
    return {"export": str(workdir / "pretrained_export"), "weight_steps": fit.global_step, "knn": nas.evaluation}


@timed
def run_finetune(args: argparse.Namespace, variant: str, model_dir: str, seed: int, fraction: int) -> dict:
    """Fine-tune one start on the labelled images of label fraction number ``fraction``; test accuracy (%)."""
    epochs, size = args.finetune_epochs[fraction], args.image_size
    seed_everything(seed, workers=True)
    augment = T.Compose([T.Resize(size), T.RandomCrop(size, padding=max(1, size // 8)), T.RandomHorizontalFlip(),
                         T.ToTensor(), T.Normalize(MEAN, STD)])
    data = NpzDataModule(args.data, batch_size=args.finetune_batch_sizes[fraction],
                         label_fraction=args.label_fractions[fraction], drop_unlabelled=True, train_transform=augment,
                         eval_transform=eval_transform(size), seed=seed, limit_train=args.limit_train,
                         num_workers=args.loader_workers)
    pretrained = variant in ("a", "c")
    optimizer = lambda p: torch.optim.SGD(p, lr=args.finetune_lr, momentum=0.9, weight_decay=3e-4, nesterov=True)  # noqa: E731
    module = FineTuneModule(model_dir, init="pretrained" if pretrained else "random", optimizer=optimizer,
                            reset_head=pretrained)
    fit = trainer(args, max_epochs=epochs, check_val_every_n_epoch=10**6)
    fit.fit(module, datamodule=data)
    if fit.interrupted or fit.current_epoch != epochs:
        raise IncompleteRun(f"fine-tuning ({variant}) seed {seed}, {args.label_fractions[fraction]:.0%} labels stopped "
                            f"after {fit.current_epoch} of {epochs} epochs")
    accuracy = 100.0 * float(fit.validate(module, datamodule=data, verbose=False)[0]["val/accuracy"])
    return {"accuracy": accuracy, "steps": fit.global_step, "labelled_images": len(data._splits["train"])}


def export_random_architecture(args: argparse.Namespace, seed: int, directory: Path) -> str:
    """(d)'s architecture for ``seed``, written as an export (its weights are never used: init random)."""
    space = make_space(args)
    architecture = space.sample(torch.Generator().manual_seed(1000 + seed))
    directory.mkdir(parents=True)
    SafetensorsExporter().export(architecture, space.build(architecture), space, directory, None)
    return space.format(architecture)


# ---- memory of a 2-path vs a 7-op architecture step -----------------------------------------------------
def saved_activation_bytes(run: Callable[[], Any]) -> int:
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


def memory_comparison(space: DARTSSpace, batch: int, size: int) -> dict:
    """Activation memory of an architecture step's forward: binary gates (2 paths) vs. the 7-op mixture."""
    torch.manual_seed(0)
    supernet = space.supernet()
    alpha = torch.nn.Parameter(torch.zeros(space.parameter_shape))
    x = torch.randn(batch, space.in_channels, size, size)
    gates = saved_activation_bytes(lambda: supernet(x, binary_gates(alpha, torch.Generator().manual_seed(0))[0]))
    mixture_strategy = SSWPStrategy(relaxation="mixture")
    mixture_strategy.alpha, mixture_strategy._space = alpha, space
    mixture = saved_activation_bytes(lambda: supernet(x, mixture_strategy.relaxation(None, "architecture")))
    return {"method": "sum of distinct storages saved for backward (saved_tensors_hooks), one forward",
            "batch": batch, "image_size": size, "two_path_bytes": gates, "mixture_bytes": mixture, "ratio": gates / mixture}


# ---- running the runs ---------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    run: Callable[..., dict]
    needs: tuple[str, ...]
    arguments: Callable[[dict[str, dict]], tuple]  # from the results of ``needs``


def init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    # the runs report through the main process; Lightly brings the pytorch_lightning package and its loggers too
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_tasks(tasks: list[Task], workers: int, threads: int, done: Callable[[str, dict], None]) -> dict[str, dict]:
    """Run ``tasks`` in ``workers`` processes, each as soon as the tasks it needs are done, earlier in the
    list first (the longest chain first: search, pre-training, then what waits on them). The first
    failure stops every run. The workers are not daemons, so a run may have data loader processes."""
    results: dict[str, dict] = {}
    waiting, running = list(tasks), {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=init_worker, initargs=(threads,)) as pool:
        try:
            while waiting or running:
                for task in [t for t in waiting if all(n in results for n in t.needs)][: workers - len(running)]:
                    waiting.remove(task)
                    running[pool.submit(task.run, *task.arguments(results))] = task.name
                if not running:
                    raise RuntimeError(f"tasks wait on results that never come: {[t.name for t in waiting]}")
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    results[name] = future.result()
                    done(name, results[name])
        except BaseException:
            # the other runs are worthless now; do not wait minutes for them. SIGKILL: after terminate()
            # a worker that had run a Trainer stayed alive (Lightning handles SIGTERM) and the pool's
            # shutdown waited on it until the outer time limit
            for child in multiprocessing.active_children():
                child.kill()
            raise
    return results


def plan(args: argparse.Namespace, workdir: Path, random_dirs: dict[int, Path]) -> list[Task]:
    tasks = [Task("search", run_search, (), lambda r: (args, workdir)),
             Task("pretraining", run_pretraining, ("search",),
                  lambda r: (args, workdir, r["search"]["architecture"], r["search"]["weight_steps"]))]
    model_dir = {"a": lambda r: r["search"]["export"], "b": lambda r: r["search"]["export"],
                 "c": lambda r: r["pretraining"]["export"]}
    needs = {"a": ("search",), "b": ("search",), "c": ("pretraining",), "d": ()}
    # (c) waits longest, so its fine-tunings go first; (d) needs nothing and fills in while the search runs
    for variant in ("c", "a", "b", "d"):
        for fraction in range(len(args.label_fractions)):
            for seed in args.seeds:
                directory = model_dir[variant] if variant != "d" else (lambda r, s=seed: str(random_dirs[s]))
                tasks.append(Task(f"{variant}/{fraction}/{seed}", run_finetune, needs[variant],
                                  lambda r, v=variant, d=directory, s=seed, f=fraction: (args, v, d(r), s, f)))
    return tasks


# ---- summary ------------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else None
    half = None if std is None else float(stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return {"per_seed": values, "mean": mean, "std": std,
            "ci95": None if half is None else [mean - half, mean + half], "halfwidth": half}


def summarise(args: argparse.Namespace, results: dict[str, dict]) -> dict:
    by_fraction = {}
    for f, fraction in enumerate(args.label_fractions):
        runs = {v: [results[f"{v}/{f}/{seed}"] for seed in args.seeds] for v in VARIANTS}
        accuracy = {v: [r["accuracy"] for r in runs[v]] for v in VARIANTS}
        by_fraction[f"{fraction:.0%}"] = {
            "label_fraction": fraction, "labelled_images": runs["a"][0]["labelled_images"],
            "epochs": args.finetune_epochs[f], "batch_size": args.finetune_batch_sizes[f], "steps": runs["a"][0]["steps"],
            "accuracy": {v: spread(accuracy[v]) for v in VARIANTS},
            "paired": {f"a_minus_{v}": spread([a - x for a, x in zip(accuracy["a"], accuracy[v])]) for v in "bcd"}}
    main = by_fraction[f"{args.label_fractions[0]:.0%}"]
    a_minus_b = main["paired"]["a_minus_b"]
    targets = {
        "a_minus_b_mean": {"value": a_minus_b["mean"], "at_least": TARGETS["a_minus_b"]},
        "a_minus_b_every_seed": {"value": min(a_minus_b["per_seed"]), "above": 0.0},
        "a_minus_c_mean": {"value": main["paired"]["a_minus_c"]["mean"], "at_least": 0.0},
        "b_accuracy_mean": {"value": main["accuracy"]["b"]["mean"], "at_least": TARGETS["b_accuracy"]},
    }
    for target in targets.values():
        target["met"] = target["value"] >= target["at_least"] if "at_least" in target else target["value"] > target["above"]
    # with the target effect as the true one, the interval would exclude 0
    halfwidth = a_minus_b["halfwidth"]
    powered = {"a_minus_b_halfwidth": halfwidth, "below": TARGETS["a_minus_b"],
               "met": halfwidth is not None and halfwidth < TARGETS["a_minus_b"]}
    return {"finetune": by_fraction, "targets": targets, "powered": powered}


def print_report(args: argparse.Namespace, results: dict[str, dict], summary: dict, memory: dict) -> None:
    search, pretraining = results["search"], results["pretraining"]
    phases = ", ".join(f"{name} {search['phases'][key]['done']}/{search['phases'][key]['planned']}"
                       for key, name in (("warmup", "warm-up"), ("search", "search"), ("prune", "pruning")))
    print(f"\nSSWP-NAS, CIFAR-10 subset: {args.cells} cells, C={args.channels}, {args.image_size}px, "
          f"search {args.search_epochs} epochs (seed {args.search_seed}), fine-tuning seeds {' '.join(map(str, args.seeds))}")
    print(f"search: {search['weight_steps']} weight steps ({phases}) + {search['architecture_steps']} architecture "
          f"steps; {search['frozen_cells']}/{search['cells']} cells frozen; {search['wall_seconds']:.0f}s")
    print(f"  architecture: {search['architecture']}")
    knn = lambda run, key="knn/accuracy": run["knn"].get(key, float("nan"))  # noqa: E731
    print(f"kNN accuracy (test images, 10-fold): searched network {knn(search):.1f}, same architecture at init "
          f"{knn(search, 'knn/accuracy_at_init'):.1f}, SimCLR pre-trained from scratch (c) {knn(pretraining):.1f} "
          f"({pretraining['weight_steps']} weight steps)")
    seeds = "".join(f"{'seed ' + str(s):>9}" for s in args.seeds)
    for label, block in summary["finetune"].items():
        print(f"\n{label} labels ({block['labelled_images']} images), {block['epochs']} epochs of batch "
              f"{block['batch_size']} ({block['steps']} steps), test accuracy %:")
        print(f"{'':44}{seeds}   mean ± std")
        for v, name in VARIANTS.items():
            row = block["accuracy"][v]
            print(f"({v}) {name:40}" + "".join(f"{x:9.2f}" for x in row["per_seed"]) + f"   {_mean_std(row)}")
        for key, row in block["paired"].items():
            ci = f"  95% CI [{row['ci95'][0]:+.2f}, {row['ci95'][1]:+.2f}]" if row["ci95"] else ""
            print(f"{'(a) - (' + key[-1] + ')':44}" + "".join(f"{x:+9.2f}" for x in row["per_seed"]) + f"   {row['mean']:+.2f}{ci}")
    t, met = summary["targets"], lambda ok: "met" if ok else "NOT met"  # noqa: E731
    first = f"{args.label_fractions[0]:.0%}"
    print(f"\ntargets ({first} labels):")
    print(f"  (a) - (b) >= {TARGETS['a_minus_b']:g} points on the mean: {t['a_minus_b_mean']['value']:+.2f}  "
          f"{met(t['a_minus_b_mean']['met'])}")
    print(f"  (a) - (b) > 0 for every seed: smallest {t['a_minus_b_every_seed']['value']:+.2f}  "
          f"{met(t['a_minus_b_every_seed']['met'])}")
    print(f"  (a) >= (c) on the mean: {t['a_minus_c_mean']['value']:+.2f}  {met(t['a_minus_c_mean']['met'])}")
    print(f"  (b) >= {TARGETS['b_accuracy']:g}% (the fine-tuning trains): {t['b_accuracy_mean']['value']:.2f}  "
          f"{met(t['b_accuracy_mean']['met'])}")
    p = summary["powered"]
    if p["a_minus_b_halfwidth"] is not None:
        print(f"  powered: 95% half-width of (a) - (b) {p['a_minus_b_halfwidth']:.2f} < {p['below']:g}: {met(p['met'])}")
    print(f"memory of an architecture step, 2-path / 7-op: {memory['ratio']:.3f} "
          f"({memory['two_path_bytes'] / 2**20:.1f} vs {memory['mixture_bytes'] / 2**20:.1f} MiB)")


def _mean_std(row: dict) -> str:
    return f"{row['mean']:.2f}" + (f" ± {row['std']:.2f}" if row["std"] is not None else "")


def write_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        tmp.write(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp.name, path)


def device_name(accelerator: str) -> str:
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load = os.getloadavg()
    if load[0] >= BUSY_LOAD and not args.allow_busy:
        raise SystemExit(f"1-minute load average {load[0]:.2f} >= {BUSY_LOAD}: the benchmark's timings (and its 30-minute "
                         "budget) assume a quiet machine; wait, or pass --allow-busy")
    if not Path(args.data).is_file():
        raise SystemExit(f"data file {args.data!r} not found; pass --data path/to/cifar10_partial.npz")
    began = time.perf_counter()
    space = make_space(args)
    memory = memory_comparison(space, batch=16, size=args.image_size)
    started = time.time()
    elapsed = lambda: f"{(time.time() - started) / 60:5.1f} min"  # noqa: E731

    def done(name: str, result: dict) -> None:
        if name == "search":
            print(f"[{elapsed()}] search done: {result['weight_steps']} weight + {result['architecture_steps']} "
                  f"architecture steps, {result['frozen_cells']}/{result['cells']} cells frozen "
                  f"({result['cpu_seconds'] / result['weight_steps']:.3f} CPU s per weight step)", flush=True)
        elif name == "pretraining":
            print(f"[{elapsed()}] (c) pre-training done: {result['weight_steps']} steps "
                  f"({result['cpu_seconds'] / result['weight_steps']:.3f} CPU s per step)", flush=True)
        else:
            variant, fraction, seed = name.split("/")
            print(f"[{elapsed()}] ({variant}) {args.label_fractions[int(fraction)]:.0%} labels, seed {seed}: "
                  f"{result['accuracy']:.2f}%  ({result['cpu_seconds'] / result['steps']:.3f} CPU s per step)", flush=True)

    with tempfile.TemporaryDirectory(prefix="sswp_bench_") as tmp:
        workdir = Path(tmp)
        random_architectures = {seed: export_random_architecture(args, seed, workdir / f"random_{seed}") for seed in args.seeds}
        try:
            results = run_tasks(plan(args, workdir, {s: workdir / f"random_{s}" for s in args.seeds}), args.workers,
                                args.threads, done)
        except (NASFrameError, IncompleteRun) as error:
            raise SystemExit(f"FAILED, no results written: {error}") from None
    summary = summarise(args, results)
    wall = time.perf_counter() - began
    internal = ("export",)  # paths in the deleted working directory
    payload = {
        "config": vars(args), "device": device_name(args.accelerator), "cpu_count": os.cpu_count(),
        "load_average_start": list(load), "busy_at_start": load[0] >= BUSY_LOAD, "allow_busy": args.allow_busy,
        "variants": VARIANTS, "memory": memory,
        "search": {k: v for k, v in results["search"].items() if k not in internal},
        "pretraining": {k: v for k, v in results["pretraining"].items() if k not in internal},
        "random_architectures": {str(s): a for s, a in random_architectures.items()}, **summary,
        "runs": {name: {k: v for k, v in r.items() if k in ("accuracy", "steps", "wall_seconds", "cpu_seconds")}
                 for name, r in results.items() if "/" in name},
        "wall_seconds": round(wall, 1), "load_average_end": list(os.getloadavg()),
    }
    write_atomically(Path(args.output), payload)  # before the report: a printing slip must not lose a run
    print_report(args, results, summary, memory)
    print(f"total {wall / 60:.1f} min (load average {load[0]:.2f} at start)")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
