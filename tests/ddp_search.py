"""Run a tiny search with NASTrainer(strategy="ddp", devices=2) on CPU; each rank writes what it saw.

    python tests/ddp_search.py <kind> <out_dir>      (kinds: tests/searches.py KINDS)

Lightning's DDP launcher re-runs this script for rank 1; tests/test_distributed.py compares the ranks.
"""

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import seed_everything

from nasframe import NASTrainer

sys.path.insert(0, str(Path(__file__).parent))
from searches import build, report  # noqa: E402


def main(kind: str, out: Path) -> None:
    seed_everything(0)
    nas, data = build(kind, out, limit_train=128)
    # NASTrainer turns "ddp" into DDP that finds unused parameters (a single-path step trains one path)
    trainer = NASTrainer(max_steps=8, accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         default_root_dir=str(out))
    trainer.fit(nas, datamodule=data)
    result = {**report(nas), "rank": trainer.global_rank,
              "scored_here": getattr(getattr(nas.strategy, "evaluator", None), "scored_here", None)}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], Path(sys.argv[2]))
