"""Shared grid numerics: stencils, sine/Fourier transforms, spectral solvers, smooth noise.

Every function here is plain torch on the last two (spatial) dimensions, batched over any leading dimensions,
differentiable, device- and dtype-agnostic, and free of in-place writes to its inputs so that ``torch.func``
(``vmap``, ``jacrev``) works through it. Problems build their physics from these pieces instead of keeping
private copies.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "laplace_dirichlet",
    "dst1",
    "dirichlet_laplace_eigenvalues",
    "solve_poisson_dirichlet",
    "fft_wavenumbers_squared",
    "spectral_diffusion",
    "periodic_laplace_eigenvalues",
    "solve_poisson_periodic",
    "smooth_noise",
]


# ----------------------------------------------------------------------------------------------------------------
# Finite differences
# ----------------------------------------------------------------------------------------------------------------

def laplace_dirichlet(u: Tensor, dx: float = 1.0) -> Tensor:
    """5-point Laplacian with zero Dirichlet boundary (the grid is padded with zeros).

    (Lu)_{i,j} = (u_{i+1,j} + u_{i-1,j} + u_{i,j+1} + u_{i,j-1} - 4 u_{i,j}) / dx^2, u = 0 outside the grid.

    Args:
        u: field of shape (..., H, W).
        dx: grid spacing.
    Returns:
        Lu, same shape as u.
    """
    lead = u.shape[:-2]
    flat = u.reshape(-1, 1, *u.shape[-2:])
    p = F.pad(flat, (1, 1, 1, 1))
    lap = p[..., 2:, 1:-1] + p[..., :-2, 1:-1] + p[..., 1:-1, 2:] + p[..., 1:-1, :-2] - 4 * flat
    return (lap / dx**2).reshape(*lead, *u.shape[-2:])


# ----------------------------------------------------------------------------------------------------------------
# Discrete sine transform (type I) and the exact Dirichlet Poisson solve
# ----------------------------------------------------------------------------------------------------------------

def dst1(x: Tensor, dim: int = -1) -> Tensor:
    """Discrete sine transform of type I along ``dim``, computed with one FFT in O(n log n).

    X_k = sum_{j=0}^{n-1} x_j sin(pi (j+1)(k+1) / (n+1)),  k = 0..n-1.

    DST-I is its own inverse up to a factor: dst1(dst1(x)) = (n+1)/2 * x.
    Uses the odd extension [0, x, 0, -reverse(x)] of length 2(n+1), whose FFT is -2i * DST-I(x).
    """
    x = x.movedim(dim, -1)
    zero = torch.zeros_like(x[..., :1])
    ext = torch.cat([zero, x, zero, -x.flip(-1)], dim=-1)
    n = x.shape[-1]
    spec = torch.fft.fft(ext, dim=-1)
    return (-0.5 * spec.imag[..., 1:n + 1]).movedim(-1, dim)


def dirichlet_laplace_eigenvalues(shape: tuple[int, int], dx: float = 1.0, *, dtype=None, device=None) -> Tensor:
    """Eigenvalues of the 5-point zero-Dirichlet Laplacian on an (H, W) grid, indexed like the DST-I spectrum.

    lambda_{jk} = (2 cos(pi j / (H+1)) - 2 + 2 cos(pi k / (W+1)) - 2) / dx^2,  j = 1..H, k = 1..W  (all < 0).
    """
    h, w = shape
    kj = torch.arange(1, h + 1, dtype=torch.float64, device=device)
    kk = torch.arange(1, w + 1, dtype=torch.float64, device=device)
    lj = 2 * torch.cos(math.pi * kj / (h + 1)) - 2
    lk = 2 * torch.cos(math.pi * kk / (w + 1)) - 2
    return ((lj[:, None] + lk[None, :]) / dx**2).to(dtype or torch.get_default_dtype())


def solve_poisson_dirichlet(rhs: Tensor, dx: float = 1.0) -> Tensor:
    """Exact solution of L phi = rhs for the 5-point zero-Dirichlet Laplacian L (see :func:`laplace_dirichlet`).

    phi = S diag(1 / lambda) S rhs * (2/(H+1)) (2/(W+1)), with S the 2-D DST-I, which diagonalises L.
    O(HW log(HW)), no iterations, exact to rounding; linear, so its adjoint is itself (L is symmetric).
    """
    h, w = rhs.shape[-2:]
    lam = dirichlet_laplace_eigenvalues((h, w), dx, dtype=rhs.dtype, device=rhs.device)
    spec = dst1(dst1(rhs, -1), -2)
    phi = dst1(dst1(spec / lam, -1), -2)
    return phi * (4.0 / ((h + 1) * (w + 1)))


# ----------------------------------------------------------------------------------------------------------------
# Periodic Fourier helpers
# ----------------------------------------------------------------------------------------------------------------

def fft_wavenumbers_squared(shape: tuple[int, int], dx: float = 1.0, *, rfft: bool = True, dtype=None,
                            device=None) -> Tensor:
    """|k|^2 on the (r)FFT grid of an (H, W) periodic field, k in cycles per unit length (numpy's fftfreq)."""
    h, w = shape
    ky = torch.fft.fftfreq(h, d=dx, dtype=torch.float64, device=device)
    kx = (torch.fft.rfftfreq if rfft else torch.fft.fftfreq)(w, d=dx, dtype=torch.float64, device=device)
    return (ky[:, None] ** 2 + kx[None, :] ** 2).to(dtype or torch.get_default_dtype())


def spectral_diffusion(u: Tensor, amount: float, dx: float = 1.0) -> Tensor:
    """Exact periodic diffusion du/dt = nu Laplace(u) for nu*t = ``amount``, applied per Fourier mode.

    u_hat(k) <- u_hat(k) * exp(-(2 pi)^2 |k|^2 * amount)   (k in cycles per unit length).
    """
    k2 = fft_wavenumbers_squared(u.shape[-2:], dx, dtype=u.dtype, device=u.device)
    kernel = torch.exp(-(2 * math.pi) ** 2 * k2 * amount)
    return torch.fft.irfft2(torch.fft.rfft2(u) * kernel, s=u.shape[-2:])


def periodic_laplace_eigenvalues(shape: tuple[int, int], dx: float = 1.0, *, dtype=None, device=None) -> Tensor:
    """Eigenvalues of the 5-point periodic Laplacian on an (H, W) grid, on the rfft2 grid (H, W // 2 + 1).

    lambda(k) = (2 cos(2 pi k_y / H) - 2 + 2 cos(2 pi k_x / W) - 2) / dx^2,  k in cycles per domain; lambda(0) = 0.
    """
    h, w = shape
    ky = torch.fft.fftfreq(h, dtype=torch.float64, device=device)
    kx = torch.fft.rfftfreq(w, dtype=torch.float64, device=device)
    lam = (2 * torch.cos(2 * math.pi * ky)[:, None] - 2 + 2 * torch.cos(2 * math.pi * kx)[None, :] - 2) / dx**2
    return lam.to(dtype or torch.get_default_dtype())


def solve_poisson_periodic(rhs: Tensor, dx: float = 1.0) -> Tensor:
    """Exact zero-mean solution of L phi = rhs for the 5-point periodic Laplacian L, with one rfft2 pair.

    phi_hat(k) = rhs_hat(k) / lambda(k) for k != 0 (:func:`periodic_laplace_eigenvalues`), phi_hat(0) = 0, i.e. the
    mean of rhs (which a divergence always has zero) is dropped. O(HW log HW), no iterations; linear and symmetric.
    """
    lam = periodic_laplace_eigenvalues(rhs.shape[-2:], dx, dtype=rhs.dtype, device=rhs.device)
    inv = torch.where(lam == 0, torch.zeros_like(lam), 1.0 / torch.where(lam == 0, torch.ones_like(lam), lam))
    return torch.fft.irfft2(torch.fft.rfft2(rhs) * inv, s=rhs.shape[-2:])


# ----------------------------------------------------------------------------------------------------------------
# Random fields
# ----------------------------------------------------------------------------------------------------------------

def smooth_noise(batch_size: int, shape: tuple[int, int], generator: torch.Generator | None = None,
                 power: float = 2.0, low_cut: float = 0.0, dtype=torch.float32) -> Tensor:
    """Zero-mean, unit-std random fields whose Fourier amplitudes fall like 1/|k|^power.

    k counts cycles per domain; modes with |k| <= ``low_cut`` (and always k = 0) are removed (a high-pass filter, as
    in PhiFlow's ``Noise``, which with its default scale 10 on a 64-cell domain keeps |k| > 2.02).

    Generated on the CPU from ``generator`` so the same seed gives the same fields on every device.
    """
    h, w = shape
    re = torch.randn(batch_size, h, w // 2 + 1, generator=generator, dtype=torch.float64)
    im = torch.randn(batch_size, h, w // 2 + 1, generator=generator, dtype=torch.float64)
    k2 = fft_wavenumbers_squared(shape, 1.0 / max(h, w), dtype=torch.float64)  # k in cycles per domain
    amp = torch.where(k2 > max(low_cut, 0.0) ** 2, k2.clamp_min(1e-12) ** (-power / 2), torch.zeros_like(k2))
    field = torch.fft.irfft2(torch.complex(re, im) * amp, s=shape)
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    field = field / field.std(dim=(-2, -1), keepdim=True)
    return field.to(dtype)
