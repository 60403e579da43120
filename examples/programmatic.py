"""The quickstart search from Python instead of YAML: the same objects, no CLI.

    python examples/programmatic.py
"""

import torch
from lightning.pytorch import seed_everything

import nasframe
from nasframe import NASModule, NASTrainer
from nasframe.data import DigitsDataModule
from nasframe.objectives import CrossEntropy
from nasframe.spaces.nb201 import NB201Space
from nasframe.strategies import SinglePathStrategy


def main(export_dir: str = "runs/programmatic/export", max_epochs: int = 10) -> None:
    seed_everything(0)
    space = NB201Space(channels=8, cells_per_stage=1, in_channels=1, image_size=8, bn_track_running_stats=False)
    search = NASModule(
        search_space=space,
        strategy=SinglePathStrategy(seed=0),
        objectives=[CrossEntropy()],
        optimizer=lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=3e-4),
        export_dir=export_dir,
        overwrite_export=True,
    )
    # NASTrainer: Lightning's Trainer plus a last.ckpt in runs/programmatic/checkpoints after every epoch,
    # so that trainer.fit(..., ckpt_path="last") resumes a killed search, a progress bar, and a CSV log
    # with the run record (history.csv, summary.json) in runs/programmatic/lightning_logs/version_N
    trainer = NASTrainer(max_epochs=max_epochs, accelerator="cpu", devices=1, default_root_dir="runs/programmatic",
                         enable_model_summary=False)
    trainer.fit(search, datamodule=DigitsDataModule(batch_size=64))

    model = nasframe.load_model(export_dir)  # a plain nn.Module: no supernet, no nasframe objects needed
    print("exported", space.format(search.final_architecture), "->", model(torch.randn(1, 1, 8, 8)).shape)


if __name__ == "__main__":
    main()
