"""Incompressible flow reconstruction from two marker observations (SIP paper Sec. 3.5, Fig. 7, Table 1).

A fluid region is marked with a passive colorant m0; after time T the marker is observed again (mT). The unknown
x = v0 is the initial velocity: P(x) = marker at T after simulating the incompressible Euler/Navier-Stokes
equations from (project(x), m0) (:func:`problems.solvers.staggered.fluid_step`, 8 steps of dt = 0.25 on 64x64 cells of
size 2, periodic). The network sees [m0, mT] and predicts the staggered v0.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from .settings import BenchmarkSettings, Preset, opt, quick
from .base import Batch, Problem, ProblemConfig
from .solvers.grids import smooth_noise
from .networks import UNet
from .solvers.staggered import (centre_of_mass, centred_velocity, check_cfl, check_velocity, face_positions,
                                fluid_step, project)


@dataclasses.dataclass
class NavierStokesConfig(ProblemConfig):
    """The paper's setup (authors' code): 64x64 cells of size 2 (a 128x128 periodic domain), 8 steps of dt = 0.25,
    MacCormack advection, energy-preserving rescale, no viscosity. ``conserve_mass`` (not in the authors' code) keeps
    the marker's total mass, which MacCormack alone changes by up to ~6% over the 8 steps. Data: marker = top 5-15% of a noise field in a
    56x56 box centred uniformly in [32, 96]^2; v0 = the uniform motion carrying the marker's centre of mass to the
    domain centre in time T + a Gaussian vortex at the centre (sigma 20, strength U(-2, 2)) + 0.1 * noise.
    Loss: frequency-weighted marker mismatch, weights exp(-(|k| * falloff)^2 / 2), k in cycles per unit length."""
    resolution: int = 64
    dx: float = 2.0
    steps: int = 8
    dt: float = 0.25
    viscosity: float = 0.0
    preserve_energy: bool = True
    conserve_mass: bool = True
    marker_box: float = 56.0
    marker_centre_low: float = 32.0
    marker_centre_high: float = 96.0
    fill_low: float = 0.05
    fill_high: float = 0.15
    vortex_sigma: float = 20.0
    vortex_strength: float = 2.0
    fluctuation: float = 0.1
    frequency_falloff: float = 80.0
    unet_levels: int = 5
    unet_filters: int = 16
    max_cfl: float = 10.0


class VelocityNet(nn.Module):
    """U-net from the two marker frames (B, 2, H, W) to the staggered initial velocity (B, 2, H, W)."""

    def __init__(self, levels: int, filters: int):
        super().__init__()
        self.unet = UNet(2, 2, levels, filters)

    def forward(self, markers: Tensor) -> Tensor:
        return self.unet(markers)


class NavierStokesProblem(Problem):
    r"""Infer the initial velocity v0 of a 2-D incompressible flow from the marker at t = 0 and t = T.

    Physics: P(x) = m(T) from :func:`problems.solvers.staggered.fluid_step` applied ``steps`` times to (project(x), m0).
    Loss (for gradient training): L = sum_k w_k |F[m(T) - mT]_k|, w_k = exp(-|k|^2 falloff^2 / 2), mean (k = 0)
    ignored, as the authors (PhiFlow's ``frequency_loss`` with n = 1, falloff 80).
    SIP update (:meth:`inverse_update`): estimate the uniform motion from m0, the vortex strength of the prediction,
    simulate forward from the prediction and in reverse from mT, and correct the vortex strength from the mismatch
    of the marker's centre of mass between the two runs (see :meth:`vortex_correction`).
    Metric: L1 error of v0 = sum over cells of |v0(c) - v0*(c)|_2 at the cell centres, batch mean.
    """

    name = "navier-stokes"
    description = ("2-D incompressible flow, v0 from markers (m0, mT), 64x64 MAC grid, 8 MacCormack steps, U-net "
                   "(SIP paper Sec. 3.5, Fig. 7)")
    Config = NavierStokesConfig
    benchmark = BenchmarkSettings(
        optimizers=("adam", "sgd", "sip"), batch_size=64, held_out_size=64,
        source="SIP paper Sec. 3.5 / authors' code: batch 64; 64 held-out examples (ours)",
        per_optimizer={
            "adam": opt("authors' code", lr=5e-3), "sip": opt("authors' code", lr=5e-3),
            "sgd": opt("ours: the paper runs no SGD here; results/tune/navier-stokes_sgd.json (1e-2 and above make "
                       "velocities the simulation cannot step)", lr=1e-3)},
        presets={"quick": quick(iterations=2, batch_size=2, resolution=16, dx=8.0, unet_levels=3),
                 "standard": Preset(iterations=200), "paper": Preset(iterations=20_000)})
    x_error_name = "v0 L1 error"

    def __init__(self, config: NavierStokesConfig | None = None, **kwargs):
        super().__init__(config, **kwargs)
        c = self.config
        if c.resolution < 16 or c.resolution % 2 ** (c.unet_levels - 1):
            raise ValueError(f"navier-stokes: resolution must be >= 16 and divisible by 2^(unet_levels-1) = "
                             f"{2 ** (c.unet_levels - 1)}, got {c.resolution}")
        if c.steps < 1:
            raise ValueError(f"navier-stokes: steps must be >= 1, got {c.steps}")
        if not (math.isfinite(c.dt) and c.dt > 0):
            raise ValueError(f"navier-stokes: dt must be a finite number > 0, got {c.dt}")

    # ---- geometry -----------------------------------------------------------------------------------------------
    @property
    def x_shape(self) -> tuple[int, ...]:
        n = self.config.resolution
        return (2, n, n)

    @property
    def size(self) -> float:
        """Side length of the periodic domain."""
        return self.config.resolution * self.config.dx

    @property
    def duration(self) -> float:
        return self.config.steps * self.config.dt

    def vortex_pattern(self, dtype=torch.float64, device=None) -> Tensor:
        """The unit-strength vortex at the domain centre on the staggered grid, (2, H, W):
        phi(r) = exp(-|r|^2 / (2 sigma^2)) (-r_y, r_x), r = position - centre (counter-clockwise for strength > 0)."""
        c = self.config
        n = c.resolution
        centre = self.size / 2
        (xy, xx), (yy, yx) = face_positions((n, n), c.dx, dtype=dtype, device=device)
        gx = torch.exp(-((xx - centre) ** 2 + (xy - centre) ** 2) / (2 * c.vortex_sigma ** 2))
        gy = torch.exp(-((yx - centre) ** 2 + (yy - centre) ** 2) / (2 * c.vortex_sigma ** 2))
        return torch.stack((-gx * (xy - centre), gy * (yx - centre)))

    def uniform_field(self, velocity: Tensor) -> Tensor:
        """A uniform (B, 2) velocity (v_x, v_y) as a staggered field (B, 2, H, W)."""
        n = self.config.resolution
        return velocity[:, :, None, None].expand(-1, 2, n, n)

    # ---- simulation ---------------------------------------------------------------------------------------------
    def simulate(self, velocity: Tensor, marker: Tensor, record: bool = False):
        """Run ``steps`` fluid steps from (velocity, marker); the velocity is projected first. Returns the final
        (velocity, marker), or with ``record`` the lists of markers and velocities at every time level."""
        c = self.config
        check_velocity(velocity, (c.resolution, c.resolution))
        check_cfl(velocity, c.dt, c.dx, c.max_cfl)
        v = project(velocity, c.dx)
        markers, velocities = [marker], [v]
        for _ in range(c.steps):
            v, marker = fluid_step(v, marker, c.dt, c.dx, viscosity=c.viscosity, preserve_energy=c.preserve_energy,
                                   conserve_mass=c.conserve_mass)
            if record:
                markers.append(marker)
                velocities.append(v)
        return (markers, velocities) if record else (v, marker)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        return self.simulate(x, batch.inputs[:, 0])[1]

    # ---- data ---------------------------------------------------------------------------------------------------
    def sample_markers(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """m0: 1 on the top ``fill`` fraction (U(fill_low, fill_high)) of a noise field restricted to a box of side
        ``marker_box`` centred uniformly in [low, high]^2; 0 elsewhere. float64 (B, H, W)."""
        c = self.config
        n = c.resolution
        f64 = dict(dtype=torch.float64)
        centre = c.marker_centre_low + (c.marker_centre_high - c.marker_centre_low) * \
            torch.rand(batch_size, 2, generator=generator, **f64)
        fill = c.fill_low + (c.fill_high - c.fill_low) * torch.rand(batch_size, generator=generator, **f64)
        noise = smooth_noise(batch_size, (n, n), generator, power=1.0, low_cut=2.0, dtype=torch.float64)
        pos = (torch.arange(n, **f64) + 0.5) * c.dx
        inside_y = (pos[None, :] - centre[:, :1]).abs() < c.marker_box / 2
        inside_x = (pos[None, :] - centre[:, 1:]).abs() < c.marker_box / 2
        box = (inside_y[:, :, None] & inside_x[:, None, :]).to(torch.float64)
        masked = (noise * box).reshape(batch_size, -1)
        threshold = torch.quantile(masked, 1 - fill, dim=-1).diagonal()
        return (masked >= threshold[:, None]).reshape(batch_size, n, n).to(torch.float64) * box

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        """Fresh problems: m0, v0* (projected, float64) and mT = P(v0*); the network sees [m0, mT]."""
        c = self.config
        n = c.resolution
        m0 = self.sample_markers(batch_size, generator)
        uniform = (self.size / 2 - centre_of_mass(m0, c.dx)) / self.duration          # (y, x)
        strength = (2 * torch.rand(batch_size, generator=generator, dtype=torch.float64) - 1) * c.vortex_strength
        noise = smooth_noise(2 * batch_size, (n, n), generator, power=1.0, low_cut=2.0, dtype=torch.float64)
        v0 = self.uniform_field(uniform.flip(-1)) + strength[:, None, None, None] * self.vortex_pattern() \
            + c.fluctuation * noise.reshape(batch_size, 2, n, n)
        v0 = project(v0, c.dx)
        mt = self.simulate(v0, m0)[1]
        return Batch(inputs=torch.stack((m0, mt), 1), target=mt, x_true=v0).to(self.device, self.dtype)

    # ---- loss and metric ----------------------------------------------------------------------------------------
    def frequency_weights(self, dtype=torch.float64, device=None) -> Tensor:
        """w_k = exp(-|k|^2 falloff^2 / 2) on the fft2 grid (k in cycles per unit length), w_0 = 0."""
        c = self.config
        k = torch.fft.fftfreq(c.resolution, d=c.dx, dtype=torch.float64, device=device)
        w = torch.exp(-0.5 * (k[:, None] ** 2 + k[None, :] ** 2) * c.frequency_falloff ** 2)
        w[0, 0] = 0.0
        return w.to(dtype)

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        """L_i = sum_k w_k sqrt(|F[y_i - y*_i]_k|^2 + eps) with eps = 1e-10 (smooth at a perfect match)."""
        spec = torch.fft.fft2(y - batch.target)
        w = self.frequency_weights(y.dtype, y.device)
        return (w * torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-10)).sum(dim=(-2, -1))

    def x_error(self, x: Tensor, batch: Batch) -> Tensor | None:
        """sum over cells of |project(x) - v0*|_2 at the cell centres (the velocity the simulation actually uses)."""
        if batch.x_true is None:
            return None
        diff = centred_velocity(project(x, self.config.dx) - batch.x_true)
        return diff.pow(2).sum(-3).sqrt().sum(dim=(-2, -1))

    # ---- SIP update ---------------------------------------------------------------------------------------------
    def vortex_strength(self, velocity: Tensor) -> Tensor:
        """Least-squares fit of v ~ a_x e_x + a_y e_y + w phi over all faces; returns w (B,)."""
        phi = self.vortex_pattern(velocity.dtype, velocity.device)
        n = self.config.resolution
        ones = torch.zeros(2, 2, n, n, dtype=velocity.dtype, device=velocity.device)
        ones[0, 0] = 1
        ones[1, 1] = 1
        basis = torch.cat((ones, phi[None])).reshape(3, -1)                            # (3, 2HW)
        coef = torch.linalg.solve(basis @ basis.T, basis @ velocity.reshape(velocity.shape[0], -1).T)
        return coef[2]

    def vortex_correction(self, velocity: Tensor, batch: Batch) -> Tensor:
        r"""Vortex-strength correction dw (B,) from forward and reverse simulations (SIP paper's fluid update).

        Forward: simulate from (v, m0) and record the marker's centre of mass c_f(t_k) at every time level. Reverse:
        simulate from mT with the negated final velocity, giving c_r(t_k). If the true flow is v + dw phi, the true
        trajectory turns by dw g(|rho|) t around the vortex centre s(t) = centre + u t (u the uniform motion) and
        the reverse run, started from the true end point, is offset from the forward run by
        c_f - c_r = -dw T g(|rho|) perp(rho), rho = c_r - s, perp(a) = (-a_y, a_x). Least squares over the levels:
            dw = sum_k g_k cross(c_f - c_r, rho_k) / (T sum_k g_k^2 |rho_k|^2),  cross(a, b) = a_x b_y - a_y b_x.
        A scale-invariant estimate (no gain to tune), in place of the authors' fixed factor 1e-3.
        """
        c = self.config
        m0, mt = batch.inputs[:, 0], batch.inputs[:, 1]
        markers, velocities = self.simulate(velocity, m0, record=True)
        com_f = torch.stack([centre_of_mass(m, c.dx) for m in markers], 1)                    # (B, K+1, 2) (y, x)
        rev_markers, _ = self.simulate(-velocities[-1], mt, record=True)
        com_r = torch.stack([centre_of_mass(m, c.dx) for m in rev_markers[::-1]], 1)
        times = torch.arange(c.steps + 1, dtype=velocity.dtype, device=velocity.device) * c.dt
        uniform = (self.size / 2 - centre_of_mass(m0, c.dx))[:, None, :] / self.duration
        rho = com_r - (self.size / 2 + uniform * times[None, :, None])
        g = torch.exp(-(rho ** 2).sum(-1) / (2 * c.vortex_sigma ** 2))
        d = com_f - com_r
        cross = d[..., 1] * rho[..., 0] - d[..., 0] * rho[..., 1]
        den = self.duration * (g ** 2 * (rho ** 2).sum(-1)).sum(1)
        return (g * cross).sum(1) / den.clamp_min(1e-6 * c.dx ** 2)

    @torch.no_grad()
    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        """dx = v~ - x with v~ = uniform motion from m0 + (w(x) + dw) phi (SIP paper's reverse-simulation update)."""
        self.check_prediction(x, batch)
        c = self.config
        m0 = batch.inputs[:, 0]
        uniform = (self.size / 2 - centre_of_mass(m0, c.dx)) / self.duration
        v = project(x, c.dx)
        strength = self.vortex_strength(v) + self.vortex_correction(v, batch)
        target = self.uniform_field(uniform.flip(-1)) + strength[:, None, None, None] * \
            self.vortex_pattern(x.dtype, x.device)
        return project(target, c.dx) - x

    # ---- network ------------------------------------------------------------------------------------------------
    def default_network(self) -> nn.Module:
        c = self.config
        return VelocityNet(c.unet_levels, c.unet_filters).to(self.device, self.dtype)
