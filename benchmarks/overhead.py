"""Framework overhead: one single-path supernet training step through Trainer + NASModule + hooks vs
the same math in a plain PyTorch loop (same supernet weights, data, sampled paths, optimizer).

    python benchmarks/overhead.py                 # NB201 supernet C=16, N=2, batch 64, 32x32
    python benchmarks/overhead.py --steps 60 --cells 5

Prints per-step medians and the ratio (target <= 1.05) and writes benchmarks/results/overhead.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from nasframe import NASModule
from nasframe.spaces.nb201 import NB201Space
from nasframe.strategies import SinglePathStrategy


class StepTimer(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.times.append(time.perf_counter() - self._start)


def plain_loop(supernet, space, data, steps, seed, lr) -> list[float]:
    optimizer = torch.optim.SGD(supernet.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    generator = torch.Generator().manual_seed(seed)
    times = []
    supernet.train()
    for step in range(steps):
        x, y = data[step % len(data)]
        start = time.perf_counter()
        architecture = space.sample(generator)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(supernet(x, architecture), y)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternate framework/plain runs this many times")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    space = NB201Space(channels=args.channels, cells_per_stage=args.cells, bn_track_running_stats=False)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(args.steps, args.batch, 3, 32, 32, generator=generator)
    targets = torch.randint(10, (args.steps, args.batch), generator=generator)
    data = [(inputs[i], targets[i]) for i in range(args.steps)]

    framework_times, plain_times = [], []
    for _ in range(args.rounds):
        nas = NASModule(space, SinglePathStrategy(seed=1), export_dir=None, optimizer=lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9, weight_decay=3e-4))
        initial = copy.deepcopy(nas.supernet)
        timer = StepTimer()
        trainer = Trainer(max_steps=args.steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False, enable_model_summary=False, callbacks=[timer], num_sanity_val_steps=0)
        nas.on_fit_end = lambda: None  # time the search steps, not the final export
        loader = DataLoader(TensorDataset(inputs.flatten(0, 0), targets), batch_size=None)
        trainer.fit(nas, train_dataloaders=loader)
        framework_times += timer.times[args.warmup:]
        plain_times += plain_loop(initial, space, data, args.steps, seed=1, lr=0.01)[args.warmup:]

    framework, plain = statistics.median(framework_times), statistics.median(plain_times)
    result = {
        "config": vars(args), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "framework_step_ms_median": framework * 1e3, "plain_step_ms_median": plain * 1e3, "ratio": framework / plain,
        "framework_step_ms_mean": statistics.mean(framework_times) * 1e3, "plain_step_ms_mean": statistics.mean(plain_times) * 1e3,
    }
    print(f"single-path step, NB201 supernet C={args.channels} N={args.cells}, batch {args.batch}, {args.threads} threads")
    print(f"  NASModule + hooks + Trainer: {framework * 1e3:8.2f} ms (median of {len(framework_times)})")
    print(f"  plain PyTorch loop:          {plain * 1e3:8.2f} ms (median of {len(plain_times)})")
    print(f"  ratio: {framework / plain:.3f}  (target <= 1.05)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
