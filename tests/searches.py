"""Tiny searches for the SIGKILL-resume and DDP scripts: one per strategy kind, one per method plugin.

The plugin searches are the users' own example configs (``examples/*_digits.yaml``), parsed by the
``nasframe`` CLI and shrunk by command-line overrides, so the configs people run are the ones tested.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from helpers import CountConvolutions, tiny_data, tiny_space  # noqa: E402
from test_module import Mixture  # noqa: E402

from nasframe import NASModule  # noqa: E402
from nasframe.strategies import RegularizedEvolution, SinglePathStrategy  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
STRATEGY = "--model.init_args.strategy.init_args."
# example config and the overrides that make it a few-second search
PLUGIN_SEARCHES = {
    "epsinas": ("epsinas_digits.yaml", [STRATEGY + "num_samples=24", STRATEGY + "candidates_per_step=4",
                                        STRATEGY + "evaluator.init_args.batch_size=16"]),
    "seminas": ("seminas_digits.yaml", [STRATEGY + "budget=20", STRATEGY + "initial=6", STRATEGY + "per_iteration=3",
                                        STRATEGY + "growth=0.0", "--data.init_args.batch_size=16"]),
    "sswp": ("sswp_darts_digits.yaml", ["--model.init_args.search_space.init_args.cells=2", STRATEGY + "architecture_every=2",
                                        "--data.init_args.batch_size=16"]),
    "cream": ("cream_mbconv_digits.yaml", [STRATEGY + "warmup_steps=2", STRATEGY + "board_size=3", STRATEGY + "meta_every=2",
                                           STRATEGY + "matching_images=4", "--data.init_args.batch_size=16",
                                           # the non-paper scoring options too: their scoring set is state and rank 0's
                                           STRATEGY + "board_scoring=fixed", STRATEGY + "score_images=24",
                                           STRATEGY + "rescore_every=3", STRATEGY + "final_rescore=true"]),
}
# single-path SimCLR + cross-entropy with 10% labels in batches of 4: some steps give one rank no
# labelled image, and every rank must still join the batch-accuracy reduction
PARTLY_LABELLED = ("sswp_darts_digits.yaml", [
    "--model.init_args.strategy=nasframe.strategies.SinglePathStrategy", "--model.init_args.strategy.init_args.seed=4",
    "--model.init_args.search_space.init_args.cells=2", "--data.init_args.batch_size=4", "--data.init_args.label_fraction=0.1",
    "--data.init_args.architecture_split=0.0",
    '--model.init_args.objectives=[{"class_path": "nasframe.objectives.SimCLR"}, {"class_path": "nasframe.objectives.CrossEntropy"}]'])
KINDS = ["single_path", "partly_labelled", "differentiable", "sample_based", *PLUGIN_SEARCHES]


class CountingConvolutions(CountConvolutions):
    """Counts the candidates this process scored (DDP shares them out between ranks)."""

    scored_here = 0

    def score(self, nas, architectures, batch):
        self.scored_here += len(architectures)
        return super().score(nas, architectures, batch)


class Recording(SinglePathStrategy):
    """Records every step's sampled path."""

    def propose(self, nas):
        architecture = super().propose(nas)
        self.proposed = getattr(self, "proposed", []) + [architecture.to_dict()]
        return architecture


def build(kind: str, out: Path, limit_train: int = 96) -> tuple[NASModule, Any]:
    """The module and datamodule (None for data-free searches) of search ``kind``, exporting to ``out/export``."""
    export = dict(export_dir=str(out / "export"), overwrite_export=True)
    if kind == "single_path":
        return NASModule(tiny_space(), Recording(seed=4), **export), tiny_data(batch_size=16, limit_train=limit_train)
    if kind == "partly_labelled":
        return from_example(*PARTLY_LABELLED, out, limit_train)
    if kind == "differentiable":
        return NASModule(tiny_space(), Mixture(), **export), tiny_data(batch_size=16, limit_train=limit_train, architecture_split=0.5)
    if kind == "sample_based":
        strategy = RegularizedEvolution(CountingConvolutions(), budget=40, population_size=8, sample_size=3, seed=4)
        return NASModule(tiny_space(), strategy, **export), None
    if kind in PLUGIN_SEARCHES:
        return from_example(*PLUGIN_SEARCHES[kind], out, limit_train)
    raise ValueError(f"unknown search {kind!r}; accepted: {KINDS}")


def from_example(config: str, overrides: list[str], out: Path, limit_train: int) -> tuple[NASModule, Any]:
    from nasframe.cli import NASFrameCLI
    from nasframe.plugins import NASPluginManager

    NASPluginManager().load_entry_point_plugins()
    args = ["--config", str(EXAMPLES / config), *overrides, f"--data.init_args.limit_train={limit_train}",
            f"--model.init_args.export_dir={out / 'export'}", "--trainer.logger=false"]
    cli = NASFrameCLI(args=args, run=False)
    return cli.model, cli.datamodule


def report(nas: NASModule) -> dict[str, Any]:
    """What must be equal between ranks, or between a resumed and an uninterrupted run (JSON-able)."""
    strategy = nas.strategy
    state = strategy.search_state()
    return {
        "final": nas.final_architecture.to_dict(),
        "state": _plain(state),
        "generator": strategy.generator.get_state().tolist(),
        "proposed": getattr(strategy, "proposed", None),
        "parameters": {n: p.detach().double().sum().item() for n, p in nas.named_parameters()},
        "buffers": {n: b.detach().double().sum().item() for n, b in nas.named_buffers() if b.is_floating_point()},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
