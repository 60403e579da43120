"""Score an architecture by its accuracy with weights inherited from a trained supernet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nasframe.buffers import buffers_restored
from nasframe.errors import CheckpointError
from nasframe.evaluators.base import Evaluator
from nasframe.spaces.architecture import Architecture
from nasframe.step import SearchStep, unpack_batch


class WeightSharingEvaluator(Evaluator):
    """Accuracy of the supernet on the given batch under each architecture's path (eval mode).

    The supernet is the module's own; ``checkpoint`` loads trained supernet weights into it first
    (the ``supernet.*`` entries of a nasframe checkpoint, loaded with ``weights_only=True``). With
    ``recalibrate_bn``, BatchNorm statistics are re-estimated on the batch for each path first, as
    one-shot methods commonly do.
    """

    needs_supernet = True

    def __init__(self, checkpoint: str | None = None, recalibrate_bn: bool = False) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.recalibrate_bn = recalibrate_bn
        self._loaded = False

    def _load(self, supernet: torch.nn.Module) -> None:
        if self.checkpoint is None or self._loaded:
            return
        path = Path(self.checkpoint)
        if not path.is_file():
            raise CheckpointError(f"supernet checkpoint {str(path)!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        except Exception as exc:
            raise CheckpointError(f"cannot read supernet checkpoint {str(path)!r}: {exc}") from None
        own = {k.removeprefix("supernet."): v for k, v in state.items() if k.startswith("supernet.")}
        if not own:
            raise CheckpointError(f"checkpoint {str(path)!r} holds no supernet weights")
        supernet.load_state_dict(own)
        self._loaded = True

    @torch.no_grad()
    def score(self, nas: Any, architectures: list[Architecture], batch: Any) -> torch.Tensor:
        supernet = nas.supernet
        self._load(supernet)
        views, targets = unpack_batch(batch, nas.device)
        if targets is None:
            raise ValueError("the weight-sharing evaluator needs labelled batches")
        scores = []
        with buffers_restored(supernet):  # scoring must not change the search's statistics
            for architecture in architectures:
                if self.recalibrate_bn:
                    self._recalibrate(supernet, views[0], architecture)
                supernet.eval()
                logits = SearchStep((views, targets), architecture, supernet, stage="val").logits(0)
                scores.append((logits.argmax(1) == targets).double().mean().item() * 100.0)
        return torch.tensor(scores, dtype=torch.float64)

    @staticmethod
    def _recalibrate(supernet: torch.nn.Module, inputs: torch.Tensor, architecture: Architecture) -> None:
        """BatchNorm statistics of this path on ``inputs`` alone, so a score does not depend on
        which paths were scored before it (or on which DDP rank)."""
        norms = [m for m in supernet.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: after one batch, exactly its statistics
        supernet.train()
        supernet(inputs, architecture)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
