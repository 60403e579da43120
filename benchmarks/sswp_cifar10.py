"""SSWP-NAS on the CIFAR-10 subset: label-free search, then few-label fine-tuning from the concomitant
weights vs. random init vs. a random architecture; plus the memory of a 2-path vs. a 7-op step.

    python benchmarks/sswp_cifar10.py                      # defaults fit 2 CPU cores in <= 30 min
    python benchmarks/sswp_cifar10.py --cells 8 --channels 16 --image-size 32 --search-epochs 30   # on a GPU

Writes benchmarks/results/sswp_cifar10.json and prints a table. Test accuracy is on the 932 test images.

Memory method: the bytes of every distinct tensor storage autograd saves for backward during one
forward (``torch.autograd.graph.saved_tensors_hooks``), i.e. the activation memory a training step
keeps alive, the part that grows with the number of paths; weights are the same in both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightly.transforms import SimCLRTransform
from torchvision import transforms as T

from nasframe import NASModule
from nasframe.data import NpzDataModule
from nasframe.export import SafetensorsExporter
from nasframe.finetune import FineTuneModule
from nasframe.objectives import SimCLR
from nasframe.spaces.darts import DARTSSpace
from nasframe_sswp import SSWPStrategy, binary_gates

ROOT = Path(__file__).resolve().parents[1]
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_partial.npz"))
    parser.add_argument("--cells", type=int, default=5)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=16, help="images are resized to this (32: full CIFAR size)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--search-epochs", type=int, default=2)
    parser.add_argument("--search-minutes", type=float, default=10.0, help="hard stop of the search")
    parser.add_argument("--finetune-epochs", type=int, default=12)
    parser.add_argument("--finetune-minutes", type=float, default=1.1, help="hard stop of each of the 9 fine-tunings")
    parser.add_argument("--label-fraction", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sswp_cifar10.json"))
    return parser.parse_args()


def quiet_trainer(**kwargs) -> Trainer:
    args = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, num_sanity_val_steps=0)
    return Trainer(**{**args, **kwargs})


def saved_activation_bytes(run) -> int:
    storages: dict[int, int] = {}

    def pack(tensor):
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


def search(args, space: DARTSSpace, workdir: Path) -> tuple[Path, dict]:
    seed_everything(0, workers=True)
    transform = SimCLRTransform(input_size=args.image_size, cj_prob=0.3, random_gray_scale=0.2, gaussian_blur=0.2,
                                normalize={"mean": list(MEAN), "std": list(STD)})
    data = NpzDataModule(args.data, batch_size=args.batch_size, label_fraction=0.0, architecture_split=0.5,
                         train_transform=transform, seed=0)
    strategy = SSWPStrategy(seed=0)
    export = workdir / "search_export"
    optimizer = lambda p: torch.optim.SGD(p, lr=0.025, momentum=0.9, weight_decay=4e-5)  # noqa: E731
    scheduler = lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=args.search_epochs)  # noqa: E731
    nas = NASModule(space, strategy, objectives=[SimCLR(temperature=0.07)], optimizer=optimizer, lr_scheduler=scheduler,
                    export_dir=str(export))
    trainer = quiet_trainer(max_epochs=args.search_epochs, limit_val_batches=0,
                            max_time={"seconds": int(args.search_minutes * 60)}, default_root_dir=str(workdir))
    start = time.time()
    trainer.fit(nas, datamodule=data)
    assert set(data._splits["train"].labels.tolist()) == {-1}, "the search must see no label"
    info = {"seconds": time.time() - start, "weight_steps": strategy.step_count, "planned_weight_steps": strategy.total(nas),
            "frozen_cells": len(strategy.frozen), "architecture": space.format(nas.final_architecture),
            "supernet_parameters": sum(p.numel() for p in nas.supernet.parameters()),
            "network_parameters": sum(p.numel() for p in nas.final_network(nas.final_architecture).parameters())}
    return export, info


def finetune(args, model_dir: Path, init: str, seed: int) -> float:
    seed_everything(seed, workers=True)
    normalize = [T.ToTensor(), T.Normalize(MEAN, STD)]
    train_tf = T.Compose([T.Resize(args.image_size), T.RandomCrop(args.image_size, padding=args.image_size // 8),
                          T.RandomHorizontalFlip(), *normalize])
    eval_tf = T.Compose([T.Resize(args.image_size), *normalize])
    data = NpzDataModule(args.data, batch_size=args.batch_size, label_fraction=args.label_fraction, drop_unlabelled=True,
                         train_transform=train_tf, eval_transform=eval_tf, seed=seed)
    module = FineTuneModule(str(model_dir), init=init)
    trainer = quiet_trainer(max_epochs=args.finetune_epochs, check_val_every_n_epoch=10**6,
                            max_time={"seconds": int(args.finetune_minutes * 60)})
    trainer.fit(module, datamodule=data)
    result = trainer.validate(module, datamodule=data, verbose=False)
    return 100.0 * float(result[0]["val/accuracy"])


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if not Path(args.data).is_file():
        raise SystemExit(f"data file {args.data!r} not found; pass --data path/to/cifar10_partial.npz")
    space = DARTSSpace(cells=args.cells, channels=args.channels, stem_multiplier=3, num_classes=10, in_channels=3,
                       image_size=args.image_size)
    started = time.time()
    results: dict = {"config": vars(args)}
    results["memory"] = memory_comparison(space, batch=16, size=args.image_size)
    print(f"memory: 2-path {results['memory']['two_path_bytes'] / 2**20:.1f} MiB vs 7-op mixture "
          f"{results['memory']['mixture_bytes'] / 2**20:.1f} MiB -> ratio {results['memory']['ratio']:.3f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sswp_bench_") as tmp:
        workdir = Path(tmp)
        export, results["search"] = search(args, space, workdir)
        print(f"search: {results['search']}", flush=True)
        runs: dict[str, list[float]] = {"a_concomitant": [], "b_random_init": [], "c_random_architecture": []}
        for seed in args.seeds:
            random_dir = workdir / f"random_arch_{seed}"
            random_dir.mkdir()
            arch = space.sample(torch.Generator().manual_seed(1000 + seed))
            SafetensorsExporter().export(arch, space.build(arch), space, random_dir, None)
            for name, directory, init in (("a_concomitant", export, "pretrained"), ("b_random_init", export, "random"),
                                          ("c_random_architecture", random_dir, "random")):
                runs[name].append(finetune(args, directory, init, seed))
                print(f"seed {seed} {name}: {runs[name][-1]:.2f}%  ({time.time() - started:.0f}s elapsed)", flush=True)
    results["finetune"] = {name: {"accuracy": values, "mean": statistics.mean(values),
                                  "std": statistics.stdev(values) if len(values) > 1 else 0.0} for name, values in runs.items()}
    gap = results["finetune"]["a_concomitant"]["mean"] - results["finetune"]["b_random_init"]["mean"]
    results["targets"] = {"a_minus_b_points": gap, "a_beats_b_by_3": gap >= 3.0,
                          "memory_ratio_at_most_half": results["memory"]["ratio"] <= 0.5}
    results["total_seconds"] = time.time() - started
    print(f"\nSSWP-NAS, CIFAR-10 subset, {args.label_fraction:.0%} labels, {len(args.seeds)} seeds "
          f"({args.cells} cells, C={args.channels}, {args.image_size}px)")
    print(f"{'fine-tuned from':32} {'test acc %':>12}")
    for name, row in results["finetune"].items():
        print(f"{name:32} {row['mean']:7.2f} ± {row['std']:.2f}")
    print(f"(a) - (b): {gap:+.2f} points (target >= 3: {'met' if gap >= 3 else 'NOT met'})")
    print(f"memory 2-path / 7-op: {results['memory']['ratio']:.3f} (target <= 0.5: "
          f"{'met' if results['memory']['ratio'] <= 0.5 else 'NOT met'})")
    print(f"total {results['total_seconds'] / 60:.1f} min")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
