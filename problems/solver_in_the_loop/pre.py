r"""PRE: pre-computed corrections (Um et al. 2020, Sec. 2) for the forced Burgers scenario.

The paper's corrector C_pre is a time-regularised least-squares fit (Henderson 1975): co-simulate the source with
the reference and, at every step, choose the correction closest to what would put the source back on the
reference while staying close to the previous correction. The authors' ``burgers_pre.py`` fits it on the reference
grid (bilinear upsampling of the source, temporal weight beta = 1). Here the fit is on the source grid, against the
projected reference T r (the same target every other mode is trained and measured against):

    d_t = T r_{t+1} - P_s(s~_t),      c_t = argmin_c ||c - d_t||^2 + beta ||c - c_{t-1}||^2 = (d_t + beta c_{t-1}) / (1 + beta),
    s~_{t+1} = P_s(s~_t) + c_t,        s~_0 = T r_0, c_{-1} = 0.

A PRE network then learns c_t from (P_s(s~_t), f_t) by supervised regression on these pairs, i.e. on states
corrected by C_pre, never by itself.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..base import ProblemError
from .data import Simulations

__all__ = ["PreCorrections", "precompute_corrections"]


class PreCorrections(NamedTuple):
    """Training pairs, each (S * (frames - 1), ...): the source states P_s(s~_t) the corrector saw, the condition of
    that step (force or re) and the correction c_t it applied."""
    inputs: Tensor
    conditions: Tensor
    corrections: Tensor


@torch.no_grad()
def precompute_corrections(scenario: Any, sims: Simulations, beta: float = 1.0) -> PreCorrections:
    """Co-simulate every simulation with the time-regularised corrector (``beta`` = 1 as in the authors' code;
    beta = 0 puts the source exactly on T r at every step) and return the training pairs."""
    if not beta >= 0:
        raise ProblemError(f"solver-in-the-loop: the temporal weight beta must be >= 0, got {beta!r}")
    state = sims.velocity[:, 0]
    previous = torch.zeros_like(state)
    inputs, conditions, corrections = [], [], []
    for t in range(sims.frames - 1):
        source = scenario.step(state, sims.condition[:, t])
        correction = (sims.velocity[:, t + 1] - source + beta * previous) / (1 + beta)
        inputs.append(source)
        conditions.append(sims.condition[:, t])
        corrections.append(correction)
        state, previous = source + correction, correction
    return PreCorrections(*(torch.stack(x, 1).flatten(0, 1) for x in (inputs, conditions, corrections)))
