"""The SemiNAS encoder-predictor-decoder, its joint loss, its training loop and the embedding move."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from nasframe_seminas.decoder import AttentionDecoder
from nasframe_seminas.encoder import SequenceEncoder
from nasframe_seminas.predictor import Predictor

Method = TypeVar("Method", bound=Callable[..., Any])


def full_precision(method: Method) -> Method:
    """Run a ``SemiNASModel`` method with autocast off on the model's device (and on one CPU thread,
    see ``one_cpu_thread``).

    A mixed-precision search (Lightning's ``bf16-mixed``/``16-mixed``) runs every strategy step under
    autocast. The SemiNAS model is tiny, so float32 costs next to nothing, while its results are
    precision-sensitive: proposals are ranked by predicted scores that bf16's 8-bit mantissa would
    round into ties, and embeddings are moved by small gradient steps before they are decoded."""

    @functools.wraps(method)
    def wrapper(self: SemiNASModel, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=self.device.type, enabled=False), one_cpu_thread(self.device):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def one_cpu_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread while the model works on a CPU (the process's count restored after).

    Its operations are tiny (batches of a few dozen sequences of a few tokens, width 64), so handing them to
    a second thread cannot pay, and where the cores are busy the threads wait for each other: on a
    busy 2-core machine a training step took 15 ms on one thread and 1.46 s on two. Results equal a
    one-thread process's (the thread count changes the order of floating-point sums)."""
    previous = torch.get_num_threads()
    if device.type != "cpu" or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SemiNASModel(nn.Module):
    """Encoder, predictor and decoder sharing one embedding (NAO's auto-encoder with a predictor).

    Args:
        vocabulary_size, token_ranges: the space's token view (``vocabulary_size()``,
            ``token_range(i)`` for every position).
        hidden_size: token-output and embedding width (64 in the paper).
        encoder_layers: LSTM layers of the encoder.
        mlp_layers: hidden widths of the predictor MLP.
        trade_off: weight of the prediction MSE in the joint loss; the reconstruction NLL gets
            ``1 - trade_off`` (the paper: 0.8 / 0.2).
    """

    def __init__(self, vocabulary_size: int, token_ranges: Sequence[range], hidden_size: int = 64, encoder_layers: int = 1,
                 mlp_layers: Sequence[int] = (64,), trade_off: float = 0.8) -> None:
        super().__init__()
        if not 0.0 <= trade_off <= 1.0:
            raise ValueError(f"trade_off must be in [0, 1], got {trade_off}")
        self.trade_off = trade_off
        self.encoder = SequenceEncoder(vocabulary_size, hidden_size, encoder_layers)
        self.predictor = Predictor(hidden_size, mlp_layers)
        self.decoder = AttentionDecoder(vocabulary_size, token_ranges, hidden_size)

    @classmethod
    def for_space(cls, space: Any, **kwargs: Any) -> SemiNASModel:
        """Size the model from a search space's token view (any space implementing it)."""
        length = len(space.token_choices())
        return cls(space.vocabulary_size(), [space.token_range(i) for i in range(length)], **kwargs)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted scores (B,) and teacher-forced reconstruction log-probabilities (B, L, V)."""
        memory, embedding = self.encoder(tokens)
        return self.predictor(embedding), self.decoder(memory, embedding, tokens)

    def loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``trade_off * MSE + (1 - trade_off) * NLL``, and the two terms."""
        predictions, log_probs = self(tokens)
        mse = F.mse_loss(predictions, targets)
        nll = F.nll_loss(log_probs.flatten(0, 1), tokens.flatten())
        return self.trade_off * mse + (1.0 - self.trade_off) * nll, mse, nll

    @full_precision
    @torch.no_grad()
    def predict(self, tokens: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        return torch.cat([self.predictor(self.encoder(chunk)[1]) for chunk in tokens.split(batch_size)]) if len(tokens) else tokens.new_zeros(0, dtype=torch.float)

    @full_precision
    def gradients(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token outputs (B, L, H) and the predictor's gradient with respect to them."""
        with torch.enable_grad():
            memory = self.encoder(tokens)[0].detach().requires_grad_(True)
            self.predictor(SequenceEncoder.pool(memory)).sum().backward(inputs=[memory])
        return memory.detach(), memory.grad.detach()

    @full_precision
    @torch.no_grad()
    def decode_moved(self, memory: torch.Tensor, gradient: torch.Tensor, step_size: float | torch.Tensor) -> torch.Tensor:
        """Decode the token outputs moved ``step_size`` along the predictor's gradient: h' = h + eta * df/dh.
        ``step_size``: one for all rows, or one per row (``(B,)``), so that several step sizes decode in one batch."""
        if isinstance(step_size, torch.Tensor):
            step_size = step_size.to(gradient.dtype).view(-1, 1, 1)
        moved = memory + step_size * gradient
        return greedy_decode(self.decoder, moved, SequenceEncoder.pool(moved))


@torch.no_grad()
def greedy_decode(decoder: AttentionDecoder, memory: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """``AttentionDecoder.decode`` (the most likely valid token at each position, fed back), with each
    LSTM timestep as a few matrix products instead of a one-step ``nn.LSTM`` call (oneDNN's per-call
    cost dominates one timestep of a small batch)."""
    state = decoder._state(embedding)
    previous = torch.full((memory.shape[0],), decoder.vocabulary_size, dtype=torch.long, device=memory.device)
    tokens = []
    for i in range(decoder.length):
        hidden, state = lstm_step(decoder.lstm, decoder.embedding(previous), state)
        previous = decoder._log_probs(hidden.unsqueeze(1), memory, slice(i, i + 1)).argmax(dim=-1).squeeze(1)
        tokens.append(previous)
    return torch.stack(tokens, dim=1)


@torch.no_grad()
def lstm_step(module: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One timestep of a one-layer unidirectional ``module`` without autograd: ``x`` ``(B, I)``, ``state``
    ``(1, B, H)`` each (PyTorch's gate order i, f, g, o); returns ``h`` ``(B, H)`` and the new state."""
    h, c = state[0][0], state[1][0]
    gates = torch.addmm(module.bias_ih_l0 + module.bias_hh_l0, x, module.weight_ih_l0.t())
    gates.addmm_(h, module.weight_hh_l0.t())
    hidden = module.hidden_size
    activated = torch.sigmoid(gates)
    activated[:, 2 * hidden: 3 * hidden] = torch.tanh(gates[:, 2 * hidden: 3 * hidden])
    i, f, g, o = activated.split(hidden, dim=1)
    c = torch.addcmul(f * c, i, g)
    h = o * torch.tanh(c)
    return h, (h.unsqueeze(0), c.unsqueeze(0))


def train_steps(model: SemiNASModel, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, targets: torch.Tensor,
                steps: int, batch_size: int, generator: torch.Generator, max_norm: float = 5.0) -> dict[str, float]:
    """``steps`` mini-batch updates on the joint loss, walking through shuffled epochs (``generator``
    shuffles, so training is deterministic). Counting updates rather than epochs keeps an
    iteration's cost flat as the labelled set grows (the model is warm-started between iterations).

    Plain ``backward`` on purpose: the predictor learns identical data on every rank (scores are
    broadcast, the generator is shared), so it needs no DDP all-reduce, and it trains in float32
    (autocast off, see ``full_precision``) outside any mixed-precision loss scaling meant for the supernet."""
    # the backward too: on CPU it runs in the calling thread, under the caller's autocast
    with torch.autocast(device_type=model.device.type, enabled=False), one_cpu_thread(model.device):
        return _train_steps(model, optimizer, tokens, targets, steps, batch_size, generator, max_norm)


def _train_steps(model: SemiNASModel, optimizer: torch.optim.Optimizer, tokens: torch.Tensor, targets: torch.Tensor,
                 steps: int, batch_size: int, generator: torch.Generator, max_norm: float) -> dict[str, float]:
    model.train()
    last = {"loss": float("nan"), "mse": float("nan"), "nll": float("nan")}
    if len(tokens) == 0 or steps == 0:
        model.eval()
        return last
    device = model.device
    tokens, targets = tokens.to(device), targets.to(device=device, dtype=torch.float)
    parameters = list(model.parameters())  # listed once: walking the modules every update costs more than clipping
    batches: list[torch.Tensor] = []
    for _ in range(steps):
        if not batches:
            batches = list(torch.randperm(len(tokens), generator=generator).split(batch_size))[::-1]
        batch = batches.pop().to(device)
        loss, mse, nll = model.loss(tokens[batch], targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, max_norm, foreach=True)
        optimizer.step()
        last = {"loss": float(loss.detach()), "mse": float(mse.detach()), "nll": float(nll.detach())}
    model.eval()
    return last


def semi_supervised_fit(model: SemiNASModel, optimizer: torch.optim.Optimizer, labelled: torch.Tensor, targets: torch.Tensor,
                        unlabelled: torch.Tensor, steps: int, pseudo_steps: int, batch_size: int,
                        generator: torch.Generator, up_sample: int = 1) -> torch.Tensor:
    """SemiNAS's training: fit the N labelled sequences, pseudo-label the M unlabelled ones with
    the predictor, then fit labelled and pseudo-labelled together, the labelled ones repeated
    ``up_sample`` times (the paper's up-sampling ratio, 10) so that the M pseudo-labels do not
    drown the N true ones. Returns the pseudo-labels. With M = 0 the second phase trains on the
    labelled data alone (the ablation keeps the cost)."""
    if not isinstance(up_sample, int) or up_sample < 1:
        raise ValueError(f"up_sample must be an integer >= 1, got {up_sample!r}")
    train_steps(model, optimizer, labelled, targets, steps, batch_size, generator)
    pseudo = model.predict(unlabelled.to(model.device)).cpu() if len(unlabelled) else torch.zeros(0)
    if len(unlabelled):
        both = torch.cat([labelled.repeat(up_sample, 1), unlabelled])
        both_targets = torch.cat([targets.float().repeat(up_sample), pseudo])
    else:
        both, both_targets = labelled, targets.float()
    train_steps(model, optimizer, both, both_targets, pseudo_steps, batch_size, generator)
    return pseudo
