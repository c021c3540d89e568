r"""Training the control networks, stage by stage as the paper does (Sec. 6.1, App. C, D.1), and the iterative
single-shooting baseline (App. D.1).

* supervised OP_n (Eq. 8):  1/2 ||OP_n(u_s, u_{s+n}) - u_{s+n/2}||^2  on windows of n steps (any start frame s) of
  the ground-truth trajectories, each level on its own;
* supervised CFE:  1/2 ||CFE(u_t, o*, t/n) - u_{t+1}||^2  on single ground-truth steps;
* differentiable physics: the whole sequence executed by a scheme and unrolled through the solver,
  w_F L_F + w_J L_J (:mod:`~problems.pde_control.losses`), gradients through every solver step;
* single shooting: the forces F_0 ... F_{n-2} of one task optimised directly (Adam) on L_F, the last force closing
  the gap to the target, starting from no force (the natural evolution).

All losses are means over the batch; Adam with torch's defaults besides the rate (those of TensorFlow, which the
authors used, are the same: betas (0.9, 0.999), eps 1e-8).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable

import torch
from torch import Tensor, nn

from .data import ControlScenes
from .losses import control_forces, force_loss, jerk_loss
from .networks import ControlForceEstimator, ObservationPredictors
from .schemes import execute
from .setup import ControlSetup

__all__ = ["History", "fit", "op_supervised_loss", "cfe_supervised_loss", "diff_physics_loss", "shoot",
           "shooting_loss", "shooting_trajectory", "zero_forces"]


@dataclasses.dataclass
class History:
    """Loss per iteration of one training stage, and its wall time."""
    losses: list[float] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def fit(parameters: Iterable[nn.Parameter], loss_fn: Callable[[torch.Generator], Tensor], iterations: int, lr: float,
        generator: torch.Generator, progress: Callable[[int, float], None] | None = None) -> History:
    """``iterations`` Adam steps on ``loss_fn(generator)`` (which draws its own batch); NaN/inf stops with an error."""
    params = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    history = History()
    start = time.perf_counter()
    for it in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(generator)
        value = loss.item()
        if value != value or abs(value) == float("inf"):
            raise FloatingPointError(f"the training loss became {value} at iteration {it}: lower the learning rate")
        loss.backward()
        optimizer.step()
        history.losses.append(value)
        if progress is not None:
            progress(it, value)
    history.seconds = time.perf_counter() - start
    return history


def _indices(generator: torch.Generator, batch: int, high: int) -> Tensor:
    return torch.randint(high, (batch,), generator=generator)


def op_supervised_loss(predictors: ObservationPredictors, span: int, scenes: ControlScenes, batch: int,
                       generator: torch.Generator) -> Tensor:
    """Eq. 8 on a batch of random windows of ``span`` steps."""
    steps = scenes.trajectory.shape[1] - 1
    scene = _indices(generator, batch, len(scenes))
    start = _indices(generator, batch, steps - span + 1)
    frames = scenes.trajectory[scene]
    pick = lambda offset: frames[torch.arange(batch), start + offset]  # noqa: E731
    predicted = predictors(span, pick(0), pick(span))
    return 0.5 * (predicted - pick(span // 2)).pow(2).sum() / batch


def cfe_supervised_loss(cfe: ControlForceEstimator, scenes: ControlScenes, batch: int,
                        generator: torch.Generator) -> Tensor:
    """1/2 ||CFE(u_t, o*, t/n) - u_{t+1}||^2 on random ground-truth steps t < n - 1 (the last state is the target)."""
    steps = scenes.trajectory.shape[1] - 1
    scene = _indices(generator, batch, len(scenes))
    t = _indices(generator, batch, steps - 1)
    frames = scenes.trajectory[scene]
    rows = torch.arange(batch)
    predicted = cfe(frames[rows, t], frames[:, -1], t)
    return 0.5 * (predicted - frames[rows, t + 1]).pow(2).sum() / batch


def diff_physics_loss(scheme: str, model: nn.Module, scenes: ControlScenes, setup: ControlSetup, *,
                      force_weight: float, jerk_weight: float) -> Tensor:
    """w_F L_F + w_J L_J of the trajectories ``scheme`` produces for ``scenes`` (unrolled through the solver)."""
    trajectory = execute(scheme, model, scenes.initial, scenes.target, setup)
    forces = control_forces(trajectory, setup)
    loss = force_weight * force_loss(forces)
    if jerk_weight:
        loss = loss + jerk_weight * jerk_loss(forces, trajectory, setup)
    return loss


def zero_forces(initial: Tensor, setup: ControlSetup) -> Tensor:
    """Shooting's starting point, no force: F_0 ... F_{n-2} = 0 (B, n - 1, N), a leaf that requires grad."""
    return torch.zeros(initial.shape[0], setup.steps - 1, initial.shape[-1], dtype=initial.dtype,
                       device=initial.device, requires_grad=True)


def shooting_trajectory(forces: Tensor, initial: Tensor, target: Tensor, setup: ControlSetup) -> Tensor:
    """The trajectory (B, n + 1, N) that forces F_0 ... F_{n-2} (B, n - 1, N) give: u_0 = initial,
    u_{t+1} = Solver[u_t] + F_t for t < n - 1, u_n = target (the last force closes the gap)."""
    states = [initial]
    for t in range(setup.steps - 1):
        states.append(setup.step(states[-1]) + forces[:, t])
    states.append(target)
    return torch.stack(states, dim=1)


def shooting_loss(forces: Tensor, initial: Tensor, target: Tensor, setup: ControlSetup) -> Tensor:
    """Single shooting's objective: L_F of :func:`shooting_trajectory`, summed over the batch (so that every task
    gets its own gradient: Adam acts per element)."""
    return force_loss(control_forces(shooting_trajectory(forces, initial, target, setup), setup)) * initial.shape[0]


def shoot(initial: Tensor, target: Tensor, setup: ControlSetup, iterations: int, lr: float = 0.01) -> Tensor:
    """Single shooting for each task of the batch independently: optimise F_0 ... F_{n-2} from zero with Adam on
    :func:`shooting_loss`; returns the trajectory (B, n + 1, N) of the final forces."""
    forces = zero_forces(initial, setup)
    optimizer = torch.optim.Adam([forces], lr=lr)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        shooting_loss(forces, initial, target, setup).backward()
        optimizer.step()
    with torch.no_grad():
        return shooting_trajectory(forces, initial, target, setup)
