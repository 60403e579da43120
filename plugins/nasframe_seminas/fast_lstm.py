"""A single-layer LSTM for SemiNAS's tiny sequences, computed with few large operations.

``torch.nn.LSTM`` on CPU runs each direction as its own oneDNN primitive; for SemiNAS's shapes
(batch 64, 6 to 30 tokens, hidden 64) that costs ~1.3 ms forward and ~2.4 ms backward per direction,
most of it per-call and per-timestep overhead. Here both directions run in one loop over time
(batched matrix products over a leading direction axis), the input projection of every timestep is
one product, and the backward pass is written out: everything that does not depend on the
recurrence (gate derivatives, weight gradients, input gradients) is computed for all timesteps at
once, so each timestep costs a handful of operations. The parameters are the ``nn.LSTM`` module's own
(``weight_ih_l0`` ... ``bias_hh_l0_reverse``): checkpoints and the module's state are unchanged, and
``lstm(module, x, state)`` equals ``module(x, state)`` to float rounding.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["lstm", "lstm_step", "supported"]


def supported(module: nn.LSTM) -> bool:
    """One layer, batch first, biases, no projection or dropout: the configurations written out here."""
    return (module.num_layers == 1 and module.batch_first and module.bias and module.proj_size == 0
            and not (module.dropout and module.training))


def _weights(module: nn.LSTM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(D, 4H, I)``, ``(D, 4H, H)``, ``(D, 4H)`` for the D directions."""
    suffixes = ["", "_reverse"][: 2 if module.bidirectional else 1]
    w_ih = torch.stack([getattr(module, f"weight_ih_l0{s}") for s in suffixes])
    w_hh = torch.stack([getattr(module, f"weight_hh_l0{s}") for s in suffixes])
    bias = torch.stack([getattr(module, f"bias_ih_l0{s}") + getattr(module, f"bias_hh_l0{s}") for s in suffixes])
    return w_ih, w_hh, bias


def lstm(module: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The output sequence ``(B, T, D*H)`` of ``module`` (``supported``) on ``x`` ``(B, T, I)``, from
    ``state`` (``h0, c0`` of shape ``(D, B, H)``; zeros when ``None``). Falls back to the module otherwise."""
    if not supported(module) or x.dim() != 3:
        return module(x, state)[0]
    w_ih, w_hh, bias = _weights(module)
    directions, hidden = w_ih.shape[0], module.hidden_size
    if state is None:
        h0 = c0 = x.new_zeros(directions, x.shape[0], hidden)
    else:
        h0, c0 = state
    # time-major (D, T, B, I): every timestep's slice is contiguous; the reverse direction reads backwards
    inputs = torch.stack([x, x.flip(1)]) if directions == 2 else x.unsqueeze(0)
    out = _LSTMFunction.apply(inputs.transpose(1, 2).contiguous(), h0, c0, w_ih, w_hh, bias).transpose(1, 2)  # (D, B, T, H)
    if directions == 1:
        return out[0]
    return torch.cat([out[0], out[1].flip(1)], dim=-1)


@torch.no_grad()
def lstm_step(module: nn.LSTM, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One timestep of a unidirectional ``module`` without autograd (greedy decoding): ``x`` ``(B, I)``,
    ``state`` ``(1, B, H)`` each; returns ``h`` ``(B, H)`` and the new state."""
    h, c = state[0][0], state[1][0]
    gates = torch.addmm(module.bias_ih_l0 + module.bias_hh_l0, x, module.weight_ih_l0.t())
    gates.addmm_(h, module.weight_hh_l0.t())
    hidden = module.hidden_size
    activated = torch.sigmoid(gates)
    torch.tanh(gates[:, 2 * hidden: 3 * hidden], out=activated[:, 2 * hidden: 3 * hidden])
    i, f, g, o = activated.split(hidden, dim=1)
    c = torch.addcmul(f * c, i, g)
    h = o * torch.tanh(c)
    return h, (h.unsqueeze(0), c.unsqueeze(0))


class _LSTMFunction(torch.autograd.Function):
    """D independent single-layer LSTMs over time-major ``inputs`` ``(D, T, B, I)``; gate order i, f, g, o
    (PyTorch's). Returns the hidden states ``(D, T, B, H)``."""

    @staticmethod
    def forward(ctx: Any, inputs: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
        directions, steps, batch, _ = inputs.shape
        hidden = w_hh.shape[-1]
        # the input projection of every timestep at once: (D, T, B, 4H)
        projected = torch.baddbmm(bias.unsqueeze(1), inputs.view(directions, steps * batch, -1), w_ih.transpose(1, 2).contiguous())
        projected = projected.view(directions, steps, batch, 4 * hidden).transpose(0, 1).contiguous()  # (T, D, B, 4H)
        w_hh_t = w_hh.transpose(1, 2).contiguous()
        activations = inputs.new_empty(steps, directions, batch, 4 * hidden)  # i, f, g, o after their nonlinearity
        cells = inputs.new_empty(steps + 1, directions, batch, hidden)  # c_0 ... c_T
        hiddens = inputs.new_empty(steps + 1, directions, batch, hidden)  # h_0 ... h_T
        cells[0], hiddens[0] = c0, h0
        for t in range(steps):
            gates = torch.baddbmm(projected[t], hiddens[t], w_hh_t)
            act = activations[t]
            torch.sigmoid(gates, out=act)
            torch.tanh(gates[..., 2 * hidden: 3 * hidden], out=act[..., 2 * hidden: 3 * hidden])
            i, f, g, o = act.split(hidden, dim=-1)
            torch.addcmul(f * cells[t], i, g, out=cells[t + 1])
            torch.mul(o, torch.tanh(cells[t + 1]), out=hiddens[t + 1])
        ctx.save_for_backward(inputs, w_ih, w_hh, activations, cells, hiddens)
        return hiddens[1:].transpose(0, 1)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        inputs, w_ih, w_hh, act, cells, hiddens = ctx.saved_tensors
        directions, steps, batch, _ = inputs.shape
        hidden = w_hh.shape[-1]
        grad_out = grad_out.transpose(0, 1).contiguous()  # (T, D, B, H)
        i, f, g, o = act.split(hidden, dim=-1)
        tanh_c = torch.tanh(cells[1:])
        # everything that does not depend on the recurrence, for all timesteps at once
        from_cell = torch.stack([g * i * (1 - i), cells[:-1] * f * (1 - f), i * (1 - g * g)], dim=-2)  # dc -> d(i, f, g)
        from_hidden = tanh_c * o * (1 - o)  # dh -> d(o)
        into_cell = o * (1 - tanh_c * tanh_c)  # dh -> dc
        forget = f.contiguous()
        grad_gates = inputs.new_empty(steps, directions, batch, 4 * hidden)
        grad_h = grad_out[-1]
        grad_c = torch.zeros_like(grad_h)
        for t in range(steps - 1, -1, -1):
            grad_c = torch.addcmul(grad_c, grad_h, into_cell[t])
            step = grad_gates[t]
            torch.mul(grad_c.unsqueeze(-2), from_cell[t], out=step[..., : 3 * hidden].view(directions, batch, 3, hidden))
            torch.mul(grad_h, from_hidden[t], out=step[..., 3 * hidden:])
            grad_c = grad_c * forget[t]
            grad_h = torch.baddbmm(grad_out[t - 1], step, w_hh) if t else torch.bmm(step, w_hh)
        flat = grad_gates.transpose(0, 1).reshape(directions, steps * batch, 4 * hidden)  # (D, T*B, 4H), time-major rows
        flat_t = flat.transpose(1, 2)
        grad_inputs = torch.bmm(flat, w_ih).view_as(inputs) if ctx.needs_input_grad[0] else None
        grad_w_ih = torch.bmm(flat_t, inputs.view(directions, steps * batch, -1))
        grad_w_hh = torch.bmm(flat_t, hiddens[:-1].transpose(0, 1).reshape(directions, steps * batch, hidden))
        grad_bias = flat.sum(1)
        return grad_inputs, grad_h, grad_c, grad_w_ih, grad_w_hh, grad_bias
