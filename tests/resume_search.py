"""A tiny search that can SIGKILL itself mid-run and resume from its last checkpoint.

    python tests/resume_search.py <single_path|differentiable|sample_based> <out_dir> [--kill-at STEP] [--resume]

Writes <out_dir>/result.json (final architecture, search state, parameter checksums) when it finishes.
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback, Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

sys.path.insert(0, str(Path(__file__).parent))
from helpers import CountConvolutions, tiny_data, tiny_space  # noqa: E402
from test_module import Mixture  # noqa: E402

from nasframe import NASModule  # noqa: E402
from nasframe.strategies import RegularizedEvolution, SinglePathStrategy  # noqa: E402


class KillAt(Callback):
    def __init__(self, batches: int) -> None:
        self.batches, self.seen = batches, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1  # batches, not global_step: a search without optimizer never advances global_step
        if self.seen >= self.batches:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no final checkpoint: a real crash


def build(kind: str):
    if kind == "single_path":
        return SinglePathStrategy(seed=4), tiny_data(batch_size=16, limit_train=96)
    if kind == "differentiable":
        return Mixture(), tiny_data(batch_size=16, limit_train=128, architecture_split=0.5)
    return RegularizedEvolution(CountConvolutions(), budget=40, population_size=8, sample_size=3, seed=4), None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("out", type=Path)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seed_everything(0)
    strategy, data = build(args.kind)
    nas = NASModule(tiny_space(), strategy, export_dir=str(args.out / "export"), overwrite_export=True)
    callbacks = [ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, every_n_epochs=1)]
    if args.kill_at is not None:
        callbacks.append(KillAt(args.kill_at))
    trainer = Trainer(max_epochs=5, limit_train_batches=6 if data is None else None, accelerator="cpu", devices=1, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                      callbacks=callbacks, default_root_dir=str(args.out))
    trainer.fit(nas, datamodule=data, ckpt_path="last" if args.resume else None)
    state = strategy.search_state()
    result = {
        "final": nas.final_architecture.to_dict(),
        "state": json.loads(json.dumps(state, default=lambda t: t.tolist())),
        "generator": strategy.generator.get_state().tolist(),
        "parameters": {n: p.detach().double().sum().item() for n, p in nas.named_parameters()},
    }
    (args.out / "result.json").write_text(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
