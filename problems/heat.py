"""2-D heat-equation inverse problem of the SIP paper (Sec. 3.5, Fig. 6c,d)."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from .settings import BenchmarkSettings, Preset, opt, quick
from .base import Batch
from .fields import FieldConfig, FieldProblem
from .solvers.grids import fft_wavenumbers_squared, spectral_diffusion


@dataclasses.dataclass
class HeatConfig(FieldConfig):
    """64x64 periodic cells, dx = 1, nu*t = 8; x* = 4..10 soft rectangles (authors' code)."""
    amount: float = 8.0
    min_rectangles: int = 4
    max_rectangles: int = 10
    max_half_size: float = 10.0
    noise_level: float = 1e-6
    signal_prior: float = 0.5
    action_threshold: float = 0.68


def soft_rectangles(batch_size: int, resolution: int, generator: torch.Generator | None, *, min_count: int = 4,
                    max_count: int = 10, max_half_size: float = 10.0) -> Tensor:
    """Sum of ``min_count..max_count`` axis-aligned rectangles per example, float64 (B, N, N).

    Centres uniform in the central 80% of the domain (clipped so the box stays inside), half sizes U(0,
    max_half_size) per axis, strengths U(0, 1); edges are soft: each cell is weighted by its overlap fraction with
    the box (1 inside, 0 outside, linear over one cell at the edge).
    """
    n = resolution
    count = min_count + torch.floor((max_count - min_count + 1) * torch.rand(batch_size, generator=generator,
                                                                             dtype=torch.float64))
    slots = max_count
    centre = (torch.rand(batch_size, slots, 2, generator=generator, dtype=torch.float64) - 0.5) * 0.8 * n + 0.5 * n
    half = torch.rand(batch_size, slots, 2, generator=generator, dtype=torch.float64) * max_half_size
    strength = torch.rand(batch_size, slots, generator=generator, dtype=torch.float64)
    strength = strength * (torch.arange(slots, dtype=torch.float64) < count[:, None])
    centre = torch.minimum(torch.maximum(centre, half), n - half)
    cells = torch.arange(n, dtype=torch.float64)  # cell i spans [i, i+1]

    def overlap(c, h):  # (B, S) -> (B, S, N): overlap of [c-h, c+h] with each cell
        lo, hi = (c - h)[..., None], (c + h)[..., None]
        return (torch.minimum(hi, cells + 1) - torch.maximum(lo, cells)).clamp(0, 1)

    wy = overlap(centre[..., 0], half[..., 0])
    wx = overlap(centre[..., 1], half[..., 1])
    return torch.einsum("bs,bsy,bsx->byx", strength, wy, wx)


def damped_inverse_diffusion(dy: Tensor, amount: float, dx: float = 1.0, noise_level: float = 1e-6,
                             signal_prior: float = 0.5, action_threshold: float = 0.68) -> Tensor:
    r"""Numerically stable inverse of periodic diffusion applied to a residual dy (SIP paper Sec. 3.5, heat).

    Per Fourier mode k with a = |dy_hat(k)|, the full inverse multiplies by exp(+(2 pi)^2 |k|^2 * amount), which
    amplifies noise without bound. Instead each mode is treated as signal or noise:

    * expected signal amplitude  s_k = N * exp(-(2 pi)^2 |k|^2 amount)  (a unit-size x mode after diffusion),
    * noise amplitude  sigma = noise_level * ||dy||_2  (the same for every mode),
    * p_k = P(signal | a) with Gaussian likelihoods exp(-a^2 / (2 s_k^2)), exp(-a^2 / (2 sigma^2)) and the prior
      ``signal_prior``, evaluated in log space (no 0/0 when both likelihoods underflow),
    * alpha_k = 2 p_k - 1 in [-1, 1], set to 0 where 0.5 < p_k < ``action_threshold`` (no action below ~1 sigma),
    * kernel_k = exp(alpha_k * (2 pi)^2 |k|^2 * amount), the log-kernel clamped to the float32 range.

    alpha = 1 is the exact inverse, 0 passes the mode through, -1 diffuses it. Constants as in the authors' code.
    Computed in float64; returns dy's dtype.
    """
    work = dy.to(torch.float64)
    n = work.shape[-1]
    k2 = fft_wavenumbers_squared(work.shape[-2:], dx, dtype=torch.float64, device=work.device)
    log_kernel = (2 * math.pi) ** 2 * k2 * amount  # log of the full inverse kernel, >= 0
    amp = torch.fft.rfft2(work)
    a = amp.abs()
    sigma = noise_level * work.reshape(*work.shape[:-2], -1).norm(dim=-1)[..., None, None]
    tiny = torch.finfo(torch.float64).tiny
    log_signal = -0.5 * (a / n) ** 2 * torch.exp(2 * log_kernel).clamp_max(torch.finfo(torch.float64).max) \
        + math.log(signal_prior)
    log_noise = -0.5 * (a / sigma.clamp_min(tiny)) ** 2 + math.log(1 - signal_prior)
    p_signal = torch.sigmoid(log_signal - log_noise)
    alpha = torch.where((p_signal <= 0.5) | (p_signal >= action_threshold), 2 * p_signal - 1, torch.zeros_like(a))
    log_max = math.floor(math.log(torch.finfo(torch.float32).max))
    kernel = torch.exp((alpha * log_kernel).clamp(-log_max, log_max))
    out = torch.fft.irfft2(amp * kernel, s=work.shape[-2:])
    return out.to(dy.dtype)


class HeatProblem(FieldProblem):
    r"""Infer the initial heat sources x from the diffused profile: P(x) = exp(nu t Laplace) x, periodic.

    Diffusion is applied exactly per Fourier mode (:func:`problems.solvers.grids.spectral_diffusion`) in float64 (as the
    authors did); P destroys high frequencies, so dP/dx is near-singular. The default network's output is shifted
    to the mean of its input, since diffusion keeps the mean.
    SIP update: dx = :func:`damped_inverse_diffusion` of the residual y* - P(x).
    Metric: L1 error of x against x* (sum over cells, batch mean).
    """

    name = "heat"
    description = "2-D periodic heat equation, nu*t = 8, rectangle sources, U-net (SIP paper Sec. 3.5, Fig. 6c,d)"
    Config = HeatConfig
    benchmark = BenchmarkSettings(
        optimizers=("adam", "sgd", "sip"), batch_size=128, held_out_size=64,
        source="SIP paper Sec. 3.5 / authors' code: batch 128; 64 held-out examples (ours)",
        per_optimizer={"adam": opt("authors' code", lr=1e-3), "sip": opt("authors' code (Adam's rate)", lr=1e-3),
                       "sgd": opt("authors' code 2e-6 on the summed loss, times the batch size 128", lr=2e-6 * 128)},
        presets={"quick": quick(resolution=16, max_half_size=3.0), "standard": Preset(iterations=300, batch_size=32),
                 "paper": Preset(iterations=10_000)})
    preserve_mean = True

    def sample_solution(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        c = self.config
        return soft_rectangles(batch_size, c.resolution, generator, min_count=c.min_rectangles,
                               max_count=c.max_rectangles, max_half_size=c.max_half_size)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        y = spectral_diffusion(x.to(torch.float64), self.config.amount, self.config.dx)
        return y.to(x.dtype)

    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        self.check_prediction(x, batch)
        c = self.config
        dy = batch.target.to(torch.float64) - self.forward(x.to(torch.float64), batch)
        return damped_inverse_diffusion(dy, c.amount, c.dx, c.noise_level, c.signal_prior,
                                        c.action_threshold).to(x.dtype)
