r"""The 1-D viscous Burgers' equation on an open interval, as "Learning to Control PDEs with Differentiable Physics"
(Holl, Koltun, Thuerey, ICLR 2020; App. A and D.1) simulates it:

    du/dt = -u du/dx + nu d^2u/dx^2,

one step of length dt is  u_{t+1} = Diffuse[Advect[u_t, u_t]]:

* semi-Lagrangian advection: each cell centre x_i is traced back along the velocity,
  a_i = u(x_i - dt u_i) with u read by linear interpolation between cell centres; a back-traced point outside
  the domain reads the nearest edge cell (the open boundary of the authors' code: edge replication);
* explicit diffusion: u_{t+1} = a + nu dt / dx^2 (a_{i-1} - 2 a_i + a_{i+1}) with zero-gradient ghost cells
  (a_{-1} = a_0, a_N = a_{N-1}: no diffusive flux through the boundaries). Stable for nu dt / dx^2 <= 1/2.

The paper's Burgers experiment works in grid units: 32 cells, dx = 1, dt = 1, nu = 0.1 (nu dt / dx^2 = 0.1), so a
velocity of 3 moves a feature 3 cells per step. A control adds a force after each step: u_{t+1} = Solver[u_t] + F_t
(the authors' code defines F_t that way); the data generator adds a constant force before each step instead.

Every function takes states of shape (..., N) (any leading batch dimensions), makes no in-place writes to its
inputs and reads no tensor values on the host, so autograd and ``torch.func`` (vmap, jacrev) work through it.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["MAX_DIFFUSION_NUMBER", "BurgersStabilityError", "diffusion_number", "check_stability",
           "laplace_zero_gradient", "sample_linear_clamped", "advect_semi_lagrangian", "diffuse_explicit",
           "burgers_step", "rollout"]

#: the explicit 3-point diffusion step is stable for nu dt / dx^2 <= 1/2 (von Neumann analysis)
MAX_DIFFUSION_NUMBER = 0.5


class BurgersStabilityError(ValueError):
    """A time step beyond the stability limit of the explicit diffusion step (nu dt / dx^2 > 1/2)."""


def diffusion_number(viscosity: float, dt: float, dx: float) -> float:
    """The diffusion number  r = nu dt / dx^2  of the explicit step."""
    return viscosity * dt / dx ** 2


def check_stability(viscosity: float, dt: float, dx: float) -> None:
    """Raise :class:`BurgersStabilityError` unless  nu dt / dx^2 <= 1/2  (and nu >= 0, dt > 0, dx > 0), naming the
    largest stable dt."""
    for name, value in (("dt", dt), ("dx", dx)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise BurgersStabilityError(f"Burgers solver: {name} must be a finite number > 0, got {value!r}")
    if not (isinstance(viscosity, (int, float)) and math.isfinite(viscosity) and viscosity >= 0):
        raise BurgersStabilityError(f"Burgers solver: viscosity must be a finite number >= 0, got {viscosity!r}")
    r = diffusion_number(viscosity, dt, dx)
    if r > MAX_DIFFUSION_NUMBER:
        raise BurgersStabilityError(
            f"Burgers solver: dt={dt:g} is beyond the stability limit of explicit diffusion: nu*dt/dx^2 = {r:g} > "
            f"{MAX_DIFFUSION_NUMBER} (viscosity {viscosity:g}, dx {dx:g}); use dt <= "
            f"{MAX_DIFFUSION_NUMBER * dx ** 2 / viscosity:g}")


def laplace_zero_gradient(u: Tensor, dx: float = 1.0) -> Tensor:
    """The 3-point Laplacian  (u_{i-1} - 2 u_i + u_{i+1}) / dx^2  with ghost cells equal to the edge cells."""
    padded = torch.cat([u[..., :1], u, u[..., -1:]], dim=-1)
    return (padded[..., :-2] - 2 * u + padded[..., 2:]) / dx ** 2


def sample_linear_clamped(field: Tensor, position: Tensor) -> Tensor:
    """``field`` (..., N) read at ``position`` (..., N), in cell indices (cell i is at i), by linear interpolation;
    positions outside [0, N-1] read the edge cell (edge replication). Differentiable in both arguments."""
    n = field.shape[-1]
    if n < 2:
        raise ValueError(f"Burgers solver: a state needs at least 2 cells to interpolate, got {n}")
    position = position.clamp(0.0, n - 1.0)
    left = torch.floor(position).clamp(max=n - 2)
    weight = position - left
    index = left.long()
    return (torch.gather(field, -1, index) * (1 - weight) + torch.gather(field, -1, index + 1) * weight)


def advect_semi_lagrangian(field: Tensor, velocity: Tensor, dt: float, dx: float = 1.0) -> Tensor:
    """Semi-Lagrangian advection of ``field`` by ``velocity`` (both (..., N), at cell centres):
    a_i = field(x_i - dt velocity_i), read with :func:`sample_linear_clamped`."""
    cells = torch.arange(field.shape[-1], dtype=velocity.dtype, device=velocity.device)
    return sample_linear_clamped(field, cells - velocity * (dt / dx))


def diffuse_explicit(u: Tensor, viscosity: float, dt: float, dx: float = 1.0) -> Tensor:
    """One explicit Euler diffusion step  u + nu dt Laplace(u)  (zero-gradient boundaries)."""
    return u + (viscosity * dt) * laplace_zero_gradient(u, dx)


def burgers_step(u: Tensor, dt: float = 1.0, dx: float = 1.0, viscosity: float = 0.1) -> Tensor:
    r"""One solver step  Solver[u] = Diffuse[Advect[u, u]]  (the paper's defaults: grid units, nu = 0.1).
    Raises :class:`BurgersStabilityError` when  nu dt / dx^2 > 1/2."""
    check_stability(viscosity, dt, dx)
    return diffuse_explicit(advect_semi_lagrangian(u, u, dt, dx), viscosity, dt, dx)


def rollout(u0: Tensor, steps: int, force: Tensor | None = None, *, dt: float = 1.0, dx: float = 1.0,
            viscosity: float = 0.1) -> Tensor:
    """``steps`` solver steps from ``u0`` (..., N), every state stacked: (..., steps + 1, N).

    ``force`` (..., N), held constant, is added before each step: u_{t+1} = Solver[u_t + f] (the data generator of
    the paper's Burgers experiment)."""
    if not (isinstance(steps, int) and steps >= 0):
        raise ValueError(f"Burgers solver: steps must be an integer >= 0, got {steps!r}")
    states = [u0]
    u = u0
    for _ in range(steps):
        u = burgers_step(u if force is None else u + force, dt, dx, viscosity)
        states.append(u)
    return torch.stack(states, dim=-2)
