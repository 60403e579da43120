"""ProxylessNAS-style binary gates over the DARTS supernet's edges.

For each edge, two distinct operations are drawn from softmax(alpha) and one of them (drawn from
the two's renormalised probabilities) is active. The supernet runs both, but the inactive one
without autograd, so only two paths are in memory and only the active one trains weights.

The gate of sampled op i is ``g_i = b_i + p_i - stop_grad(p_i)`` with ``b`` the binary (0/1) gate and
``p = softmax(alpha over the two sampled ops)``. Its value is exactly ``b_i``; its gradient carries
ProxylessNAS's estimate ``dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i)`` to alpha through
autograd, so the ordinary architecture optimizer step applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasframe.spaces.darts import PathWeights


@dataclass
class GateSample:
    """What an architecture step sampled: op indices ``(cells, edges, paths)`` and, per edge, the
    log of the sampled ops' exp-mass before the step (for the rescaling after it)."""

    indices: torch.Tensor
    log_mass: torch.Tensor


def single_paths(probs: torch.Tensor, generator: torch.Generator) -> PathWeights:
    """One operation per edge drawn from ``probs`` ``(cells, edges, ops)`` (uniform probs: SPOS warm-up)."""
    flat = probs.detach().float().cpu().reshape(-1, probs.shape[-1])
    chosen = torch.multinomial(flat, 1, generator=generator)
    active = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, chosen, True).reshape(probs.shape)
    return PathWeights(active.to(probs.device, probs.dtype), active.to(probs.device))


def binary_gates(alpha: torch.Tensor, generator: torch.Generator, paths: int = 2) -> tuple[PathWeights, GateSample]:
    """Gates for an architecture step: ``paths`` ops per edge sampled from softmax(alpha), one active."""
    if not 2 <= paths <= alpha.shape[-1]:
        raise ValueError(f"paths must be in 2..{alpha.shape[-1]}, got {paths}")
    shape, ops = alpha.shape, alpha.shape[-1]
    flat_alpha = alpha.reshape(-1, ops)
    indices = torch.multinomial(flat_alpha.detach().float().cpu().softmax(-1), paths, replacement=False, generator=generator)
    sub_probs_cpu = flat_alpha.detach().float().cpu().gather(1, indices).softmax(-1)
    winner = torch.multinomial(sub_probs_cpu, 1, generator=generator)  # which sampled op is active
    indices = indices.to(alpha.device)
    binary = torch.zeros(indices.shape, device=alpha.device, dtype=alpha.dtype).scatter_(1, winner.to(alpha.device), 1.0)
    sub_probs = flat_alpha.gather(1, indices).softmax(-1)
    gates = binary + (sub_probs - sub_probs.detach())  # value: binary; gradient: ProxylessNAS's
    weights = torch.zeros_like(flat_alpha).scatter(1, indices, gates)
    active = torch.zeros(flat_alpha.shape, dtype=torch.bool, device=alpha.device).scatter_(1, indices, True)
    detached = active & ~torch.zeros_like(active).scatter_(1, indices.gather(1, winner.to(alpha.device)), True)
    log_mass = flat_alpha.detach().gather(1, indices).logsumexp(-1)
    sample = GateSample(indices.reshape(*shape[:-1], paths), log_mass.reshape(shape[:-1]))
    return PathWeights(weights.reshape(shape), active.reshape(shape), detached.reshape(shape)), sample


@torch.no_grad()
def rescale_(alpha: torch.Tensor, sample: GateSample) -> None:
    """Shift the sampled ops' alphas of every edge by one constant so that their total exp-mass is
    what it was before the step: the step moves probability between the sampled ops only, and the
    unsampled ops keep their probabilities."""
    updated = alpha.gather(-1, sample.indices)
    shift = (sample.log_mass - updated.logsumexp(-1)).unsqueeze(-1)
    alpha.scatter_(-1, sample.indices, updated + shift)
