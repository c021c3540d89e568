"""The unsteady wake flow of Solver-in-the-Loop (Um et al. 2020, the authors' ``karman-2d/``): settings, the
projection T and the reference simulations. Every fact and its source: ``docs/dev/sil-wake-flow-reference.md``.

A 200 x 100 box (y along the flow), a cylinder of radius 10 at (y, x) = (50, 50), inflow v_y = 1 from below, a
passive marker fed by a box at the bottom. Reference grid 256 x 128, source 64 x 32 (4x coarser), dt = 1 on both.
The Reynolds-number parameter re sets the viscosity: alpha = dt res^2 / re per step in index units (res = the number
of x cells of the grid), i.e. nu = 1e4 / re on both grids. Training simulations use re = 1e4 2^(i+4), i = 0..5;
test simulations re = 3e4 2^(i+3), i = 0..4 (between the training values). A reference run starts from v_y = 1
and a sideways kick behind the obstacle, runs 1000 steps to let the vortex street form, then keeps 500 frames.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..base import ProblemError
from ..solvers import open_flow as of
from .data import Simulations

__all__ = ["WakeFlow", "WakeSimulations", "restrict_velocity", "restrict_marker", "simulate_wake"]


@dataclasses.dataclass(frozen=True)
class WakeFlow:
    """Settings of the wake-flow scenario (defaults: the authors' Makefile and scripts)."""
    width: float = 100.0
    reference_resolution: int = 128          # x cells of the reference grid (y: twice as many)
    source_resolution: int = 32
    dt: float = 1.0
    obstacle_centre: tuple[float, float] = (50.0, 50.0)
    obstacle_radius: float = 10.0
    inflow_lower: tuple[float, float] = (5.0, 25.0)
    inflow_upper: tuple[float, float] = (10.0, 75.0)
    warmup: int = 1000
    frames: int = 500
    training_re: tuple[float, ...] = tuple(1e4 * 2 ** (i + 4) for i in range(6))
    test_re: tuple[float, ...] = tuple(3e4 * 2 ** (i + 3) for i in range(5))

    def __post_init__(self):
        factor = self.reference_resolution // max(self.source_resolution, 1)
        if (self.source_resolution < 1 or factor * self.source_resolution != self.reference_resolution
                or factor & (factor - 1)):
            raise ProblemError(f"wake flow: the reference grid ({self.reference_resolution} x cells) must be a power "
                               f"of two times the source grid ({self.source_resolution})")
        if not (isinstance(self.frames, int) and self.frames >= 1 and isinstance(self.warmup, int)
                and self.warmup >= 0):
            raise ProblemError(f"wake flow: frames must be >= 1 and warmup >= 0, got {self.frames!r}, "
                               f"{self.warmup!r}")

    @property
    def factor(self) -> int:
        return self.reference_resolution // self.source_resolution

    def grid(self, which: str = "source") -> of.OpenGrid:
        """The 'reference' or 'source' grid: 2 res x res cells of size width / res."""
        res = {"reference": self.reference_resolution, "source": self.source_resolution}.get(which)
        if res is None:
            raise ValueError(f"unknown grid {which!r}; choose 'reference' or 'source'")
        return of.OpenGrid(2 * res, res, self.width / res)

    def alpha(self, re: Tensor | float, which: str = "source") -> Tensor | float:
        """The explicit viscosity step alpha = dt res^2 / re (index units) of that grid."""
        return self.dt * self.grid(which).width ** 2 / re

    def solid(self, which: str = "source") -> Tensor:
        return of.circle_mask(self.grid(which), self.obstacle_centre, self.obstacle_radius)

    def inflow(self, which: str = "source") -> Tensor:
        return of.box_occupancy(self.grid(which), self.inflow_lower, self.inflow_upper)

    def initial_state(self, batch: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """The authors' warm start on the reference grid: v_y = 1 everywhere, v_x = 1 on a 10 x 4 patch of x-faces
        (rows H/2 + 10 ... H/2 + 19 and columns W/2 - 2 ... W/2 + 1 of the padded (H+1) x (W+1) tensor)."""
        g = self.grid("reference")
        hs, ws = g.height + 1, g.width + 1
        v = torch.zeros(batch, 2, hs, ws, dtype=dtype)
        v[:, 1, :, :g.width] = 1.0
        v[:, 0, hs // 2 + 10:hs // 2 + 20, ws // 2 - 2:ws // 2 + 2] = 1.0
        return v


    # ---- the source solver and the scenario protocol of the training code ----------------------------------------

    #: the correction network's input layout: one constant re channel, padded staggered states
    correction_layout = {"condition": "scalar", "padded": True}

    def projection(self, which: str = "source") -> of.OpenProjection:
        """The pressure projection of that grid (dense and differentiable on the source grid, sparse on the
        reference grid), built once."""
        key = (self, which)
        if key not in _PROJECTIONS:
            _PROJECTIONS[key] = of.OpenProjection(self.solid(which), "dense" if which == "source" else "sparse")
        return _PROJECTIONS[key]

    def step(self, velocity: Tensor, re: Tensor) -> Tensor:
        """One source step P_s of padded staggered states (B, 2, 65, 33) with re (B,) (no marker: the training and
        the metric use the velocity only)."""
        self.check_state(velocity)
        g = self.grid("source")
        alpha = self.alpha(re.to(velocity.dtype), "source").reshape(-1, 1, 1)
        return of.flow_step(velocity, None, dt=self.dt, dx=g.dx, alpha=alpha, projection=self.projection())[0]

    def check_state(self, velocity: Tensor, grid: str = "source", name: str = "state") -> None:
        """ProblemError unless ``velocity`` is a padded staggered state of that grid."""
        try:
            self.grid(grid).check(velocity)
        except ValueError as err:
            raise ProblemError(f"wake flow: the {grid} {name} does not fit: {err}") from None

    def mean_absolute_error(self, a: Tensor, b: Tensor) -> Tensor:
        """mean |a - b| over the real faces (not the padding) and every other dimension but the first."""
        g = self.grid("source")
        mask = of.pack(torch.ones(g.height, g.width + 1), torch.ones(g.height + 1, g.width)).to(a)
        diff = ((a - b).abs() * mask).flatten(1).sum(dim=1)
        return diff / (mask.sum() * a[0].numel() / mask.numel())

    def simulate(self, which: str) -> "Simulations":
        """The 'train' (training re) or 'test' (test re) reference runs as training data: velocities, and re as the
        per-frame condition (S, frames)."""
        re = {"train": self.training_re, "test": self.test_re}.get(which)
        if re is None:
            raise ValueError(f"unknown set {which!r}; choose 'train' or 'test'")
        sims = simulate_wake(self, re)
        return Simulations(sims.velocity, sims.re[:, None].expand(-1, sims.velocity.shape[1]).contiguous())


_PROJECTIONS: dict = {}


def restrict_velocity(velocity: Tensor, factor: int) -> Tensor:
    """T for the padded staggered velocity: each coarse face is the mean of the fine faces lying on it (v_x[I, J] =
    mean of v_x[fI ... fI + f - 1, fJ], v_y[I, J] = mean of v_y[fI, fJ ... fJ + f - 1]); the authors' two
    ``downsample2x`` passes for f = 4."""
    vx, vy = of.split(velocity)
    h, w = vx.shape[-2], vy.shape[-1]
    if h % factor or w % factor:
        raise ProblemError(f"wake flow: a {h} x {w} grid cannot be coarsened {factor}x")
    vx = vx[..., :, ::factor].unflatten(-2, (h // factor, factor)).mean(dim=-2)
    vy = vy[..., ::factor, :].unflatten(-1, (w // factor, factor)).mean(dim=-1)
    return of.pack(vx, vy)


def restrict_marker(marker: Tensor, factor: int) -> Tensor:
    """T for the centred marker: the mean of each factor x factor block."""
    h, w = marker.shape[-2:]
    return marker.unflatten(-1, (w // factor, factor)).unflatten(-3, (h // factor, factor)).mean(dim=(-3, -1))


class WakeSimulations(NamedTuple):
    """Projected reference runs: ``velocity`` (S, frames, 2, H+1, W+1) padded staggered and ``marker``
    (S, frames, H, W) on the source grid, ``re`` (S,) the Reynolds-number parameter of each run."""
    velocity: Tensor
    marker: Tensor
    re: Tensor


@torch.no_grad()
def simulate_wake(scenario: WakeFlow, re: Sequence[float], dtype: torch.dtype = torch.float32) -> WakeSimulations:
    """The reference runs for the given re values, batched on the reference grid (sparse direct pressure solve),
    kept projected to the source grid."""
    re = torch.as_tensor(list(re), dtype=torch.float64)
    if re.numel() == 0 or not (re > 0).all():
        raise ProblemError(f"wake flow: give one or more positive re values, got {re.tolist()}")
    g = scenario.grid("reference")
    projection = of.OpenProjection(scenario.solid("reference"), method="sparse")
    inflow = scenario.inflow("reference")
    alpha = scenario.alpha(re, "reference").to(dtype)[:, None, None]
    v = scenario.initial_state(len(re), dtype)
    m = torch.zeros(len(re), g.height, g.width, dtype=dtype)
    kept_v, kept_m = [], []
    for step in range(1, scenario.warmup + scenario.frames):
        v, m = of.flow_step(v, m, dt=scenario.dt, dx=g.dx, alpha=alpha, projection=projection, inflow=inflow)
        if step >= scenario.warmup:
            kept_v.append(restrict_velocity(v, scenario.factor))
            kept_m.append(restrict_marker(m, scenario.factor))
    return WakeSimulations(torch.stack(kept_v, 1), torch.stack(kept_m, 1), re.to(dtype))
