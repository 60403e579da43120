"""The run record: ``history.csv`` and ``summary.json`` in a search's log directory.

``RunRecord`` is a built-in observer plugin that ``NASModule`` registers in every search (a
``RunRecord`` given in a config's ``plugins:`` list replaces the default one, e.g. to name a tabular
benchmark). It writes, on global rank 0, into the trainer's log directory (``<default_root_dir>/
lightning_logs/version_N`` with the default logger, ``default_root_dir`` itself without a logger):

* ``history.csv``: one row per event, in the order they happened, ``kind`` saying what a row is:

  - ``candidate``: an architecture a sample-based strategy had scored (``nasframe_candidates_evaluated``),
    with its ``score``, ``params`` and ``flops`` (from ``nasframe_architecture_cost``; blank where
    the space has no cost model) and, when a tabular benchmark is known, its ``true_accuracy``;
  - ``path``: the path a single-path step trained and its batch accuracy (``score``, %);
  - ``distribution``: one row per (``edge``, ``op``) with the ``probability`` of that operation on
    that edge, for each epoch of a differentiable search;
  - ``board``: one row per prioritized path (``rank``, ``score``, ``flops``, ``params``) for each
    epoch of a Cream search;
  - other kinds a plugin reports through ``nasframe_search_record``: its plain keys as columns.

  ``step`` is the trainer's global step, ``epoch`` its epoch, ``wall_time`` the seconds since the
  search module was built (continued across a resume).
* ``summary.json`` at the end of ``fit``: the final architecture and its cost, the metrics, the
  export's evaluation, the export directory, package versions, the seed and the wall time.

The rows are checkpoint state, and the file is always rewritten from them (to a temporary name,
then renamed), so a search resumed from a checkpoint continues the history of that checkpoint:
rows a killed run wrote after its last checkpoint are not repeated. ``nasframe report RUN_DIR``
draws the record.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nasframe.errors import ArchitectureError, NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.module import Plugin
from nasframe.spaces.architecture import Architecture
from nasframe.tabular.base import TabularBenchmark

if TYPE_CHECKING:
    from lightning.pytorch import Trainer

    from nasframe.module import NASModule

HISTORY = "history.csv"
SUMMARY = "summary.json"
COLUMNS = ("kind", "step", "epoch", "architecture", "score", "true_accuracy", "params", "flops",
           "edge", "op", "probability", "rank", "wall_time")
#: kinds recorded once per epoch: a repeated record of the same epoch (a resume that replays it) replaces the earlier one
PER_EPOCH = ("distribution", "board")
PACKAGES = ("nasframe", "torch", "lightning", "lightly", "torchmetrics", "pluggy")
STATE_KEY = "run_record"


class RunRecord(Plugin):
    """Writes ``history.csv`` and ``summary.json`` of a search (see the module docstring).

    Args:
        benchmark: a tabular benchmark whose ``metric`` is recorded as each architecture's
            ``true_accuracy`` (e.g. a zero-cost search on NAS-Bench-201: its scores against the
            table's accuracy). Default: the benchmark of the search's ``TabularEvaluator``, if any.
        metric: the benchmark's metric (default: the evaluator's, else ``cifar10_test_acc``).
        costs: record each candidate's parameters and FLOPs (``nasframe_architecture_cost``, which
            may build the network once per architecture).
        write_every: seconds between rewrites of ``history.csv`` during the search (it is also
            written at every checkpoint and at the end).
    """

    def __init__(self, benchmark: TabularBenchmark | None = None, metric: str | None = None, costs: bool = True,
                 write_every: float = 10.0) -> None:
        if benchmark is not None and metric is not None:
            benchmark.check_metric(metric)
        if write_every < 0:
            raise NASFrameError(f"RunRecord write_every must be >= 0 seconds, got {write_every}")
        self.benchmark = benchmark
        self.metric = metric
        self.costs = costs
        self.write_every = write_every
        self.rows: list[dict[str, Any]] = []
        self.directory: Path | None = None  # where the record was last written
        self._elapsed_before = 0.0  # wall time of the runs before a resume
        self._started = time.monotonic()
        self._last_write = -math.inf

    # ---- hooks ----------------------------------------------------------------------------------
    @hookimpl(specname="nasframe_setup")
    def setup(self, nas: NASModule) -> None:
        self._started = time.monotonic()

    @hookimpl(specname="nasframe_candidates_evaluated")
    def candidates_evaluated(self, nas: NASModule, architectures: list[Architecture], scores: torch.Tensor) -> None:
        if not _is_global_zero(nas):
            return
        scores = scores.detach().double().cpu()
        scores = scores.unsqueeze(1) if scores.dim() == 1 else scores.reshape(len(architectures), -1)
        where = self._where(nas)
        for architecture, row_scores in zip(architectures, scores.tolist()):
            row = {"kind": "candidate", **where, "architecture": nas.search_space.format(architecture),
                   "score": row_scores[0], **self._cost(nas, architecture),
                   "true_accuracy": self._true_accuracy(nas, architecture)}
            row.update({f"score_{i}": value for i, value in enumerate(row_scores[1:], start=1)})  # further objectives
            self.rows.append(row)
        self._maybe_write(nas)

    @hookimpl(specname="nasframe_search_record")
    def search_record(self, nas: NASModule, record: dict[str, Any]) -> None:
        if not _is_global_zero(nas):
            return
        record = dict(record)
        kind = str(record.pop("kind", "event"))
        where = {**self._where(nas), **{k: record.pop(k) for k in ("step", "epoch") if k in record}}
        if kind in PER_EPOCH:
            self.rows = [r for r in self.rows if not (r["kind"] == kind and r.get("epoch") == where["epoch"])]
        if kind == "path":
            self.rows.append({"kind": kind, **where, "architecture": record.get("architecture"), "score": record.get("accuracy"),
                              "true_accuracy": self._true_accuracy(nas, record.get("architecture"))})
        elif kind == "distribution":
            edges, ops, probabilities = record["edges"], record["ops"], record["probabilities"]
            for edge, row in zip(edges, probabilities):
                for op, probability in zip(ops, row):
                    self.rows.append({"kind": kind, **where, "edge": edge, "op": op, "probability": float(probability)})
        elif kind == "board":
            for rank, entry in enumerate(record["entries"]):
                architecture = entry["architecture"]
                cost = self._cost(nas, architecture)
                self.rows.append({"kind": kind, **where, "rank": rank, "architecture": architecture,
                                  "score": entry.get("accuracy"), "params": cost.get("params"),
                                  "flops": entry.get("flops", cost.get("flops")),
                                  "true_accuracy": self._true_accuracy(nas, architecture)})
        else:  # a plugin's own kind: its scalar keys become columns
            self.rows.append({"kind": kind, **where, **{k: v for k, v in record.items() if _is_scalar(v)}})
        self._maybe_write(nas)

    @hookimpl(specname="nasframe_state_dict")
    def state_dict(self, nas: NASModule) -> dict[str, Any]:
        columns = _columns(self.rows)
        state = {"columns": list(columns), "rows": [[row.get(c) for c in columns] for row in self.rows],
                 "elapsed": self.elapsed()}
        self._write_history(nas)  # the file agrees with the checkpoint just taken
        return {STATE_KEY: state}

    @hookimpl(specname="nasframe_load_state_dict")
    def load_state_dict(self, nas: NASModule, state: dict[str, Any]) -> None:
        own = state.get(STATE_KEY)
        if own is None:  # a checkpoint of an older nasframe: the history starts here
            return
        self.rows = [{c: v for c, v in zip(own["columns"], values) if v is not None} for values in own["rows"]]
        self._elapsed_before = float(own.get("elapsed", 0.0))
        self._started = time.monotonic()

    @hookimpl(specname="nasframe_search_end", trylast=True)  # after the strategies' final records
    def search_end(self, nas: NASModule, architecture: Architecture, export_dir: Path | None) -> None:
        if not _is_global_zero(nas):
            return
        directory = self._write_history(nas)
        if directory is None:
            return
        summary = self.summary(nas, architecture, export_dir)
        text = json.dumps(_finite(summary), indent=2, default=_json_default, allow_nan=False)  # strict JSON: NaN as null
        _write_atomically(directory / SUMMARY, text + "\n")
        print(f"  run record:   {directory}  (view: nasframe report {directory})", flush=True)

    # ---- the summary ------------------------------------------------------------------------------
    def summary(self, nas: NASModule, architecture: Architecture, export_dir: Path | None) -> dict[str, Any]:
        """What ``summary.json`` holds (JSON-able)."""
        trainer = _trainer(nas)
        metrics = {name: _number(value) for name, value in (trainer.callback_metrics.items() if trainer else ())
                   if _number(value) is not None}
        seed = os.environ.get("PL_GLOBAL_SEED")
        return {
            "strategy": type(nas.strategy).__name__,
            "search_space": nas.search_space.config(),
            "architecture": nas.search_space.format(architecture),
            "architecture_value": architecture.to_dict(),
            "cost": self._cost(nas, architecture, always=True) or None,
            "true_accuracy": self._true_accuracy(nas, architecture),
            "metrics": metrics,
            "evaluation": dict(nas.evaluation),
            "search_report": nas.search_report(),
            "export_dir": str(export_dir) if export_dir is not None else None,
            "seed": int(seed) if seed is not None and seed.lstrip("-").isdigit() else None,
            "strategy_seed": getattr(nas.strategy, "seed", None),
            "global_step": int(nas.global_step),
            "epochs": int(nas.current_epoch),  # after fit: the epochs run, a last one cut by max_steps included
            "wall_time_s": round(self.elapsed(), 3),
            "history": {"file": HISTORY, "rows": len(self.rows), "kinds": sorted({r["kind"] for r in self.rows})},
            "versions": package_versions(),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def elapsed(self) -> float:
        """Seconds of search so far, the runs before a resume included."""
        return self._elapsed_before + time.monotonic() - self._started

    # ---- helpers ----------------------------------------------------------------------------------
    def _where(self, nas: NASModule) -> dict[str, Any]:
        trainer = _trainer(nas)
        return {"step": int(nas.global_step) if trainer else len(self.rows), "epoch": int(nas.current_epoch) if trainer else 0,
                "wall_time": round(self.elapsed(), 3)}

    def _cost(self, nas: NASModule, architecture: Architecture | str | None, always: bool = False) -> dict[str, float]:
        if architecture is None or not (self.costs or always):
            return {}
        if isinstance(architecture, str):
            architecture = _parse(nas, architecture)
            if architecture is None:
                return {}
        cost = nas.hook.nasframe_architecture_cost(architecture=architecture)
        return {k: float(cost[k]) for k in ("params", "flops") if cost and cost.get(k) is not None}

    def _benchmark(self, nas: NASModule) -> tuple[TabularBenchmark | None, str]:
        if self.benchmark is not None:
            return self.benchmark, self.metric or "cifar10_test_acc"
        from nasframe.evaluators.tabular import TabularEvaluator

        evaluator = getattr(nas.strategy, "evaluator", None)
        if isinstance(evaluator, TabularEvaluator):
            return evaluator.benchmark, self.metric or evaluator.metric
        return None, ""

    def _true_accuracy(self, nas: NASModule, architecture: Architecture | str | None) -> float | None:
        benchmark, metric = self._benchmark(nas)
        if benchmark is None or architecture is None:
            return None
        if isinstance(architecture, str):
            architecture = _parse(nas, architecture)
            if architecture is None:
                return None
        try:
            return float(benchmark.query(architecture, metric))
        except ArchitectureError:  # not in the table (another space, or a cell the table lacks)
            return None

    def _maybe_write(self, nas: NASModule) -> None:
        if time.monotonic() - self._last_write >= self.write_every:
            self._write_history(nas)

    def _write_history(self, nas: NASModule) -> Path | None:
        """Rewrite ``history.csv`` from the rows (rank 0, with a trainer); returns its directory."""
        trainer = _trainer(nas)
        if trainer is None or not trainer.is_global_zero:
            return None
        directory = log_directory(trainer)
        directory.mkdir(parents=True, exist_ok=True)
        columns = _columns(self.rows)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: _cell(row.get(c)) for c in columns} for row in self.rows)
        _write_atomically(directory / HISTORY, text.getvalue())
        self.directory = directory
        self._last_write = time.monotonic()
        return directory


def log_directory(trainer: Trainer) -> Path:
    """Where a trainer's run record goes: its first logger's directory, else ``default_root_dir``.
    (``Trainer.log_dir`` itself broadcasts between DDP ranks, so it cannot be called on rank 0 alone.)"""
    if trainer.loggers:
        logger = trainer.loggers[0]
        directory = getattr(logger, "log_dir", None) or logger.save_dir
        if directory:
            return Path(directory)
    return Path(trainer.default_root_dir)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a search's result depends on (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``history.csv``, numbers as floats (``step``, ``epoch``, ``rank`` as ints), blanks as None."""
    rows = []
    with Path(path).open(newline="") as handle:
        for raw in csv.DictReader(handle):
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if value is None or value == "":
                    row[key] = None
                elif key in ("step", "epoch", "rank"):
                    row[key] = int(float(value))
                elif key in ("kind", "architecture", "edge", "op"):
                    row[key] = value
                else:
                    try:
                        row[key] = float(value)
                    except ValueError:
                        row[key] = value
            rows.append(row)
    return rows


def _trainer(nas: NASModule) -> Trainer | None:
    try:
        return getattr(nas, "trainer", None)  # a trainer-free host (nasframe.runner) has none
    except RuntimeError:  # a NASModule not attached to a Trainer: steps driven by hand
        return None


def _is_global_zero(nas: NASModule) -> bool:
    trainer = _trainer(nas)
    return trainer is None or trainer.is_global_zero


def _parse(nas: NASModule, text: str) -> Architecture | None:
    try:
        return nas.search_space.parse(text)
    except ArchitectureError:
        return None


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The standard columns, then any others in the order they first appear."""
    extra = dict.fromkeys(k for row in rows for k in row if k not in COLUMNS)
    return [*COLUMNS, *extra]


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "" if value is None else "nan"
    if isinstance(value, float):
        return repr(value)  # every digit: the report's ranks and the Pareto front need them exact
    return value


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return float(value) if value.numel() == 1 else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    return repr(value)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)
