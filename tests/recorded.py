"""Tiny searches of each strategy kind with their run record, for test_record.py and test_report.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from helpers import CountConvolutions, tiny_data, tiny_space
from nasframe import NASModule, NASTrainer
from nasframe.objectives import CrossEntropy, Distillation
from nasframe.record import RunRecord
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.mbconv import MBConvSpace
from nasframe.strategies import RegularizedEvolution, SinglePathStrategy
from nasframe.tabular.base import TabularBenchmark

KINDS = ("sample_based", "single_path", "differentiable", "cream")


class ToyTable(TabularBenchmark):
    """A stand-in NAS-Bench-201 table: an accuracy that rises with the 3x3 convolutions, plus a
    fixed per-architecture wobble, so that the search's score ranks it well but not perfectly."""

    @property
    def metrics(self) -> list[str]:
        return ["cifar10_test_acc"]

    def query(self, architecture: Architecture, metric: str = "cifar10_test_acc") -> float:
        wobble = sum((i + 1) * len(op) for i, op in enumerate(architecture.choices)) % 7
        return 80.0 + 2.0 * architecture.choices.count("nor_conv_3x3") + 0.5 * wobble

    def architectures(self) -> list[Architecture]:
        return []


def mbconv_space() -> MBConvSpace:
    return MBConvSpace(stage_channels=(8, 16), stage_layers=(1, 2), stage_strides=(2, 2), stem_channels=8, stem_stride=1,
                       first_channels=8, head_channels=16, final_channels=32, image_size=8, in_channels=1, allow_skip=True)


def build(kind: str, out: Path, budget: int = 24) -> tuple[NASModule, Any]:
    """The module and datamodule of a tiny search of ``kind`` exporting to ``out/export``."""
    torch.manual_seed(0)
    export = dict(export_dir=str(out / "export"), overwrite_export=True)
    if kind == "sample_based":
        strategy = RegularizedEvolution(CountConvolutions(), budget=budget, population_size=8, sample_size=3, seed=4)
        return NASModule(tiny_space(), strategy, plugins=[RunRecord(benchmark=ToyTable())], **export), None
    if kind == "single_path":
        return NASModule(tiny_space(), SinglePathStrategy(seed=4), **export), tiny_data(batch_size=16, limit_train=64)
    if kind == "differentiable":
        from test_module import Mixture

        return NASModule(tiny_space(), Mixture(), **export), tiny_data(batch_size=16, limit_train=64, architecture_split=0.5)
    if kind == "cream":
        from nasframe_cream import CreamStrategy

        strategy = CreamStrategy(seed=0, board_size=3, warmup_steps=0, matching_images=4, meta_every=0)
        return (NASModule(mbconv_space(), strategy, objectives=[CrossEntropy(), Distillation()], **export),
                tiny_data(batch_size=16, limit_train=64))
    raise ValueError(f"unknown kind {kind!r}; accepted: {KINDS}")


def trainer(root: Path, **overrides: Any) -> NASTrainer:
    """A quiet NASTrainer with its default (CSV) logger under ``root``."""
    args = dict(max_epochs=2, accelerator="cpu", devices=1, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, default_root_dir=str(root), limit_val_batches=1, num_sanity_val_steps=0)
    return NASTrainer(**{**args, **overrides})


def run(kind: str, root: Path, **overrides: Any) -> tuple[NASModule, Path]:
    """Run a tiny search of ``kind`` under ``root``; returns the module and its run-record directory."""
    nas, data = build(kind, root)
    fit = trainer(root, **overrides)
    fit.fit(nas, datamodule=data)
    return nas, nas.run_record.directory
