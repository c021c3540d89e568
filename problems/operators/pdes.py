"""Physics-informed operator problems of the ZCS paper (Leng & Thiyagalingam 2023, Secs. 4.1-4.2), data-free.

Each problem samples M functions (branch features p) and N collocation points x, builds the PDE residual from the
derivative fields of any engine in :mod:`physopt.derivatives.zcs`, and adds its boundary/initial-condition terms:

- :class:`ScalingPDE`: sum_{k=0}^P (d/dx + d/dy)^k u = 0 on the unit square (eq. 15, the scaling benchmark);
- :class:`ReactionDiffusion`: u_t - D u_xx + k u^2 - f(x) = 0 on (0, 1)^2 in (x, t), u = 0 at x = 0, 1 and
  t = 0, f from a Gaussian process (eq. 16);
- :class:`KirchhoffLovePlate`: u_xxxx + 2 u_xxyy + u_yyyy = q / D on the unit square, simply supported edges,
  q a random sine series with an analytic solution (eqs. 18-19).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from physopt.derivatives import DerivativeEngine, MultiIndex, OperatorFn, derivative_engine

from .deeponet import DeepONet, deeponet


@dataclass(frozen=True)
class OperatorBatch:
    """M functions and N collocation points.

    Attributes:
        p: (M, Q) branch features of the functions.
        x: (N, d) interior collocation points.
        source: (M, N) source term at x (None where the PDE has none).
        boundary: named (B, d) point sets for the boundary/initial conditions.
    """
    p: Tensor
    x: Tensor
    source: Tensor | None = None
    boundary: dict[str, Tensor] = field(default_factory=dict)


class OperatorProblem(ABC):
    """A data-free physics-informed operator problem: loss = mean(residual^2) + boundary terms."""

    name: ClassVar[str]
    dim: ClassVar[int] = 2
    features: int

    def __init__(self, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"):
        self.dtype, self.device = dtype, torch.device(device)

    @abstractmethod
    def sample(self, m: int, n: int, generator: torch.Generator | None = None) -> OperatorBatch:
        """M functions and N interior points (plus the boundary points the problem needs)."""

    @abstractmethod
    def residual(self, engine: DerivativeEngine, batch: OperatorBatch) -> Tensor:
        """The (M, N) PDE residual from the engine's derivative fields at batch.x."""

    def boundary_loss(self, fn: OperatorFn, batch: OperatorBatch, engine: str) -> Tensor:
        """Boundary/initial-condition penalty; zero for problems without conditions."""
        return torch.zeros((), dtype=self.dtype, device=self.device)

    def loss(self, fn: OperatorFn, batch: OperatorBatch, engine: str = "zcs") -> Tensor:
        """mean(residual^2) + boundary terms, derivatives by the engine named ``engine``."""
        res = self.residual(derivative_engine(engine, fn, batch.p, batch.x), batch)
        return res.square().mean() + self.boundary_loss(fn, batch, engine)

    def default_network(self, width: int = 128, depth: int = 3) -> DeepONet:
        """The paper's DeepONet (branch [features, 128, 128, 128], trunk [2, 128, 128, 128], tanh)."""
        return deeponet(self.features, self.dim, width, depth).to(self.device, self.dtype)

    def _check_sizes(self, m: int, n: int) -> None:
        if m < 1 or n < 1:
            raise ValueError(f"{self.name} needs m >= 1 functions and n >= 1 points, got m={m}, n={n}")

    def _uniform(self, n: int, generator: torch.Generator | None) -> Tensor:
        return torch.rand(n, self.dim, generator=generator, dtype=self.dtype).to(self.device)

    def _edges(self, n: int, axis: int, generator: torch.Generator | None) -> Tensor:
        """n points on the two edges where coordinate ``axis`` is 0 or 1 (alternating), the other uniform."""
        pts = self._uniform(n, generator)
        pts[:, axis] = (torch.arange(n, device=self.device) % 2).to(self.dtype)
        return pts


def scaling_coefficients(order: int) -> dict[MultiIndex, float]:
    """sum_{k=0}^P (d/dx + d/dy)^k expanded binomially: {(a, b): C(a + b, a)} for a + b <= P."""
    if order < 0:
        raise ValueError(f"the maximum differential order P must be >= 0, got {order}")
    return {(a, k - a): float(math.comb(k, a)) for k in range(order + 1) for a in range(k + 1)}


class ScalingPDE(OperatorProblem):
    """sum_{k=0}^P (d/dx + d/dy)^k u = 0 on (0, 1)^2 (ZCS paper eq. 15): the benchmark of Fig. 2.

    p: 50 standard-normal features per function; no boundary conditions (only the cost of the PDE matters).
    """

    name = "scaling"

    def __init__(self, order: int = 3, features: int = 50, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        super().__init__(dtype, device)
        self.coefficients = scaling_coefficients(order)
        self.order, self.features = order, features

    def sample(self, m: int, n: int, generator: torch.Generator | None = None) -> OperatorBatch:
        self._check_sizes(m, n)
        p = torch.randn(m, self.features, generator=generator, dtype=self.dtype).to(self.device)
        return OperatorBatch(p, self._uniform(n, generator))

    def residual(self, engine: DerivativeEngine, batch: OperatorBatch) -> Tensor:
        return engine.combination(self.coefficients)


class ReactionDiffusion(OperatorProblem):
    """u_t - D u_xx + k u^2 - f(x) = 0, (x, t) in (0, 1)^2, u(0, t) = u(1, t) = u(x, 0) = 0 (ZCS paper eq. 16).

    D = k = 0.01. The sources f are Gaussian-process samples (squared-exponential kernel, length scale 0.2, on a
    ``grid``-point grid, linearly interpolated); the branch sees f at 50 equispaced sensors. Coordinates: (x, t).
    """

    name = "reaction-diffusion"

    def __init__(self, diffusion: float = 0.01, reaction: float = 0.01, length_scale: float = 0.2,
                 sensors: int = 50, grid: int = 256, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        super().__init__(dtype, device)
        if length_scale <= 0 or sensors < 2 or grid < 2:
            raise ValueError(f"reaction-diffusion needs length_scale > 0, sensors >= 2, grid >= 2; got "
                             f"{length_scale}, {sensors}, {grid}")
        self.diffusion, self.reaction, self.features = diffusion, reaction, sensors
        self.grid = torch.linspace(0, 1, grid, dtype=torch.float64)
        self.sensors = torch.linspace(0, 1, sensors, dtype=torch.float64)
        k = torch.exp(-0.5 * (self.grid[:, None] - self.grid[None, :]).square() / length_scale ** 2)
        jitter = 1e-10 * torch.eye(grid, dtype=torch.float64)     # K is numerically singular for smooth kernels
        self._factor = torch.linalg.cholesky(k + jitter)

    def sample_sources(self, m: int, generator: torch.Generator | None = None) -> Tensor:
        """(M, grid) Gaussian-process samples on the grid."""
        return torch.randn(m, len(self.grid), generator=generator, dtype=torch.float64) @ self._factor.T

    def interpolate(self, values: Tensor, points: Tensor) -> Tensor:
        """Linear interpolation of (M, grid) values at points in [0, 1]: (M, len(points))."""
        idx = torch.searchsorted(self.grid, points.contiguous()).clamp(1, len(self.grid) - 1)
        lo, hi = self.grid[idx - 1], self.grid[idx]
        w = (points - lo) / (hi - lo)
        return values[:, idx - 1] * (1 - w) + values[:, idx] * w

    def sample(self, m: int, n: int, generator: torch.Generator | None = None) -> OperatorBatch:
        self._check_sizes(m, n)
        f = self.sample_sources(m, generator)
        x = self._uniform(n, generator)
        nb = max(2, n // 10)
        initial = self._uniform(nb, generator)
        initial[:, 1] = 0
        move = dict(dtype=self.dtype, device=self.device)
        return OperatorBatch(self.interpolate(f, self.sensors).to(**move), x,
                             self.interpolate(f, x[:, 0].double().cpu()).to(**move),
                             {"boundary": self._edges(nb, 0, generator), "initial": initial})

    def residual(self, engine: DerivativeEngine, batch: OperatorBatch) -> Tensor:
        linear = engine.combination({(0, 1): 1.0, (2, 0): -self.diffusion})
        return linear + self.reaction * engine.u.square() - batch.source

    def boundary_loss(self, fn: OperatorFn, batch: OperatorBatch, engine: str) -> Tensor:
        return sum(fn(batch.p, pts).square().mean() for pts in batch.boundary.values())


class KirchhoffLovePlate(OperatorProblem):
    """u_xxxx + 2 u_xxyy + u_yyyy = q / D on (0, 1)^2, D = 0.01 (ZCS paper eqs. 18-19).

    q = sum_{r<=R, s<=S} c_rs sin(r pi x) sin(s pi y), c_rs ~ N(0, 1), R = S = 10; the branch sees the R*S
    coefficients. Analytic solution (:meth:`exact`): u = sum c_rs sin(r pi x) sin(s pi y) / (D pi^4 (r^2 + s^2)^2).
    Edges: u = 0 (eq. 18) and, to make the fourth-order problem well posed, zero bending moment u_nn = 0
    (simply supported; the analytic solution satisfies both).
    """

    name = "kirchhoff-love"

    def __init__(self, rigidity: float = 0.01, modes: int = 10, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu"):
        super().__init__(dtype, device)
        if rigidity <= 0 or modes < 1:
            raise ValueError(f"the plate needs rigidity > 0 and modes >= 1, got {rigidity}, {modes}")
        self.rigidity, self.modes, self.features = rigidity, modes, modes * modes
        r = torch.arange(1, modes + 1, dtype=dtype, device=self.device)
        self._r, self._s = r.repeat_interleave(modes), r.repeat(modes)        # (R*S,) mode numbers, r major

    def basis(self, x: Tensor) -> Tensor:
        """(N, R*S) values sin(r pi x) sin(s pi y)."""
        return torch.sin(math.pi * x[:, :1] * self._r) * torch.sin(math.pi * x[:, 1:2] * self._s)

    def exact(self, p: Tensor, x: Tensor) -> Tensor:
        """The analytic deflection (M, N) for coefficients p (M, R*S): a pointwise operator fn(p, x)."""
        scale = self.rigidity * math.pi ** 4 * (self._r.square() + self._s.square()).square()
        return (p / scale) @ self.basis(x).T

    def sample(self, m: int, n: int, generator: torch.Generator | None = None) -> OperatorBatch:
        self._check_sizes(m, n)
        p = torch.randn(m, self.features, generator=generator, dtype=self.dtype).to(self.device)
        x = self._uniform(n, generator)
        nb = max(2, n // 20)
        return OperatorBatch(p, x, p @ self.basis(x).T / self.rigidity,
                             {"x_edges": self._edges(nb, 0, generator), "y_edges": self._edges(nb, 1, generator)})

    def residual(self, engine: DerivativeEngine, batch: OperatorBatch) -> Tensor:
        return engine.combination({(4, 0): 1.0, (2, 2): 2.0, (0, 4): 1.0}) - batch.source

    def boundary_loss(self, fn: OperatorFn, batch: OperatorBatch, engine: str) -> Tensor:
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for key, normal in (("x_edges", (2, 0)), ("y_edges", (0, 2))):
            e = derivative_engine(engine, fn, batch.p, batch.boundary[key])
            total = total + e.u.square().mean() + e.derivative(normal).square().mean()
        return total
