"""Run a tiny search with Trainer(strategy="ddp", devices=2) on CPU; each rank writes what it saw.

    python tests/ddp_search.py <single_path|sample_based|differentiable> <out_dir>

Lightning's DDP launcher re-runs this script for rank 1; tests/test_distributed.py compares the ranks.
"""

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import Trainer, seed_everything

sys.path.insert(0, str(Path(__file__).parent))
from helpers import CountConvolutions, tiny_data, tiny_space  # noqa: E402
from test_module import Mixture  # noqa: E402

from nasframe import NASModule  # noqa: E402
from nasframe.strategies import RegularizedEvolution, SinglePathStrategy  # noqa: E402


class Recording(SinglePathStrategy):
    def propose(self, nas):
        architecture = super().propose(nas)
        self.proposed = getattr(self, "proposed", []) + [architecture.to_dict()]
        return architecture


def main(kind: str, out: Path) -> None:
    seed_everything(0)
    data = tiny_data(batch_size=16)
    if kind == "single_path":
        strategy = Recording(seed=2)
    elif kind == "sample_based":
        strategy, data = RegularizedEvolution(CountConvolutions(), budget=20, population_size=6, sample_size=2, seed=2), None
    else:
        strategy, data = Mixture(), tiny_data(batch_size=16, architecture_split=0.5)
    nas = NASModule(tiny_space(), strategy, export_dir=str(out / "export"))
    trainer = Trainer(max_steps=8, accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                      default_root_dir=str(out))
    trainer.fit(nas, datamodule=data) if data is not None else trainer.fit(nas)
    report = {
        "rank": trainer.global_rank,
        "final": nas.final_architecture.to_dict(),
        "proposed": getattr(strategy, "proposed", None),
        "history": [[a.to_dict(), s] for a, s in getattr(strategy, "history", [])],
        "parameters": {n: p.detach().double().sum().item() for n, p in nas.strategy.named_parameters()},
        "supernet_checksum": sum(p.detach().double().sum().item() for p in nas.supernet.parameters()) if nas.supernet is not None else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], Path(sys.argv[2]))
