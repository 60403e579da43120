"""Cream of the Crop: single-path supernet training where prioritized paths distil into the student."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from nasframe.errors import NASFrameError
from nasframe.hookspecs import hookimpl
from nasframe.spaces.architecture import Architecture
from nasframe.spaces.capabilities import architecture_cost, require
from nasframe.step import SearchStep
from nasframe.strategies import SinglePathStrategy
from nasframe_cream.board import BoardEntry, PrioritizedBoard
from nasframe_cream.matching import MatchingNetwork

if TYPE_CHECKING:
    from nasframe.module import NASModule


class CreamStrategy(SinglePathStrategy):
    """Distilling prioritized paths for one-shot NAS (Peng et al., NeurIPS 2020).

    Every step trains one uniformly sampled path (inside ``flops_range`` when given). After
    ``warmup_steps`` the path competes for the prioritized board (its batch accuracy and FLOPs; see
    ``PrioritizedBoard``), and, once the board holds paths, the matching network picks the board
    path that best matches the student as its teacher. The loss is assembled by the objectives from
    named terms: ``distillation`` (``nasframe.objectives.Distillation``, fed the teacher's logits
    through ``step.extras["teacher_logits"]``) weighted rho/2 and ``cross_entropy`` weighted
    (2 - rho)/2, i.e. [rho KD + (2 - rho) CE] / 2 with rho = sigmoid(matching score).

    Every ``meta_every`` steps the matching network is meta-learned: a plain SGD step of the student
    on one half of the batch is simulated with that loss (rho differentiable), and the cross-entropy
    of the updated student on the other half is back-propagated through the simulated step (second
    order) into the matching network, which an Adam optimizer (``meta_lr``) updates.

    The final architecture is the best board path within ``flops_range``. Board, matching network,
    step count, scoring set and random generator are checkpoint state.

    How board paths are measured (``board_scoring``):

    * ``"batch"`` -- the paper's rule: a path's accuracy on the training batch it was trained on
      (before its update). Cheap, but one batch of 64 images is a noisy measure when paths differ by
      a point or two, and entries measured at different times on different batches are compared.
    * ``"fixed"`` -- accuracy on a fixed scoring set of ``score_images`` training images (collected
      from the first training batches, identical on every DDP rank), measured after the step's
      update with batch-statistics BatchNorm (the supernet's running statistics are left untouched).
      Every candidate and board path is measured on the same images, at the cost of one extra
      forward pass of the scoring set per step after the warm-up.

    Independently, ``rescore_every`` re-measures every board path on the scoring set with the current
    weights every so many steps, and ``final_rescore`` does so once before the final path is picked,
    on ``final_score_images`` images (a larger set than a per-step measure can afford: the final pick
    decides the result, and 256 images still leave a standard error of about 2.5 points).
    Measurements run in chunks of ``score_images`` images, each with its own batch statistics.

    Args:
        seed: seeds the path sampler.
        flops_range: ``[low, high]`` FLOPs of the paths trained and returned (``cost(architecture)["flops"]``).
        board_size: K, the number of prioritized paths.
        margin: accuracy points (on the batch, in %) by which a path must beat the board's worst
            to enter when it does not also have fewer FLOPs.
        warmup_steps: plain single-path steps before paths may enter the board (and teach).
        matching_images: images stored per board path for the matching network.
        meta_every: U, steps between meta updates of the matching network (0 disables them).
        meta_lr: Adam learning rate of the matching network.
        inner_lr: learning rate of the simulated student step; default the weight optimizer's.
        board_scoring: ``"batch"`` (the paper's) or ``"fixed"``, see above.
        score_images: size of the scoring set (used by ``"fixed"``, ``rescore_every``, ``final_rescore``).
        rescore_every: steps between re-measurements of the board paths on the scoring set (0: never).
        final_rescore: re-measure the board paths on the scoring set before picking the final path.
        final_score_images: images of the final re-measurement; default ``score_images``.
    """

    BOARD_SCORING = ("batch", "fixed")

    def __init__(self, seed: int = 0, flops_range: tuple[float, float] | None = None, board_size: int = 10,
                 margin: float = 2.0, warmup_steps: int = 100, matching_images: int = 8, meta_every: int = 50,
                 meta_lr: float = 1e-3, inner_lr: float | None = None, board_scoring: str = "batch",
                 score_images: int = 256, rescore_every: int = 0, final_rescore: bool = False,
                 final_score_images: int | None = None,
                 leaderboard_size: int = 10, max_resample: int = 1000) -> None:
        super().__init__(seed, leaderboard_size=leaderboard_size, flops_range=flops_range, max_resample=max_resample,
                         final_rescore=final_rescore, score_images=score_images, final_score_images=final_score_images)
        for name, value, low in (("warmup_steps", warmup_steps, 0), ("matching_images", matching_images, 1),
                                 ("meta_every", meta_every, 0), ("rescore_every", rescore_every, 0)):
            if value < low:
                raise NASFrameError(f"CreamStrategy {name} must be >= {low}, got {value}")
        if board_scoring not in self.BOARD_SCORING:
            raise NASFrameError(f"CreamStrategy board_scoring must be one of {list(self.BOARD_SCORING)}, got {board_scoring!r}")
        self.board_scoring = board_scoring
        self.rescore_every = rescore_every
        self.board = PrioritizedBoard(board_size, margin)
        self.warmup_steps = warmup_steps
        self.matching_images = matching_images
        self.meta_every = meta_every
        self.meta_lr = meta_lr
        self.inner_lr = inner_lr
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.matching: MatchingNetwork | None = None
        self._teacher: Architecture | None = None  # this step's teacher (board indices move when the board updates)
        self._epoch_of_last_step: int | None = None  # the run record's final board is this epoch's

    # ---- setup -----------------------------------------------------------------------------------
    def setup(self, nas: NASModule) -> None:
        num_classes = require(nas.search_space, "num_classes", "CreamStrategy's matching network")
        self.matching = MatchingNetwork(self.matching_images, int(num_classes))
        if nas.supernet is not None:
            self.matching.to(next(nas.supernet.parameters()).device)

    def configure_optimizers(self, nas: NASModule) -> dict[str, Any] | None:
        return {"matching": torch.optim.Adam(self.matching.parameters(), lr=self.meta_lr)}

    # ---- one step ------------------------------------------------------------------------------
    def _flops(self, nas: NASModule, architecture: Architecture) -> float:
        """The board compares paths by FLOPs (a path with fewer FLOPs may replace a better one)."""
        return float(architecture_cost(nas, architecture, "CreamStrategy's prioritized board")["flops"])

    def _student_probs(self, nas: NASModule, architecture: Architecture) -> torch.Tensor:
        """The student's softmax outputs on every board path's stored images: ``(K, m, C)``."""
        inputs = torch.stack([e.inputs for e in self.board.entries])
        logits = nas.supernet(inputs.flatten(0, 1), architecture)
        # float32, like the stored board probabilities (CPU autocast would leave softmax in bf16)
        return F.softmax(logits.float(), dim=1).view(len(self.board), self.matching_images, -1)

    def _board_probs(self) -> torch.Tensor:
        return torch.stack([e.probs for e in self.board.entries])

    def before_loss(self, nas: NASModule, step: SearchStep) -> None:
        self._teacher = None
        if int(self.steps) < self.warmup_steps or not len(self.board) or step.targets is None:
            return
        with torch.no_grad():
            scores = self.matching(self._student_probs(nas, step.architecture), self._board_probs())
            index = int(scores.argmax())
            rho = float(torch.sigmoid(scores[index]))
            teacher = self.board.entries[index].architecture
            self._teacher = teacher
            step.extras["teacher_logits"] = nas.supernet(step.views[0], teacher).detach()
        step.extras["teacher_architecture"] = teacher
        step.term_weights.update(distillation=rho / 2, cross_entropy=(2 - rho) / 2)
        self._log(nas, {"cream/rho": rho})

    def after_step(self, nas: NASModule, step: SearchStep, loss: torch.Tensor) -> None:
        ready = self.score_set_ready
        super().after_step(nas, step, loss)  # collects the scoring set; the base leaderboard is a fallback before the board fills
        self.steps += 1
        if not ready and self.score_set_ready and len(self.board):  # measured on batches so far: now on the set
            self.board.rescore(lambda architecture: self.score(nas, architecture))
        accuracy = nas.batch_accuracy(step)
        if accuracy is not None and self.board_scoring == "fixed" and self.score_set_ready:
            accuracy = self.score(nas, step.architecture) if int(self.steps) > self.warmup_steps else accuracy
        if accuracy is not None and int(self.steps) > self.warmup_steps:
            index = torch.arange(self.matching_images, device=step.views[0].device) % step.batch_size
            # the *new* path's own outputs are stored, not its teacher's; under DDP rank 0's images
            # are stored on every rank, so every rank's matching network picks the same teacher
            inputs, probs = nas.broadcast((step.views[0][index].detach().clone(), F.softmax(step.logits(0)[index].detach(), dim=1)))
            entry = BoardEntry(step.architecture, accuracy, self._flops(nas, step.architecture), inputs, probs)
            self.board.consider(entry)
            self._log(nas, {"cream/board_size": float(len(self.board)), "cream/board_best": self.board.entries[0].accuracy})
        if (self.rescore_every and int(self.steps) % self.rescore_every == 0 and len(self.board)
                and self.score_set_ready):
            self.board.rescore(lambda architecture: self.score(nas, architecture))
        if self._teacher is not None and self.meta_every and int(self.steps) % self.meta_every == 0 and step.batch_size >= 2:
            self.meta_update(nas, step)

    # ---- the scoring set (collected and measured by the base) ----------------------------------------
    @property
    def needs_score_set(self) -> bool:
        return super().needs_score_set or self.board_scoring == "fixed" or bool(self.rescore_every)

    @staticmethod
    def _log(nas: NASModule, metrics: dict[str, float]) -> None:
        nas.log_metrics(metrics)  # a no-op where nothing can be logged (steps driven by hand)

    # ---- meta learning of the matching network ---------------------------------------------------
    def meta_update(self, nas: NASModule, step: SearchStep) -> float:
        """One second-order update of the matching network on ``step``'s batch; returns the outer loss.

        In float32 even in a mixed-precision search: the matching network's gradient is a
        second-order product of small terms (learning rate x Hessian-vector product), which bf16
        computed ~5% off on a tiny MBConv supernet, and float16 may underflow, since
        ``autograd.grad`` gets no loss scaling. It runs once every ``meta_every`` steps, so full
        precision costs little."""
        with torch.autocast(device_type=step.views[0].device.type, enabled=False):
            return self._meta_update(nas, step)

    def _meta_update(self, nas: NASModule, step: SearchStep) -> float:
        supernet = nas.supernet
        teacher = self._teacher
        indices = [i for i, e in enumerate(self.board.entries) if e.architecture == teacher]
        if not indices:  # the teacher left the board in this step's update: nothing to match against
            return float("nan")
        half = step.batch_size // 2
        x, y = step.views[0], step.targets
        params = {name: p for name, p in supernet.named_parameters() if p.requires_grad}
        # buffers are copied so that the simulated passes leave the BatchNorm statistics alone
        buffers = {name: b.clone() for name, b in supernet.named_buffers()}
        with torch.no_grad():
            student_probs = self._student_probs(nas, step.architecture)
            teacher_logits = supernet(x[:half], teacher)
        scores = self.matching(student_probs, self._board_probs())
        rho = torch.sigmoid(scores[indices[0]])

        inner = SearchStep((x[:half], y[:half]), step.architecture, _Functional(supernet, {**params, **buffers}), "train",
                           extras={"teacher_logits": teacher_logits},
                           term_weights={"distillation": rho / 2, "cross_entropy": (2 - rho) / 2})
        inner_loss = nas.compute_loss(inner, log=False)  # a simulated step: neither logged nor counted
        names = list(params)
        grads = torch.autograd.grad(inner_loss, [params[n] for n in names], create_graph=True, allow_unused=True)
        lr = self.inner_lr if self.inner_lr is not None else nas.optimizer("weights").param_groups[0]["lr"]
        updated = {n: params[n] - lr * g if g is not None else params[n] for n, g in zip(names, grads)}
        outer_logits = _Functional(supernet, {**updated, **buffers})(x[half:], step.architecture)
        labelled = y[half:] >= 0
        # no early return on a rank without labels: every rank must join the gradient mean below
        outer_loss = (F.cross_entropy(outer_logits[labelled], y[half:][labelled]) if bool(labelled.any())
                      else outer_logits.sum() * 0.0)

        optimizer = nas.raw_optimizer("matching")  # raw: global_step counts weight steps only
        optimizer.zero_grad(set_to_none=True)
        meta_grads = torch.autograd.grad(outer_loss, list(self.matching.parameters()), allow_unused=True)
        for p, g in zip(self.matching.parameters(), meta_grads):
            # the matching network is not DDP-wrapped: average its gradients by hand so ranks stay equal
            p.grad = nas.all_ranks_mean(torch.zeros_like(p) if g is None else g).to(p.dtype)
        optimizer.step()
        self._log(nas, {"cream/meta_loss": float(outer_loss.detach())})
        return float(outer_loss.detach())

    # ---- the board in the run record, once per epoch ---------------------------------------------------
    def search_step(self, nas: NASModule, batch: Any, batch_idx: int) -> torch.Tensor:
        if batch_idx == 0 and nas.current_epoch > 0:  # the board the previous epoch ended with
            self.record_board(nas, nas.current_epoch - 1)
        self._epoch_of_last_step = nas.current_epoch
        return super().search_step(nas, batch, batch_idx)

    def record_board(self, nas: NASModule, epoch: int) -> None:
        """Report the board as epoch ``epoch``'s (``nasframe_search_record``, kind ``"board"``)."""
        entries = [{"architecture": nas.search_space.format(e.architecture), "accuracy": e.accuracy, "flops": e.flops}
                   for e in self.board.entries]
        nas.hook.nasframe_search_record(nas=nas, record={"kind": "board", "epoch": epoch, "entries": entries})

    @hookimpl(specname="nasframe_search_end")
    def _record_final_board(self, nas: NASModule, architecture: Architecture, export_dir: Any) -> None:
        epoch = self._epoch_of_last_step  # None: a resumed search that had no step left
        self.record_board(nas, epoch if epoch is not None else max(nas.current_epoch - 1, 0))

    # ---- decisions -------------------------------------------------------------------------------
    def current_architecture(self, nas: NASModule) -> Architecture:
        best = self.board.best(self.flops_range)
        return best.architecture if best is not None else super().current_architecture(nas)

    def final_architecture(self, nas: NASModule) -> Architecture:
        if not len(self.board):  # too short a search to fill it: the base leaderboard, re-scored as asked
            return super().final_architecture(nas)
        if self.final_rescore and self.score_set_ready and nas.supernet is not None:
            self.board.rescore(lambda architecture: self.score(nas, architecture, self.final_score_images))
        return self.current_architecture(nas)

    # ---- checkpoint ------------------------------------------------------------------------------
    def search_state(self) -> dict[str, Any]:
        return {**super().search_state(), "board": self.board.state()}

    def load_search_state(self, state: dict[str, Any]) -> None:
        super().load_search_state(state)
        self.board.load_state(state["board"])


class _Dispatch(nn.Module):
    """Lets ``functional_call`` run the supernet's ``forward_features``/``forward_head`` with given tensors."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, arch: Any, part: str) -> torch.Tensor:
        if part == "features":
            return self.net.forward_features(x, arch)
        if part == "head":
            return self.net.forward_head(x)
        return self.net(x, arch)


class _Functional:
    """The supernet with substituted parameters (the simulated student step), as ``SearchStep`` needs it."""

    def __init__(self, supernet: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
        self.module = _Dispatch(supernet)
        self.tensors = {f"net.{name}": t for name, t in tensors.items()}

    def forward_features(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        return functional_call(self.module, self.tensors, (x, arch, "features"))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, self.tensors, (features, None, "head"))

    def __call__(self, x: torch.Tensor, arch: Any) -> torch.Tensor:
        return functional_call(self.module, self.tensors, (x, arch, "all"))
