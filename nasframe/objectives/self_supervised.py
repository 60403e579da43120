"""Self-supervised objectives on two augmented views, built from Lightly's losses and heads."""

from __future__ import annotations

import copy

import torch
from lightly.loss import NegativeCosineSimilarity, NTXentLoss
from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead, SimCLRProjectionHead
from lightly.models.utils import update_momentum

from nasframe.errors import NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.objectives.base import Objective
from nasframe.spaces.capabilities import require
from nasframe.step import SearchStep


def _feature_dim(nas) -> int:
    if nas.supernet is None:
        raise NASFrameError("a self-supervised objective without feature_dim takes it from the supernet, and this search "
                            "has none; give feature_dim explicitly")
    return int(require(nas.supernet, "feature_dim", "a self-supervised objective", hint="Or give feature_dim explicitly"))


class SimCLR(Objective):
    """SimCLR's InfoNCE (Lightly ``NTXentLoss``) on a projection of the pooled features of two views.

    The head is Lightly's ``SimCLRProjectionHead``: Linear(D, hidden) -> ReLU -> Linear(hidden, out),
    with D the network's ``feature_dim`` and ``hidden_dim`` defaulting to D. Batches must carry two
    views per image (e.g. ``lightly.transforms.SimCLRTransform`` as the datamodule's transform).
    """

    def __init__(
        self,
        temperature: float = 0.07,
        output_dim: int = 128,
        hidden_dim: int | None = None,
        feature_dim: int | None = None,
        batch_norm: bool = False,
        weight: float = 1.0,
        stages: tuple[str, ...] = ("train", "architecture", "val"),
    ) -> None:
        super().__init__(weight, stages)
        self.loss = NTXentLoss(temperature=temperature)
        self._head_args = (hidden_dim, output_dim, batch_norm)
        self.head = self._make_head(feature_dim) if feature_dim else None

    def _make_head(self, feature_dim: int) -> SimCLRProjectionHead:
        hidden_dim, output_dim, batch_norm = self._head_args
        return SimCLRProjectionHead(feature_dim, hidden_dim or feature_dim, output_dim, batch_norm=batch_norm)

    @hookimpl(specname="nasframe_setup")
    def setup(self, nas) -> None:
        if self.head is None:
            self.head = self._make_head(_feature_dim(nas))

    def loss_terms(self, step: SearchStep) -> dict[str, torch.Tensor]:
        if len(step.views) < 2:
            return {}
        z0, z1 = self.head(step.features(0)), self.head(step.features(1))
        # the loss in float32 under mixed precision: dividing the cosine similarities by a small
        # temperature magnifies their bf16 rounding (at 0.07, ~1% error in the gradient, against 0.2% at 0.5)
        with torch.autocast(device_type=z0.device.type, enabled=False):
            return {"ntxent": self.loss(z0.float(), z1.float())}


class BYOL(Objective):
    """BYOL with Lightly's heads and ``NegativeCosineSimilarity``.

    The target network is a momentum copy of the searched network (supernet) and projection head;
    it follows the same architecture as the online branch for each step.
    """

    def __init__(self, momentum: float = 0.99, projection_dim: int = 128, hidden_dim: int = 512,
                 feature_dim: int | None = None, weight: float = 1.0,
                 stages: tuple[str, ...] = ("train", "architecture", "val")) -> None:
        super().__init__(weight, stages)
        self.momentum = momentum
        self.loss = NegativeCosineSimilarity()
        self._dims = (hidden_dim, projection_dim)
        self.projection = self.prediction = self.target_network = self.target_projection = None
        if feature_dim:
            self._build(feature_dim)

    def _build(self, feature_dim: int) -> None:
        hidden_dim, projection_dim = self._dims
        self.projection = BYOLProjectionHead(feature_dim, hidden_dim, projection_dim)
        self.prediction = BYOLPredictionHead(projection_dim, hidden_dim, projection_dim)
        self.target_projection = copy.deepcopy(self.projection).requires_grad_(False)

    @hookimpl(specname="nasframe_setup")
    def setup(self, nas) -> None:
        if self.projection is None:
            self._build(_feature_dim(nas))
        if nas.supernet is not None and self.target_network is None:
            self.target_network = copy.deepcopy(nas.supernet).requires_grad_(False)

    def _target(self, step: SearchStep, view: int) -> torch.Tensor:
        network = self.target_network if self.target_network is not None else step.network
        with torch.no_grad():
            x = step.views[view]
            features = network.forward_features(x) if step.architecture is None else network.forward_features(x, step.architecture)
            return self.target_projection(features)

    def loss_terms(self, step: SearchStep) -> dict[str, torch.Tensor]:
        if len(step.views) < 2:
            return {}
        if step.stage == "train" and self.target_network is not None:
            update_momentum(step.network, self.target_network, m=self.momentum)
            update_momentum(self.projection, self.target_projection, m=self.momentum)
        p0 = self.prediction(self.projection(step.features(0)))
        p1 = self.prediction(self.projection(step.features(1)))
        loss = 0.5 * (self.loss(p0, self._target(step, 1)) + self.loss(p1, self._target(step, 0)))
        return {"byol": loss}
