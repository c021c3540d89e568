"""Explicit time integrators for ODEs ds/dt = f(s, t, *args), in plain torch.

Everything here is functional: no in-place operations on inputs and no Python control flow on tensor values, so the
integrators are differentiable, run on any device and dtype, and are safe under ``torch.func.vmap`` / ``jacrev``.
Problems that simulate an ODE with a piecewise-constant control (one value per time step) share :func:`integrate`.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["RHS", "rk4_step", "integrate"]

#: right-hand side f(state, t, *args) -> ds/dt, same shape as state
RHS = Callable[..., Tensor]


def rk4_step(f: RHS, state: Tensor, t: float, dt: float, *args) -> Tensor:
    r"""One step of the classic 4th-order Runge-Kutta method for ds/dt = f(s, t, *args):

        k1 = f(s_n,               t_n,        *args)
        k2 = f(s_n + dt/2 * k1,   t_n + dt/2, *args)
        k3 = f(s_n + dt/2 * k2,   t_n + dt/2, *args)
        k4 = f(s_n + dt   * k3,   t_n + dt,   *args)
        s_{n+1} = s_n + dt/6 * (k1 + 2 k2 + 2 k3 + k4)

    ``args`` are held fixed over the step (a control that is constant on [t_n, t_n + dt]).
    Local error O(dt^5), global error O(dt^4). Returns a new tensor; ``state`` is not modified.
    """
    half = 0.5 * dt
    k1 = f(state, t, *args)
    k2 = f(torch.add(state, k1, alpha=half), t + half, *args)
    k3 = f(torch.add(state, k2, alpha=half), t + half, *args)
    k4 = f(torch.add(state, k3, alpha=dt), t + dt, *args)
    incr = torch.add(torch.add(k1, k4), torch.add(k2, k3), alpha=2.0)
    return torch.add(state, incr, alpha=dt / 6.0)


def integrate(f: RHS, state: Tensor, dt: float, controls: Tensor | None = None, *, steps: int | None = None,
              t0: float = 0.0, step: Callable[..., Tensor] = rk4_step,
              return_trajectory: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    r"""Integrate ds/dt = f(s, t, u(t)) over n steps of size dt with a piecewise-constant control.

        s_{k+1} = step(f, s_k, t0 + k dt, dt, u_k),   k = 0 .. n-1,   u(t) = u_k  for t in [t0 + k dt, t0 + (k+1) dt)

    Args:
        f: right-hand side ``f(s, t, u_k)`` (or ``f(s, t)`` when ``controls`` is None), batched like ``state``.
        state: start state s_0, shape (B, *state_shape).
        dt: time step.
        controls: one control per step, shape (B, n, *control_shape); step k passes ``controls[:, k]`` (shape
            (B, *control_shape)) to f. None for an uncontrolled system (then ``steps`` is required).
        steps: number of steps n; defaults to ``controls.shape[1]`` and must match it when both are given.
        t0: start time.
        step: the one-step method ``step(f, s, t, dt, *args)``, :func:`rk4_step` by default.
        return_trajectory: also return all states s_0 .. s_n stacked on dim 1, shape (B, n + 1, *state_shape).

    Returns:
        the final state s_n (and the trajectory with ``return_trajectory``).
    """
    if controls is None:
        if steps is None:
            raise ValueError("integrate: pass controls of shape (B, n_steps, ...) or the number of steps")
        per_step: list[tuple] = [()] * steps
    else:
        if controls.dim() < 2:
            raise ValueError(f"integrate: controls must have shape (B, n_steps, ...), got {tuple(controls.shape)}")
        if steps is not None and steps != controls.shape[1]:
            raise ValueError(f"integrate: steps={steps} but controls hold {controls.shape[1]} steps")
        per_step = [(u,) for u in controls.unbind(1)]
    trajectory = [state] if return_trajectory else None
    for k, args in enumerate(per_step):
        state = step(f, state, t0 + k * dt, dt, *args)
        if trajectory is not None:
            trajectory.append(state)
    if trajectory is not None:
        return state, torch.stack(trajectory, dim=1)
    return state
