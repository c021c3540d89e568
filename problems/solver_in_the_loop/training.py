r"""Losses, rollouts and batches of Solver-in-the-Loop (Um et al. 2020, Sec. 2; the authors' ``burgers_train.py``).

A corrected source step is  s~_{t+1} = P_s(s~_t, f_t) + C(P_s(s~_t, f_t), f_t)  (solver first, then the correction,
which sees the force of the step). SOL_n unrolls n corrected steps from a projected reference frame and compares every
intermediate state with the projected reference:

    L_n = (1/n) sum_{k=1}^{n} 1/2 || (T r_{t+k} - s~_{t+k}) / sigma_v ||^2,

summed over faces and the batch, sigma_v the per-component standard deviation of |v| over the training frames.
Gradients flow through the solver n - 1 times. NON is n = 1: the correction only ever sees uncorrected source
states. The metric is the mean absolute error of a corrected (or, for SRC, uncorrected) rollout against the
projected reference, and the improvement 1 - MAE / MAE_SRC.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..base import ProblemError
from .data import Simulations

#: a scenario: ForcedBurgers or WakeFlow (step, check_state, mean_absolute_error)
Scenario = Any

__all__ = ["CorrectionFn", "data_statistics", "corrected_step", "unrolled_loss", "rollout", "rollout_error",
           "improvement", "window_batches"]

#: a correction C(state, condition) -> additive field of the state's shape
CorrectionFn = Callable[[Tensor, Tensor], Tensor]


def data_statistics(sims: Simulations) -> tuple[Tensor, Tensor]:
    """(sigma_v, sigma_c): the standard deviation of |v| per component over all frames (2,), and of the condition:
    per component for a field (the force, (2,)), over the simulations for a number per simulation (re, (1,))."""
    def std(x: Tensor) -> Tensor:
        return x.abs().transpose(0, 2).reshape(2, -1).double().std(dim=1, unbiased=False).float()
    condition = sims.condition
    if condition.dim() == 2:                                      # one number per frame, constant per simulation
        return std(sims.velocity), condition[:, 0].abs().double().std(unbiased=False).float().reshape(1)
    return std(sims.velocity), std(condition)


def corrected_step(scenario: Scenario, state: Tensor, condition: Tensor, correction: CorrectionFn | None) -> Tensor:
    """s~_{t+1} = P_s(s~_t, c_t) + C(P_s(s~_t, c_t), c_t) with c_t the step's condition (force or re); without a
    correction just P_s (the SRC rollout)."""
    s = scenario.step(state, condition)
    return s if correction is None else s + correction(s, condition)


def unrolled_loss(scenario: Scenario, correction: CorrectionFn, velocity: Tensor, condition: Tensor,
                  velocity_std: Tensor, steps: int, checkpoint_steps: bool = False,
                  detach_states: bool = False) -> Tensor:
    """L_n for windows ``velocity`` (B, n + 1, 2, ...) and ``condition`` (B, n + 1, ...) (frame 0 is the start,
    T r_t); ``steps`` = n.

    With ``checkpoint_steps`` every corrected step is recomputed in the backward pass instead of stored (memory
    O(1) in n instead of O(n) activations of the network). With ``detach_states`` no gradient flows from one step
    into the next (the SIP_n variant): each term is then 1/2 ||(c*_k - C(P_s(s~_{k-1}))) / sigma||^2 with the target
    c*_k = T r_{t+k} - P_s(s~_{k-1}) on the model's own rollout, the exact inverse of the additive correction for
    its own step, so the correction learns on the states its earlier corrections lead to without back-propagation
    through the solver."""
    if velocity.dim() != 5 or velocity.shape[1] < steps + 1 or condition.shape[:2] != velocity.shape[:2]:
        raise ProblemError(f"solver-in-the-loop: windows must be (batch, {steps + 1}, 2, h, w) velocities and "
                           f"(batch, {steps + 1}, ...) conditions, got {tuple(velocity.shape)} and "
                           f"{tuple(condition.shape)}")
    sigma = velocity_std.to(velocity).reshape(2, 1, 1)
    state, total = velocity[:, 0], velocity.new_zeros(())

    def step(s: Tensor, c: Tensor) -> Tensor:
        return corrected_step(scenario, s, c, correction)

    for k in range(steps):
        if detach_states:
            state = state.detach()
        if checkpoint_steps and torch.is_grad_enabled():
            state = checkpoint(step, state, condition[:, k], use_reentrant=False)
        else:
            state = step(state, condition[:, k])
        total = total + 0.5 * ((velocity[:, k + 1] - state) / sigma).pow(2).sum()
    return total / steps


@torch.no_grad()
def rollout(scenario: Scenario, start: Tensor, conditions: Tensor, correction: CorrectionFn | None = None) -> Tensor:
    """States s~_1 ... s~_T of a (corrected) source rollout from ``start`` (B, 2, h, w) driven by ``conditions``
    (B, T, ...) (c_0 ... c_{T-1}); returns (B, T, 2, h, w)."""
    scenario.check_state(start, name="start state")
    if conditions.dim() < 2 or conditions.shape[0] != start.shape[0]:
        raise ProblemError(f"solver-in-the-loop: conditions must be (batch, steps, ...) for the start state "
                           f"{tuple(start.shape)}, got {tuple(conditions.shape)}")
    states, s = [], start
    for k in range(conditions.shape[1]):
        s = corrected_step(scenario, s, conditions[:, k], correction)
        states.append(s)
    return torch.stack(states, 1)


def rollout_error(scenario: Scenario, sims: Simulations, correction: CorrectionFn | None = None,
                  steps: int | None = None) -> Tensor:
    """Mean absolute error of the rollout from frame 0 against the projected reference over ``steps`` steps
    (default: all stored frames), per simulation (S,)."""
    steps = sims.frames - 1 if steps is None else steps
    if not 1 <= steps < sims.frames:
        raise ProblemError(f"solver-in-the-loop: cannot roll out {steps} steps from {sims.frames} stored frames; "
                           f"use 1 to {sims.frames - 1}")
    states = rollout(scenario, sims.velocity[:, 0], sims.condition[:, :steps], correction)
    return scenario.mean_absolute_error(states, sims.velocity[:, 1:steps + 1])


def improvement(error: Tensor, source_error: Tensor) -> Tensor:
    """1 - MAE / MAE_SRC: 1 = the reference reproduced, 0 = no better than the uncorrected source, < 0 worse."""
    return 1 - error / source_error


def window_batches(sims: Simulations, steps: int, batch: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of (simulation, start frame) index batches: every window of ``steps`` + 1 frames once, shuffled,
    in batches of ``batch`` (the last incomplete batch is dropped, as the authors' epochs are)."""
    if not isinstance(batch, int) or batch < 1:
        raise ProblemError(f"solver-in-the-loop: the batch size must be an integer >= 1, got {batch!r}")
    starts_per_sim = sims.frames - steps
    if starts_per_sim < 1:
        raise ProblemError(f"solver-in-the-loop: a look-ahead of {steps} steps needs more than the {sims.frames} "
                           f"stored frames; use a look-ahead <= {sims.frames - 1}")
    order = torch.randperm(len(sims) * starts_per_sim, generator=generator)
    for i in range(len(order) // batch):
        chosen = order[i * batch:(i + 1) * batch]
        yield chosen // starts_per_sim, chosen % starts_per_sim
