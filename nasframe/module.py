"""``NASModule``: the search loop, driven only by hooks."""

from __future__ import annotations

import itertools
import math
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.optimizer import LightningOptimizer
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nasframe.buffers import recalibrate_batchnorm
from nasframe.data.base import NASDataModule
from nasframe.errors import CheckpointError, NASFrameError
from nasframe.evaluation import KNN_K, evaluate_search
from nasframe.export import Exporter, SafetensorsExporter, check_export_target, export_model
from nasframe.objectives import CrossEntropy, Objective
from nasframe.host import (SearchLimits, check_finite_loss, collect_optimizers, limits_from_trainer, seeded_generator,
                           weighted_loss_terms)
from nasframe.plugins import NASPluginManager, make_plugin_manager, search_components
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.base import SearchSpace
from nasframe.spaces.capabilities import provided
from nasframe.step import SearchStep, new_step, split_batch
from nasframe.strategies.base import SearchStrategy

__all__ = ["NASModule", "SearchStep"]


class Plugin:
    """Base for extra plugin objects given in a config's ``plugins:`` list (observers, overrides).

    Any object with ``nasframe_*`` methods works; subclassing this only lets jsonargparse accept
    it as ``class_path``/``init_args``."""


class NASModule(LightningModule):
    """A neural architecture search as a LightningModule.

    It is the search host that hooks receive as ``nas``: what plugins may use of it is declared by
    ``nasframe.SearchHost`` (``nasframe/host.py``); ``nasframe.runner.SearchRunner`` is the same
    contract without a Trainer.

    Args:
        search_space: the space searched; it is also a plugin implementing the search-space hooks.
        strategy: the search strategy (single-path, differentiable or sample-based).
        objectives: loss-term contributors; default ``[CrossEntropy()]``.
        exporters: writers of the final model; default ``[SafetensorsExporter()]`` (always needed
            by ``nasframe.load_model``).
        plugins: entry-point plugin names that must be present (an unknown name fails, listing the
            installed ones), and plugin objects to register for this run.
        optimizer: the supernet/heads weight optimizer; default SGD(lr 0.025, momentum 0.9, wd 3e-4).
        lr_scheduler: optional scheduler for it, stepped once per epoch.
        export_dir: where the final model is written; default ``<log_dir>/export``. It must not exist
            unless ``overwrite_export`` is set.
        overwrite_export: replace an existing ``export_dir``.
        bn_recalibration_batches: re-estimate the BatchNorm running statistics of the extracted final
            network on this many training batches (through the datamodule's ``eval_transform``: see
            ``NASDataModule.calibration_dataloader``) before it is exported and evaluated; 0 keeps the
            supernet's. A path of a weight-sharing supernet inherits statistics averaged over every
            path trained, which can wreck its eval-mode accuracy; SPOS re-estimates them the same way.
    """

    def __init__(
        self,
        search_space: SearchSpace,
        strategy: SearchStrategy,
        objectives: Sequence[Objective] | None = None,
        exporters: Sequence[Exporter] | None = None,
        plugins: Sequence[str | Plugin] = (),
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        export_dir: str | None = None,
        overwrite_export: bool = False,
        bn_recalibration_batches: int = 0,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False  # strategies drive their own (possibly bi-level) updates
        self.search_space = search_space
        self.strategy = strategy
        self.objectives = nn.ModuleList(list(objectives) if objectives is not None else [CrossEntropy()])
        self.exporters = list(exporters) if exporters is not None else [SafetensorsExporter()]
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.export_dir = export_dir
        self.overwrite_export = overwrite_export
        if isinstance(bn_recalibration_batches, bool) or not isinstance(bn_recalibration_batches, int) or bn_recalibration_batches < 0:
            raise NASFrameError(f"bn_recalibration_batches must be an integer >= 0, got {bn_recalibration_batches!r}")
        self.bn_recalibration_batches = bn_recalibration_batches
        self.final_architecture: Architecture | None = None
        self.exported_to: Path | None = None
        self.evaluation: dict[str, float] = {}  # the export's quality on labelled validation images (nasframe.evaluation)
        self.example_input_shape: tuple[int, ...] | None = None
        self._optimizer_names: list[str] = []
        self._train_batches_with_loss = self._unlabelled_train_batches = 0  # per epoch

        self._plugin_manager = self._make_plugin_manager(plugins)
        from nasframe.progress import quiet_lightning
        from nasframe.record import RunRecord  # imports this module

        quiet_lightning()  # under a plain Trainer too: e.g. no "no optimizer" warning for a search that trains nothing
        # every search keeps a run record (history.csv, summary.json); one given in `plugins` replaces the default
        self.run_record = next((p for p in plugins if isinstance(p, RunRecord)), None) or RunRecord()
        if not self._plugin_manager.is_registered(self.run_record):
            self._plugin_manager.register(self.run_record, name="nasframe-run-record")
        self.supernet = self.hook.nasframe_build_supernet() if strategy.needs_supernet else None
        self.hook.nasframe_setup(nas=self)

    def _make_plugin_manager(self, plugins: Sequence[str | Plugin]) -> NASPluginManager:
        return make_plugin_manager(search_components(self.search_space, self.strategy, self.objectives, self.exporters), plugins)

    @property
    def hook(self) -> Any:
        """The hook caller: ``nas.hook.nasframe_<name>(**kwargs)``."""
        return self._plugin_manager.hook

    @property
    def plugin_manager(self) -> NASPluginManager:
        return self._plugin_manager

    # ---- helpers for strategies ---------------------------------------------------------------
    def new_step(self, batch: Any, architecture: Any, stage: str = "train", network: nn.Module | None = None) -> SearchStep:
        return new_step(self.supernet, batch, architecture, stage, network)

    def compute_loss(self, step: SearchStep, log: bool = True) -> torch.Tensor:
        """Sum the objectives' weighted loss terms for ``step`` and log each as ``<stage>/<name>``
        (``log=False``: an auxiliary pass, neither logged nor counted; see ``SearchHost.compute_loss``)."""
        terms, total = weighted_loss_terms(self._plugin_manager, step)
        if total is None:
            if (step.stage == "train" and step.targets is not None and not bool(step.labelled.any())
                    and self._datamodule_label_fraction() != 0.0):
                # a partly labelled dataset can hand a small batch no label: it teaches supervised
                # objectives nothing, yet the step runs (a zero loss) so that DDP ranks stay in step;
                # an epoch of nothing but such batches is an error (on_train_epoch_end)
                self._unlabelled_train_batches += 1 if log else 0
                return step.logits(0).sum() * 0.0
            names = [type(o).__name__ for o in self.objectives]
            labels = "no labels" if step.targets is None else f"{int(step.labelled.sum())} labelled"
            raise NASFrameError(
                f"no objective produced a loss for this {step.stage} batch ({len(step.views)} view(s), {labels}); "
                f"objectives: {names}. Self-supervised objectives need two views, supervised ones need labels."
            )
        check_finite_loss(total, terms, step.stage, self.global_step)
        if not log:
            return total
        if step.stage == "train":
            self._train_batches_with_loss += 1
        on_step = step.stage != "val"
        for name, value in terms.items():
            self.log(f"{step.stage}/{name}", value.detach(), batch_size=step.batch_size, on_step=on_step, on_epoch=True)
        self.log(f"{step.stage}/loss", total.detach(), batch_size=step.batch_size, on_step=on_step, on_epoch=True,
                 prog_bar=step.stage == "train")
        return total

    def _datamodule_label_fraction(self) -> float | None:
        return getattr(self.datamodule, "label_fraction", None)

    # ---- the rest of the SearchHost protocol (nasframe.host) ---------------------------------------
    @property
    def datamodule(self) -> Any:
        """The trainer's datamodule, or ``None`` (no trainer, or a search without data)."""
        return getattr(self._trainer, "datamodule", None) if self._trainer is not None else None

    @property
    def is_global_zero(self) -> bool:
        return self._trainer is None or self.trainer.is_global_zero

    @property
    def world_size(self) -> int:
        return 1 if self._trainer is None else self.trainer.world_size

    def search_limits(self) -> SearchLimits:
        """The trainer's ``max_steps``, ``max_epochs`` and batches per epoch (all ``None`` without a trainer)."""
        return limits_from_trainer(self.trainer) if self._trainer is not None else SearchLimits(None, None, None)

    def generator_for(self, architecture: Architecture, salt: str = "", device: torch.device | str | None = None) -> torch.Generator:
        """A generator seeded from the strategy's seed, ``architecture`` and ``salt`` only (``SearchHost.generator_for``)."""
        return seeded_generator(getattr(self.strategy, "seed", 0), architecture, salt, device)

    def raw_optimizer(self, name: str) -> torch.optim.Optimizer:
        """The torch optimizer under ``name``, outside Lightning's wrapper: its steps do not count as ``global_step``."""
        optimizer = self.optimizer(name)
        return optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer

    def count_step(self, name: str | None = None) -> None:
        """Count one step of optimizer ``name`` (default: Lightning's stand-in optimizer of a search
        with none) that updates nothing, so that ``global_step``, ``max_steps`` and the checkpoint
        cadence count this search step."""
        optimizer = self.optimizer(name) if name is not None else self.optimizers()
        count_optimizer_step(optimizer[0] if isinstance(optimizer, list) else optimizer)

    def batch_accuracy(self, step: SearchStep) -> float | None:
        """Top-1 accuracy (%) of ``step``'s logits on the labelled samples of every DDP rank's batch
        together, or None when no rank has a label. Every rank joins the reduction, even one whose
        batch happens to hold no labels, and gets the same number back."""
        mask = step.labelled
        if mask is None:  # a label-free dataset: the same on every rank
            return None
        logits = step.logits(0).detach()
        correct = (logits[mask].argmax(1) == step.targets[mask]).sum()
        counts = torch.stack([correct, mask.sum()]).float()
        if self._trainer is not None and self.trainer.world_size > 1:
            counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        if counts[1] == 0:
            return None
        return float(counts[0] / counts[1]) * 100.0

    def all_ranks_mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over DDP ranks (itself on one process): decisions taken from it agree on every rank."""
        if self._trainer is None or self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.reduce(value.detach().float(), reduce_op="mean")

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (``value`` itself on one process)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.broadcast(value, src=0)

    def map_across_ranks(self, items: Sequence[Any], score: Callable[[list[Any]], torch.Tensor]) -> torch.Tensor:
        """``score(items)`` with the items divided between DDP ranks: rank r scores ``items[r::world]``
        and every rank receives all scores, in item order, as a 1-D float64 CPU tensor (``score``
        itself on one process). ``score`` returns one number per item; a rank with no share skips it."""
        items = list(items)
        world = 1 if self._trainer is None else self.trainer.world_size
        if world == 1:
            return score(items).double().cpu()
        rank = self.trainer.global_rank
        share = math.ceil(len(items) / world)
        local = torch.full((share,), math.nan, dtype=torch.float64)
        mine = items[rank::world]
        if mine:
            local[: len(mine)] = score(mine).double().cpu()
        gathered = self.trainer.strategy.all_gather(local.to(self.device)).cpu()  # (world, share)
        return gathered.t().reshape(-1)[: len(items)]  # item i was scored by rank i % world

    def optimizer(self, name: str) -> Any:
        """The optimizer registered under ``name`` (``"weights"`` or a strategy's own)."""
        if name not in self._optimizer_names:
            raise NASFrameError(f"no optimizer named {name!r}; configured: {self._optimizer_names}")
        optimizers = self.optimizers()
        optimizers = optimizers if isinstance(optimizers, list) else [optimizers]
        return optimizers[self._optimizer_names.index(name)]

    def log_metrics(self, metrics: dict[str, float], prog_bar: bool = False) -> None:
        """Log ``{name: number}`` at this step (``prog_bar``: also show them on the progress bar);
        nothing without a trainer (steps driven by hand in tests and notebooks)."""
        if self._trainer is None:
            return
        for name, value in metrics.items():
            self.log(name, value, on_step=True, on_epoch=False, batch_size=1, prog_bar=prog_bar)

    def stop_search(self) -> None:
        """Ask the trainer to stop after this step (budget spent)."""
        if self._trainer is not None:
            self.trainer.should_stop = True

    # ---- LightningModule ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, architecture: Any = None) -> torch.Tensor:
        architecture = architecture if architecture is not None else self.hook.nasframe_current_architecture(nas=self)
        if self.supernet is None:
            raise NASFrameError("this search has no supernet to run; export the final architecture and train it")
        return self.supernet(x, architecture)

    def configure_optimizers(self) -> Any:
        weights = [p for name, p in self.named_parameters()
                   if not name.startswith("strategy.") and name != "_ddp_anchor" and p.requires_grad]
        configured = collect_optimizers(self, self._plugin_manager, weights, self.optimizer_factory, self.lr_scheduler_factory)
        self._optimizer_names = list(configured)
        return [v if isinstance(v, dict) else {"optimizer": v} for v in configured.values()] or None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if isinstance(datamodule, NASDataModule):
            datamodule.check_fits(self.search_space)  # data the space cannot take fails here, before any work
        if stage == "fit":
            for checkpoint in self.trainer.checkpoint_callbacks:
                if isinstance(checkpoint, ModelCheckpoint) and checkpoint.save_last is None:
                    checkpoint.save_last = True  # what `--ckpt_path last` resumes from
            if self.trainer.is_global_zero:
                check_export_target(self._default_export_dir(), self.overwrite_export, *self._export_guard())  # before any work
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy):
            # A single-path step leaves most of the supernet unused, so DDP must be built with
            # find_unused_parameters=True: NASTrainer asks for it (nasframe.trainer); a plain
            # Trainer is warned in on_train_start.
            if not any(p.requires_grad for p in self.parameters()):
                # DDP refuses a module with nothing to train (a tabular search): give it one inert scalar
                self._ddp_anchor = nn.Parameter(torch.zeros(()))

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.example_input_shape is None:
            first = batch["weights"] if isinstance(batch, dict) else batch
            views, _ = split_batch(first)
            if isinstance(views[0], torch.Tensor) and views[0].dim() >= 2:
                self.example_input_shape = (1, *views[0].shape[1:])
        result = self.hook.nasframe_search_step(nas=self, batch=batch, batch_idx=batch_idx)
        if not self._optimizer_names:
            # Nothing trainable (e.g. a tabular search): count a step of Lightning's stand-in optimizer so that
            # global_step, max_steps and checkpointing count search steps here too.
            self.count_step()
        return result

    def on_train_start(self) -> None:
        wrapped = self.trainer.strategy.model
        if isinstance(wrapped, DistributedDataParallel) and not wrapped.find_unused_parameters and self.supernet is not None:
            rank_zero_warn("DDP was built with find_unused_parameters=False: a search step that trains one path of the "
                           "supernet leaves the other paths' parameters without gradients, which DDP then waits for. "
                           "Use nasframe.NASTrainer (it asks for find_unused_parameters=True), or "
                           "Trainer(strategy='ddp_find_unused_parameters_true').")

    def on_train_epoch_start(self) -> None:
        self._train_batches_with_loss = self._unlabelled_train_batches = 0

    def on_train_epoch_end(self) -> None:
        counts = torch.tensor([self._unlabelled_train_batches, self._train_batches_with_loss], dtype=torch.float64)
        if self.trainer.world_size > 1:  # pooled, so every rank decides alike
            counts = self.trainer.strategy.reduce(counts.to(self.device), reduce_op="sum").cpu()
        if counts[0] > 0 and counts[1] == 0:
            names = [type(o).__name__ for o in self.objectives]
            raise NASFrameError(f"no training batch of epoch {self.current_epoch} held a labelled image, so the objectives "
                                f"{names} never produced a loss; raise the data's label_fraction or add a "
                                "self-supervised objective")
        schedulers = self.lr_schedulers()
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers] if schedulers else []:
            scheduler.step()

    def train_dataloader(self) -> DataLoader:
        """Used only when no datamodule is given (searches on a tabular benchmark need no data):
        the step index as batch, 1000 steps per epoch (Lightning skips ``None`` batches)."""
        return DataLoader(range(1000), batch_size=None)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        if self.supernet is None:
            return
        architecture = self.hook.nasframe_current_architecture(nas=self)
        step = self.new_step(batch, architecture, stage="val")
        self.compute_loss(step)
        accuracy = self.batch_accuracy(step)
        if accuracy is not None:
            self.log("val/accuracy", accuracy, batch_size=int(step.labelled.sum()), on_epoch=True, prog_bar=True)

    def on_fit_end(self) -> None:
        self._buffers_from_rank_zero()
        architecture = self.decide()
        directory = None
        if self.trainer.is_global_zero:
            network = self.final_network(architecture)  # extracted once, for the export and the summary
            directory = self.export(self._default_export_dir(), network=network)
            self.evaluation = evaluate_search(self, architecture, network)
            for logger in self.trainer.loggers:  # self.log is closed in on_fit_end; the loggers finalize after it
                logger.log_metrics({**self.evaluation, **self.search_report()}, step=self.global_step)
            print(self.summary(architecture, directory, network), flush=True)  # the result: stdout, as `nasframe export` prints it
        self.hook.nasframe_search_end(nas=self, architecture=architecture, export_dir=directory)

    def _buffers_from_rank_zero(self) -> None:
        """DDP averages gradients, not BatchNorm statistics: each rank's last steps (and forwards
        outside DDP, such as teachers and evaluators) leave its own. Rank 0's go to every rank, so
        all ranks end with the model that rank 0 exports and checkpoints."""
        if self._trainer is None or self.trainer.world_size == 1 or not torch.distributed.is_initialized():
            return
        for buffer in self.buffers():
            torch.distributed.broadcast(buffer.data, src=0)

    # ---- the result ---------------------------------------------------------------------------------
    def decide(self) -> Architecture:
        """The final architecture, identical on every rank (rank 0's decision is broadcast)."""
        architecture = self.hook.nasframe_final_architecture(nas=self)
        if architecture is None:
            raise NASFrameError("the strategy returned no final architecture (did the search evaluate anything?)")
        if self._trainer is not None and self.trainer.world_size > 1:
            architecture = Architecture.from_dict(self.trainer.strategy.broadcast(architecture.to_dict(), src=0))
        self.final_architecture = self.search_space.validate(architecture)
        return self.final_architecture

    def final_network(self, architecture: Architecture, datamodule: Any = None) -> nn.Module:
        """The standalone network: extracted with the supernet's weights (BatchNorm statistics
        re-estimated when ``bn_recalibration_batches`` asks, on ``datamodule``, default the
        trainer's), or freshly built."""
        if self.supernet is not None:
            network = self.hook.nasframe_extract_network(supernet=self.supernet, architecture=architecture)
            if self.bn_recalibration_batches:
                self.recalibrate_batchnorm(network, datamodule)
        else:
            # fresh weights from their own seed, not from whatever the search left in the global RNG:
            # the same search exports the same network, resumed or not
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(os.environ.get("PL_GLOBAL_SEED", 0)))
                network = self.hook.nasframe_build_network(architecture=architecture)
        return network.cpu().eval()

    def recalibrate_batchnorm(self, network: nn.Module, datamodule: Any = None) -> int:
        """Re-estimate ``network``'s BatchNorm statistics on the first ``bn_recalibration_batches``
        batches of ``datamodule``'s ``calibration_dataloader`` (its ``train_dataloader`` when it has
        none); returns the number of batches used."""
        datamodule = datamodule if datamodule is not None else getattr(self._trainer, "datamodule", None)
        if datamodule is None:
            raise NASFrameError("bn_recalibration_batches needs the training data: fit with a datamodule, "
                                "or give `nasframe export` the config's data")
        loader = getattr(datamodule, "calibration_dataloader", datamodule.train_dataloader)()
        batches = itertools.islice(iter(loader), self.bn_recalibration_batches)
        return recalibrate_batchnorm(network, (split_batch(b["weights"] if isinstance(b, dict) else b)[0][0] for b in batches))

    def example_input(self) -> torch.Tensor | None:
        shape = self.example_input_shape or provided(self.search_space, "input_shape")
        if shape is None:
            return None
        shape = tuple(shape) if len(shape) == 4 else (1, *shape)
        return torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def export(self, directory: str | Path, overwrite: bool | None = None, network: nn.Module | None = None) -> Path:
        """Write the final architecture's standalone model (``network``, default ``final_network``)
        into ``directory`` (atomically)."""
        architecture = self.final_architecture or self.decide()
        network = network if network is not None else self.final_network(architecture)
        guard = self._export_guard() if self._trainer is not None else ((), ())
        self.exported_to = export_model(
            self.hook, self.search_space, architecture, network, self.example_input(),
            Path(directory), self.overwrite_export if overwrite is None else overwrite, *guard,
        )
        return self.exported_to

    def summary(self, architecture: Architecture, directory: Path | None, network: nn.Module | None = None) -> str:
        network = network if network is not None else self.final_network(architecture)
        parameters = sum(p.numel() for p in network.parameters())
        lines = [
            "nasframe search finished",
            f"  strategy:     {type(self.strategy).__name__}",
            f"  architecture: {self.search_space.format(architecture)}",
            f"  parameters:   {parameters:,}",
        ]
        for name in ("val/accuracy", "search/best_score", "search/evaluated"):
            if self._trainer is not None and name in self.trainer.callback_metrics:
                lines.append(f"  {name + ':':13} {float(self.trainer.callback_metrics[name]):.4g}")
        if "knn/accuracy" in self.evaluation:
            lines.append(f"  knn/accuracy: {self.evaluation['knn/accuracy']:.1f} "
                         f"(at init {self.evaluation['knn/accuracy_at_init']:.1f}; validation images, {KNN_K} neighbours)")
            if "export/val_accuracy" in self.evaluation:
                lines.append(f"  export/val_accuracy: {self.evaluation['export/val_accuracy']:.1f} (its own classifier head)")
        lines += [f"  {name}: {int(value) if value.is_integer() else f'{value:.4g}'}" for name, value in self.search_report().items()]
        if directory is not None:
            lines.append(f"  exported to:  {directory}  (load with nasframe.load_model)")
        return "\n".join(lines)

    def _export_guard(self) -> tuple[list[Path], list[Path]]:
        """What an export must not overlap (the run's log and checkpoint directories) and must not
        contain (the run's root): ``overwrite_export`` there would destroy the run itself."""
        trainer = self.trainer
        protected = [Path(c.dirpath) for c in trainer.checkpoint_callbacks if getattr(c, "dirpath", None)]
        if self.export_dir is not None and trainer.loggers and trainer.log_dir:
            protected.append(Path(trainer.log_dir))  # the default export lives inside it, by design
        return protected, [Path(trainer.default_root_dir)]

    def search_report(self) -> dict[str, float]:
        """Figures the plugins report about the search (``nasframe_search_report``), by name."""
        return {name: float(value) for name, value in self._plugin_manager.collect("nasframe_search_report", nas=self).items()}

    def _default_export_dir(self) -> Path:
        if self.export_dir is not None:
            return Path(self.export_dir)
        root = self.trainer.log_dir or self.trainer.default_root_dir
        return Path(root) / "export"

    # ---- checkpoint ---------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = self._plugin_manager.collect("nasframe_state_dict", nas=self)
        checkpoint["nasframe"] = {
            "state": state,
            "search_space": self.search_space.config(),
            "example_input_shape": list(self.example_input_shape) if self.example_input_shape else None,
            "optimizer_names": self._optimizer_names,
            "global_rng": _global_rng_state(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Lightning calls this before it loads the weights: a checkpoint of another config fails
        # here in one line, not in load_state_dict's list of every key.
        path = self._trainer.ckpt_path if self._trainer is not None else None
        saved = checkpoint.get("nasframe")
        if saved is None:
            raise CheckpointError(f"{_checkpoint_name(path)} holds no nasframe search state; was it written by a NASModule?")
        _check_same_search_space(self, saved, path)
        shape = saved.get("example_input_shape")
        self.example_input_shape = tuple(shape) if shape else None
        if saved.get("global_rng"):
            _set_global_rng_state(saved["global_rng"])
        self.hook.nasframe_load_state_dict(nas=self, state=saved["state"])
        if self.strict_loading:  # as Lightning will load them next; checked last, after plugins restored their state
            _check_same_weights(self, checkpoint.get("state_dict", {}), path)


def count_optimizer_step(optimizer: Any) -> None:
    """Count a step of ``optimizer`` that updates nothing (``NASModule.count_step``).

    Lightning offers no public call that counts an optimizer step without stepping: under 16-bit
    mixed precision ``LightningOptimizer.step`` goes through a gradient scaler, which refuses an
    optimizer without gradients (and there is nothing to update). So only the counting that
    ``LightningOptimizer.step`` wraps around the update runs; these two private calls are the
    only ones in nasframe, and plugins reach them through the host. A plain optimizer (no
    trainer) is stepped: without gradients that updates nothing."""
    if isinstance(optimizer, LightningOptimizer) and hasattr(optimizer, "_on_before_step"):
        optimizer._on_before_step()
        optimizer._on_after_step()
    else:
        optimizer.step()


def _global_rng_state() -> dict[str, Any]:
    """torch, numpy and Python RNG states (augmentations draw from them) in weights-only-loadable form."""
    version, internal, gauss = random.getstate()
    numpy_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss],
            "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]]}


def _set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a nasframe checkpoint with ``weights_only=True``; a damaged one fails naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        # torch's weights-only refusal is a paragraph of advice; its reason follows this marker
        _, refused, detail = str(exc).partition("WeightsUnpickler error:")
        lines = [line.strip() for line in (detail if refused else str(exc)).splitlines() if line.strip()]
        reason = ("it holds objects a weights-only load refuses: " if refused else "") + (lines[0] if lines else type(exc).__name__)
        reason = reason[:300]
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated, tampered with or not a checkpoint: {reason}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "nasframe" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a nasframe search checkpoint (no 'state_dict' and 'nasframe' entries)")
    return checkpoint


def load_search_checkpoint(nas: NASModule, path: str | Path) -> dict[str, Any]:
    """Load a nasframe checkpoint's weights and search state into ``nas`` (``weights_only=True``),
    in Lightning's order: search state, then weights. A checkpoint of another config fails naming
    the file and what differs."""
    checkpoint = read_checkpoint(path)
    _check_same_search_space(nas, checkpoint["nasframe"], path)
    _check_same_weights(nas, checkpoint["state_dict"], path)
    nas.on_load_checkpoint(checkpoint)
    nas.load_state_dict(checkpoint["state_dict"])
    return checkpoint


def _checkpoint_name(path: str | Path | None) -> str:
    return f"checkpoint {str(path)!r}" if path is not None else "the checkpoint"


def _check_same_search_space(nas: NASModule, saved: dict[str, Any], path: str | Path | None) -> None:
    """The space's ``class_path``/``init_args`` stored in the checkpoint must be this config's."""
    theirs, ours = saved.get("search_space"), nas.search_space.config()
    if theirs is None:
        return
    prefix = f"{_checkpoint_name(path)} was written for a different search space"
    if theirs.get("class_path") != ours["class_path"]:
        raise CheckpointError(f"{prefix}: {theirs.get('class_path')} in the checkpoint, {ours['class_path']} in this config")
    their_args, our_args = _plain(theirs.get("init_args", {})), _plain(ours["init_args"])
    unset = "unset"
    differences = [f"{key} {their_args.get(key, unset)!r} in the checkpoint, {our_args.get(key, unset)!r} in this config"
                   for key in sorted(set(their_args) | set(our_args)) if their_args.get(key, unset) != our_args.get(key, unset)]
    if differences:
        raise CheckpointError(f"{prefix}: {'; '.join(differences)}")


def _plain(value: Any) -> Any:
    """Tuples as lists: a YAML list and a default tuple are the same config."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def _check_same_weights(nas: NASModule, state_dict: dict[str, Any], path: str | Path | None) -> None:
    """What a strict ``load_state_dict`` would reject (another strategy or objectives), as one line
    naming the first few keys."""
    own = nas.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    reshaped = [f"{key} {tuple(state_dict[key].shape)} in the checkpoint, {tuple(value.shape)} in this config"
                for key, value in own.items()
                if key in state_dict and isinstance(value, torch.Tensor) and isinstance(state_dict[key], torch.Tensor)
                and value.shape != state_dict[key].shape]
    problems = [f"{what} {_first(items)}" for what, items in (("missing weights", missing), ("unexpected weights", unexpected),
                                                               ("other shapes:", reshaped)) if items]
    if problems:
        raise CheckpointError(f"{_checkpoint_name(path)} does not match this configuration (another strategy, objectives "
                              f"or space?): {'; '.join(problems)}")


def _first(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more

