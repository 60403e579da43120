"""The ``nasframe`` console script: LightningCLI with nasframe's plugins loaded and an ``export`` subcommand.

    nasframe fit --config examples/quickstart.yaml
    nasframe fit --config examples/quickstart.yaml --print_config
    nasframe export --config examples/quickstart.yaml --ckpt_path runs/.../last.ckpt --export_dir my_model
    nasframe list [--json] [--strict]     # installed plugins and what each adds
    nasframe report RUN_DIR [--out DIR]   # figures and report.html of a search's run record
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.accelerators import AcceleratorRegistry
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import TensorBoardLogger

from nasframe import listing
from nasframe.errors import NASFrameError
from nasframe.module import read_checkpoint
from nasframe.plugins import NASPluginManager
from nasframe import report as run_report
from nasframe.progress import quiet_lightning
from nasframe.trainer import NASTrainer


class NASFrameCLI(LightningCLI):
    """LightningCLI whose optimizers come from the model's config: searches configure their own
    (bi-level) optimizers, so LightningCLI must not replace ``configure_optimizers``."""

    def __init__(self, args: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_class", NASTrainer)
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault("save_config_callback", SaveAndLogConfig)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        quiet_lightning()
        if args is not None:  # given on purpose (tests, scripts): the process's own argv is not meant
            warnings.filterwarnings("ignore", message=r"LightningCLI's args parameter is intended to run from within Python")
        # datamodule_class=None keeps `data:` optional: tabular searches need none
        super().__init__(LightningModule, None, args=args, **kwargs)

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "export": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="CPU threads for torch's operators (torch.set_num_threads). Tiny networks run "
                                 "fastest on 1; default: torch's own choice (OMP_NUM_THREADS or the core count)")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # Checked on the parsed config, so every source of a value counts (command line, --config
        # files, `fit:`-nested files), before LightningCLI reads the checkpoint or builds anything.
        subcommand = self.config.get("subcommand")
        if subcommand is not None:
            check_parsed_config(self.config[subcommand])
            threads = self.config[subcommand].get("threads")
            if threads is not None:
                torch.set_num_threads(threads)  # before any tensor work: the thread count changes the result

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The Trainer validates its arguments as it is built; what it rejects is a config error."""
        try:
            return super().instantiate_trainer(**kwargs)
        except NASFrameError:
            raise
        except (MisconfigurationException, ValueError, TypeError) as exc:
            raise NASFrameError(f"trainer: {exc}") from None


class SaveAndLogConfig(SaveConfigCallback):
    """Saves the resolved config as ``config.yaml`` in the log directory, as Lightning does, and
    logs it to every logger as hyperparameters (``hparams.yaml``). TensorBoard's HPARAMS tab gets
    them with the search's final metrics once ``fit`` ends (its table needs metrics to show a run)."""

    hyperparameters: dict[str, Any] | None = None

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        self.hyperparameters = {k: v for k, v in config.items() if k not in ("config", "ckpt_path")}
        for logger in trainer.loggers:
            logger.log_hyperparams(self.hyperparameters)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit" or self.hyperparameters is None or trainer.interrupted:
            return
        metrics = {**{k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
                   **getattr(pl_module, "evaluation", {})}
        metrics = {k: v for k, v in metrics.items() if math.isfinite(v)}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and metrics:
                logger.log_hyperparams(self.hyperparameters, metrics=metrics, step=trainer.global_step)


def check_parsed_config(config: Namespace) -> None:
    """What jsonargparse's types let through but would fail later: a damaged checkpoint, an
    accelerator this machine lacks, Trainer counters Lightning divides by during training."""
    threads = config.get("threads")
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise NASFrameError(f"threads must be a positive integer or null, got {threads!r}")
    ckpt_path = config.get("ckpt_path")
    if ckpt_path is not None and not _is_ckpt_keyword(str(ckpt_path)):
        read_checkpoint(ckpt_path)  # weights only: a tampered file cannot run code
    trainer = config.get("trainer") or Namespace()
    _check_accelerator(trainer.get("accelerator"))
    for name in ("check_val_every_n_epoch", "val_check_interval"):  # Lightning accepts 0, then divides by it
        value = trainer.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            accepted = "a positive integer or null" if name == "check_val_every_n_epoch" else \
                "a positive number of batches or a fraction of an epoch in (0.0, 1.0]"
            raise NASFrameError(f"trainer.{name} must be {accepted}, got {value}")


def _is_ckpt_keyword(value: str) -> bool:
    """Lightning's ``ckpt_path`` keywords, which name no file (``nasframe export`` resolves ``last``)."""
    return value in ("last", "best", "hpc") or value.lower() == "registry" or value.lower().startswith("registry:")


def _check_accelerator(name: Any) -> None:
    """Lightning reports a missing accelerator inconsistently ('No supported gpu backend found!', a
    failed import for tpu); name it and what this machine has instead."""
    if not isinstance(name, str) or name in ("auto", "cpu"):
        return  # an Accelerator object, or always available
    registry = AcceleratorRegistry.available_accelerators()
    available = sorted(n for n in registry if AcceleratorRegistry[n]["accelerator"].is_available())
    wanted = {"gpu": {"cuda", "mps"}}.get(name, {name})
    if wanted & registry and not wanted & set(available):  # an unknown name is Lightning's to reject
        raise NASFrameError(f"trainer.accelerator {name!r} is not available on this machine; available: {', '.join([*available, 'auto'])}")


def _option_values(args: list[str], *names: str) -> list[str]:
    values = []
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                values.append(args[i + 1])
            elif arg.startswith(name + "="):
                values.append(arg.partition("=")[2])
    return values


def check_input_files(args: list[str]) -> None:
    """Fail naming the file when a ``--config`` is missing or not YAML: jsonargparse would not
    name it. (``ckpt_path`` is checked once parsed, wherever it was given: ``check_parsed_config``.)"""
    for path in _option_values(args, "-c", "--config"):
        if not Path(path).is_file():
            raise NASFrameError(f"config file {path!r} does not exist")
        try:
            yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as exc:
            raise NASFrameError(f"config file {path!r} is not valid YAML: {exc}") from None


def _tool_commands() -> dict[str, Callable[[list[str]], int]]:
    """Subcommands that run no search (no LightningCLI): name -> ``main(argv) -> exit status``."""
    return {"list": listing.main, "report": run_report.main}


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``nasframe`` console script. A user's error prints one line and exits 1;
    Ctrl-C exits 130 after Lightning's shutdown, with no export (the search did not finish)."""
    argv = sys.argv[1:] if args is None else list(args)
    tools = _tool_commands()
    if argv and argv[0] in tools:
        try:
            raise SystemExit(tools[argv[0]](argv[1:]))
        except NASFrameError as exc:
            print(f"nasframe: error: {_one_line(str(exc))}", file=sys.stderr)
            raise SystemExit(1) from None
    with _recording_sigint() as interrupted:
        try:
            check_input_files(sys.argv[1:] if args is None else args)
            # Importing the plugin packages first lets configs name their classes by short name.
            NASPluginManager().load_entry_point_plugins()
            NASFrameCLI(args=args)
        except Exception as exc:
            user_error = _user_error(exc)
            if user_error is None:
                raise
            print(f"nasframe: error: {_one_line(user_error)}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:  # outside Trainer.fit: nothing to shut down
            _exit_interrupted()
        except SystemExit:
            if interrupted:  # Lightning turns Ctrl-C into sys.exit(1) after its graceful shutdown
                _exit_interrupted()
            raise
        if interrupted:  # a Lightning version that swallows Ctrl-C returns from fit without on_fit_end
            _exit_interrupted()


@contextmanager
def _recording_sigint() -> Iterator[list[int]]:
    """Ctrl-C raises KeyboardInterrupt as usual, and is also recorded in the yielded list, since
    Lightning catches the KeyboardInterrupt itself."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # handlers can only be set from the main thread
        return

    def on_sigint(signum: int, frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_interrupted() -> None:
    print("nasframe: interrupted", file=sys.stderr)
    raise SystemExit(130) from None  # 128 + SIGINT, as a shell reports it


def _user_error(exc: BaseException) -> str | None:
    """The message of a user's error inside ``exc``: our own (jsonargparse wraps what a class raises
    while it is instantiated), else a Lightning misconfiguration found as a fit starts."""
    chain = _exception_chain(exc)
    for cause in chain:
        if isinstance(cause, NASFrameError):
            return str(cause)
    for cause in chain:
        if isinstance(cause, MisconfigurationException):
            return str(cause)
    return None


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or while handling, breadth first, each once."""
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        cause = pending.pop(0)
        if cause is not None and not any(cause is seen for seen in chain):
            chain.append(cause)
            pending += [cause.__cause__, cause.__context__]
    return chain


def _one_line(message: str) -> str:
    return " ".join(line.strip() for line in message.splitlines() if line.strip())


if __name__ == "__main__":
    main()
