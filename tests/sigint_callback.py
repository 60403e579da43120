"""A callback that presses Ctrl-C on its own process after the first training batch, for
``tests/test_cli.py``'s interrupted-search test (imported by a ``nasframe`` subprocess via PYTHONPATH)."""

import os
import signal

from lightning.pytorch import Callback


class InterruptAfterFirstBatch(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGINT)
