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

from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ..base import ProblemError
from .data import Simulations
from .setup import ForcedBurgers

__all__ = ["CorrectionFn", "data_statistics", "corrected_step", "unrolled_loss", "rollout", "rollout_error",
           "improvement", "window_batches"]

#: a correction C(state, force) -> additive field of the state's shape
CorrectionFn = Callable[[Tensor, Tensor], Tensor]


def data_statistics(sims: Simulations) -> tuple[Tensor, Tensor]:
    """(sigma_v, sigma_f): the standard deviation of |v| and of |f| per component over all frames, each (2,)."""
    def std(x: Tensor) -> Tensor:
        return x.abs().transpose(0, 2).reshape(2, -1).double().std(dim=1, unbiased=False).float()
    return std(sims.velocity), std(sims.force)


def corrected_step(scenario: ForcedBurgers, state: Tensor, force: Tensor, correction: CorrectionFn | None) -> Tensor:
    """s~_{t+1} = P_s(s~_t, f_t) + C(P_s(s~_t, f_t), f_t); without a correction just P_s (the SRC rollout)."""
    s = scenario.step(state, force)
    return s if correction is None else s + correction(s, force)


def unrolled_loss(scenario: ForcedBurgers, correction: CorrectionFn, velocity: Tensor, force: Tensor,
                  velocity_std: Tensor, steps: int, checkpoint_steps: bool = False) -> Tensor:
    """L_n for windows ``velocity``, ``force`` (B, n + 1, 2, N, N) (frame 0 is the start, T r_t); ``steps`` = n.

    With ``checkpoint_steps`` every corrected step is recomputed in the backward pass instead of stored (memory
    O(1) in n instead of O(n) activations of the network)."""
    if velocity.dim() != 5 or velocity.shape[1] < steps + 1 or force.shape[:2] != velocity.shape[:2]:
        raise ProblemError(f"solver-in-the-loop: windows must be (batch, {steps + 1}, 2, n, n) velocities and forces, "
                           f"got {tuple(velocity.shape)} and {tuple(force.shape)}")
    sigma = velocity_std.to(velocity).reshape(2, 1, 1)
    state, total = velocity[:, 0], velocity.new_zeros(())

    def step(s: Tensor, f: Tensor) -> Tensor:
        return corrected_step(scenario, s, f, correction)

    for k in range(steps):
        if checkpoint_steps and torch.is_grad_enabled():
            state = checkpoint(step, state, force[:, k], use_reentrant=False)
        else:
            state = step(state, force[:, k])
        total = total + 0.5 * ((velocity[:, k + 1] - state) / sigma).pow(2).sum()
    return total / steps


@torch.no_grad()
def rollout(scenario: ForcedBurgers, start: Tensor, forces: Tensor, correction: CorrectionFn | None = None) -> Tensor:
    """States s~_1 ... s~_T of a (corrected) source rollout from ``start`` (B, 2, N, N) driven by ``forces``
    (B, T, 2, N, N) (f_0 ... f_{T-1}); returns (B, T, 2, N, N)."""
    scenario.check_state(start, name="start state")
    if forces.dim() != 5 or forces.shape[0] != start.shape[0] or forces.shape[2:] != start.shape[1:]:
        raise ProblemError(f"solver-in-the-loop: forces must be (batch, steps, 2, n, n) matching the start state "
                           f"{tuple(start.shape)}, got {tuple(forces.shape)}")
    states, s = [], start
    for k in range(forces.shape[1]):
        s = corrected_step(scenario, s, forces[:, k], correction)
        states.append(s)
    return torch.stack(states, 1)


def rollout_error(scenario: ForcedBurgers, sims: Simulations, correction: CorrectionFn | None = None,
                  steps: int | None = None) -> Tensor:
    """Mean absolute error of the rollout from frame 0 against the projected reference over ``steps`` steps
    (default: all stored frames), per simulation (S,)."""
    steps = sims.frames - 1 if steps is None else steps
    if not 1 <= steps < sims.frames:
        raise ProblemError(f"solver-in-the-loop: cannot roll out {steps} steps from {sims.frames} stored frames; "
                           f"use 1 to {sims.frames - 1}")
    states = rollout(scenario, sims.velocity[:, 0], sims.force[:, :steps], correction)
    return (states - sims.velocity[:, 1:steps + 1]).abs().mean(dim=(1, 2, 3, 4))


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
