"""A callback that SIGKILLs its own process after N training batches: a crash with no cleanup and no
final checkpoint. Importable by the subprocesses of the resume tests (``tests/`` is on their path)."""

import os
import signal

from lightning.pytorch import Callback


class KillAfterBatches(Callback):
    def __init__(self, batches: int) -> None:
        self.batches, self.seen = batches, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.seen += 1  # batches, not global_step: a search without optimizer never advances global_step
        if self.seen >= self.batches:
            os.kill(os.getpid(), signal.SIGKILL)
