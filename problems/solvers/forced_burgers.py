r"""The 2-D viscous Burgers equation with an external force on a periodic staggered grid: the "forced
advection-diffusion" scenario of Solver-in-the-Loop (Um, Brand, Fei, Holl, Thuerey, NeurIPS 2020), with the settings
of the authors' ``burgers/`` code:

    dv/dt = -(v . grad) v + nu Laplace v + f(x, t),

one step of length dt, split in the order of the authors' solver:

    v*      = Advect[v_t, v_t]                 semi-Lagrangian self-advection (bilinear back-trace),
    v**     = exp(nu dt Laplace) v*            exact diffusion of every Fourier mode (the grid is periodic),
    v_{t+1} = v** + dt f_t.

There is no pressure solve: the flow is compressible. The velocity lives on the faces of a periodic MAC grid in the
layout of :mod:`problems.solvers.staggered` (shape (..., 2, H, W), component 0 = v_x on the x-faces, 1 = v_y on the
y-faces); the operators are the ones of that module, so they are batched, differentiable and vmap-safe.

The force is a sum of travelling sine waves (the paper follows Bar-Sinai et al. 2019; :class:`WaveForcing`):

    f(x, t) = sum_i a_i sin(k_i . x + phi_i + omega_i t),

sampled at each component's own faces. The initial state is a random field with the spectrum of PhiFlow 1's
``randfreq`` (:func:`random_velocity`). A fine reference state is carried to a coarser source grid by the staggered
restriction T of the authors' code (:func:`restrict`): repeated 2x steps that keep every second face along the
component's own axis and average the two faces across it.

Authors' settings (reference 128^2 and source 32^2 on a periodic square of side 32; nu = 0.1, dt = 0.1) are in
``problems.solver_in_the_loop``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .grids import spectral_diffusion
from .staggered import advect_velocity, check_cfl, check_velocity, face_positions

__all__ = ["WaveForcing", "burgers_step", "random_velocity", "downsample2x", "restrict"]


def burgers_step(velocity: Tensor, dt: float, dx: float, viscosity: float, force: Tensor | None = None) -> Tensor:
    """One step v_{t+1} = exp(nu dt Laplace) Advect[v_t, v_t] + dt f_t of a staggered field (..., 2, H, W).

    ``force`` (broadcastable to the velocity, on the same faces) is added after diffusion, as the authors' solver
    does; None means no force. Raises ValueError for a state of the wrong layout, SimulationError for NaN/inf or a
    step that carries the flow across half the domain (:func:`problems.solvers.staggered.check_cfl`).
    """
    check_velocity(velocity)
    if not (isinstance(viscosity, (int, float)) and math.isfinite(viscosity) and viscosity >= 0):
        raise ValueError(f"viscosity must be a finite number >= 0, got {viscosity!r}")
    check_cfl(velocity, dt, dx)
    v = advect_velocity(velocity, dt, dx, scheme="semi_lagrangian")
    if viscosity > 0:
        v = spectral_diffusion(v, viscosity * dt, dx)
    if force is None:
        return v
    if force.shape[-3:] != velocity.shape[-3:]:
        raise ValueError(f"force has shape {tuple(force.shape)} but the velocity is {tuple(velocity.shape)}; the force "
                         f"must live on the same staggered faces (..., 2, H, W)")
    return v + dt * force


@dataclass(frozen=True)
class WaveForcing:
    r"""f(x, t) = sum_i a_i sin(k_i . x + phi_i + omega_i t): travelling sine waves, one set per batch entry.

    wavevector (B, n, 2) as (k_x, k_y) in radians per unit length, amplitude (B, n, 2) as (a_x, a_y), phase and
    omega (B, n). :meth:`draw` samples the authors' distribution.
    """

    wavevector: Tensor
    amplitude: Tensor
    phase: Tensor
    omega: Tensor

    @classmethod
    def draw(cls, batch: int, generator: torch.Generator | None = None, n_waves: int = 20,
             dtype: torch.dtype = torch.float64) -> "WaveForcing":
        r"""The authors' forcing: per wave a direction angle U(0, pi), |k| = 0.8 (1 + U(0, 1)), each amplitude
        component 0.3 (U(0, 1) - 1/2), phase U(0, 2 pi), omega U(-0.4, 0.4). Drawn on the CPU from ``generator``."""
        def u(*shape: int) -> Tensor:
            return torch.rand(batch, n_waves, *shape, generator=generator, dtype=torch.float64)

        angle = u() * math.pi
        magnitude = 0.8 * (1 + u())
        wavevector = magnitude[..., None] * torch.stack((torch.cos(angle), torch.sin(angle)), dim=-1)
        amplitude = 0.3 * (u(2) - 0.5)
        phase = 2 * math.pi * u()
        omega = 0.8 * u() - 0.4
        return cls(*(t.to(dtype) for t in (wavevector, amplitude, phase, omega)))

    def field(self, t: float, shape: tuple[int, int], dx: float) -> Tensor:
        """The force at time t on the faces of an (H, W) grid of spacing dx, shape (B, 2, H, W)."""
        dtype, device = self.wavevector.dtype, self.wavevector.device
        components = []
        for c, positions in enumerate(face_positions(shape, dx, dtype=dtype, device=device)):
            y, x = positions[0], positions[1]                                                   # (H, W) each
            k = self.wavevector[..., None, None, :]                                             # (B, n, 1, 1, 2)
            arg = k[..., 0] * x + k[..., 1] * y + (self.phase + self.omega * t)[..., None, None]
            components.append((self.amplitude[..., c, None, None] * torch.sin(arg)).sum(dim=1))
        return torch.stack(components, dim=1)

    def to(self, *args, **kwargs) -> "WaveForcing":
        """A copy with every parameter moved by ``Tensor.to(*args, **kwargs)``."""
        return WaveForcing(*(t.to(*args, **kwargs) for t in (self.wavevector, self.amplitude, self.phase, self.omega)))


def random_velocity(batch: int, shape: tuple[int, int], generator: torch.Generator | None = None, power: int = 8,
                    scale: float = 2.0, dtype: torch.dtype = torch.float64) -> Tensor:
    r"""A random staggered field with the spectrum of PhiFlow 1's ``randfreq`` (times ``scale``, 2 in the authors'
    Burgers generator), shape (batch, 2, H, W):

        v_c = scale Re IFFT[ c(k) power sqrt((H + W) / 2) / (1 + |k|)^power ],

    c(k) complex with independent N(0, 1) real and imaginary parts, |k| in cycles per cell (numpy's ``fftfreq``),
    IFFT normalised by 1 / (H W). So Var(v_c) = scale^2 power^2 (H + W) / 2 sum_k (1 + |k|)^(-2 power) / (H W)^2.
    Drawn in float64 on the CPU from ``generator`` (the same seed gives the same field on every device).
    """
    h, w = shape
    re = torch.randn(batch, 2, h, w, generator=generator, dtype=torch.float64)
    im = torch.randn(batch, 2, h, w, generator=generator, dtype=torch.float64)
    ky, kx = torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64)
    k = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    weight = (1 / (k + 1)) ** power * power * math.sqrt((h + w) / 2)
    return (scale * torch.fft.ifft2(torch.complex(re, im) * weight).real).to(dtype)


def downsample2x(velocity: Tensor) -> Tensor:
    """Staggered 2x restriction (..., 2, H, W) -> (..., 2, H/2, W/2): v_x keeps every second x-face and averages the
    two fine faces it covers in y; v_y likewise with the axes swapped (PhiFlow's ``downsample2x``)."""
    check_velocity(velocity)
    h, w = velocity.shape[-2:]
    if h % 2 or w % 2:
        raise ValueError(f"cannot halve a {h} x {w} grid; both sizes must be even")
    vx, vy = velocity[..., 0, :, :], velocity[..., 1, :, :]
    vx = 0.5 * (vx[..., 0::2, 0::2] + vx[..., 1::2, 0::2])
    vy = 0.5 * (vy[..., 0::2, 0::2] + vy[..., 0::2, 1::2])
    return torch.stack((vx, vy), dim=-3)


def restrict(velocity: Tensor, factor: int) -> Tensor:
    """The projection T of a reference state onto a grid ``factor`` (a power of two) times coarser: repeated
    :func:`downsample2x`, as the authors' code does (4x = two 2x steps)."""
    if not (isinstance(factor, int) and factor >= 1 and factor & (factor - 1) == 0):
        raise ValueError(f"the restriction factor must be a power of two (1, 2, 4, ...), got {factor!r}")
    h, w = velocity.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"a {h} x {w} grid cannot be coarsened {factor}x; both sizes must be multiples of {factor}")
    while factor > 1:
        velocity, factor = downsample2x(velocity), factor // 2
    return velocity

