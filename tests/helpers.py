"""Tiny building blocks shared by tests (no data beyond scikit-learn's digits)."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer

from nasframe.data import DigitsDataModule
from nasframe.evaluators import Evaluator
from nasframe.spaces.nb201 import NB201Space


def tiny_space(**overrides) -> NB201Space:
    args = dict(channels=4, cells_per_stage=1, in_channels=1, image_size=8, num_classes=10, bn_track_running_stats=False)
    return NB201Space(**{**args, **overrides})


def tiny_data(**overrides) -> DigitsDataModule:
    return DigitsDataModule(**{"batch_size": 32, "limit_train": 256, **overrides})


def tiny_trainer(tmp_path, **overrides) -> Trainer:
    args = dict(max_steps=6, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=str(tmp_path), limit_val_batches=2, num_sanity_val_steps=0)
    return Trainer(**{**args, **overrides})


class CountConvolutions(Evaluator):
    """A deterministic stand-in score: the number of 3x3 convolutions in an NB201 architecture."""

    def score(self, nas, architectures, batch):
        return torch.tensor([float(a.choices.count("nor_conv_3x3")) for a in architectures])
