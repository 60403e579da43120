"""A tiny search that can SIGKILL itself mid-run and resume from its last checkpoint.

    python tests/resume_search.py <kind> <out_dir> [--kill-at BATCH] [--resume]   (kinds: tests/searches.py KINDS)

Writes <out_dir>/result.json (final architecture, search state, parameter checksums) when it finishes.
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import ModelCheckpoint

sys.path.insert(0, str(Path(__file__).parent))
from killer import KillAfterBatches  # noqa: E402
from searches import build, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind")
    parser.add_argument("out", type=Path)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seed_everything(0)
    nas, data = build(args.kind, args.out)
    callbacks = [ModelCheckpoint(dirpath=args.out / "checkpoints", save_last=True, every_n_epochs=1)]
    if args.kill_at is not None:
        callbacks.append(KillAfterBatches(args.kill_at))
    # three batches an epoch: a checkpoint every third step, so a kill always loses some work
    trainer = Trainer(max_epochs=5, limit_train_batches=3, accelerator="cpu", devices=1, logger=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                      callbacks=callbacks, default_root_dir=str(args.out))
    trainer.fit(nas, datamodule=data, ckpt_path="last" if args.resume else None)
    (args.out / "result.json").write_text(json.dumps(report(nas), sort_keys=True))


if __name__ == "__main__":
    main()
