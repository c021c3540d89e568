r"""Forces of a trajectory, the losses and the paper's metric (PDE-control paper, Sec. 3, 4 and App. D.1).

A trajectory u_0 ... u_n (B, n + 1, N) defines the control forces that produce it,

    F_t = u_{t+1} - Solver[u_t],   t = 0 ... n - 1

(what the authors' code computes; every scheme ends with u_n = o*, so the target is always met and a model that
drifts pays with a large last force). The differentiable-physics loss penalises the force,

    L_F = sum_t 1/2 ||F_t||^2   (mean over the batch),

and the authors' code for the hierarchical schemes adds a change-of-force ("jerk") term that the paper does not
mention, with the previous force carried along by the flow:

    L_J = sum_{t >= 1} 1/2 ||F_t - Advect[F_{t-1}, u_t]||^2   (mean over the batch).

Table 1 reports the force integral  sum_t sum_x |F_t(x)|  per example (grid units, dt = 1), averaged over 100
held-out examples.
"""
from __future__ import annotations

from torch import Tensor

from ..solvers import burgers as bu
from .setup import ControlSetup

__all__ = ["control_forces", "force_loss", "jerk_loss", "force_integral"]


def control_forces(trajectory: Tensor, setup: ControlSetup = ControlSetup()) -> Tensor:
    """F_t = u_{t+1} - Solver[u_t] for a trajectory (B, n + 1, N): (B, n, N)."""
    setup.check_state(trajectory, "the trajectory", frames=setup.steps + 1)
    return trajectory[:, 1:] - setup.step(trajectory[:, :-1])


def force_loss(forces: Tensor) -> Tensor:
    """L_F = sum_t 1/2 ||F_t||^2, averaged over the batch (forces (B, n, N))."""
    return 0.5 * forces.pow(2).sum() / forces.shape[0]


def jerk_loss(forces: Tensor, trajectory: Tensor, setup: ControlSetup = ControlSetup()) -> Tensor:
    """L_J = sum_{t >= 1} 1/2 ||F_t - Advect[F_{t-1}, u_t]||^2, averaged over the batch."""
    carried = bu.advect_semi_lagrangian(forces[:, :-1], trajectory[:, 1:-1], setup.dt, setup.dx)
    return 0.5 * (forces[:, 1:] - carried).pow(2).sum() / forces.shape[0]


def force_integral(forces: Tensor) -> Tensor:
    """The paper's metric per example: sum_t sum_x |F_t(x)| (B,)."""
    return forces.abs().sum(dim=(1, 2))
