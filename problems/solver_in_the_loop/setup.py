"""Scenario settings of Solver-in-the-Loop (Um et al., NeurIPS 2020), as in the authors' code.

A scenario pairs a reference discretisation P_R (fine, states r) with a source discretisation P_s (coarse, states
s) of one PDE and the projection T that carries reference states to the source grid; the learned correction C acts
on the source grid: s~_{t+1} = P_s(s~_t) + C(P_s(s~_t)).
"""
from __future__ import annotations

import dataclasses
import math

from torch import Tensor

from ..base import ProblemError
from ..solvers import forced_burgers as fb
from ..solvers.staggered import check_velocity

__all__ = ["ForcedBurgers"]


@dataclasses.dataclass(frozen=True)
class ForcedBurgers:
    """The forced advection-diffusion (2-D Burgers) scenario (authors' ``burgers/`` Makefile and scripts).

    A periodic square of side ``length``; reference ``reference_resolution``^2 cells, source
    ``source_resolution``^2 (4x coarser); nu = 0.1 and dt = 0.1 on both grids; 20 travelling force waves. A
    simulation runs ``warmup`` steps from a random state, then ``frames`` frames are kept. Training simulations
    use seeds 0-9, test simulations seeds 100-104 (the same distribution, other draws).
    """
    length: float = 32.0
    reference_resolution: int = 128
    source_resolution: int = 32
    dt: float = 0.1
    viscosity: float = 0.1
    n_waves: int = 20
    warmup: int = 30
    frames: int = 200
    training_seeds: tuple[int, ...] = tuple(range(10))
    test_seeds: tuple[int, ...] = tuple(range(100, 105))

    def __post_init__(self):
        for name in ("reference_resolution", "source_resolution", "n_waves", "frames"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ProblemError(f"forced burgers: {name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.warmup, int) and self.warmup >= 0):
            raise ProblemError(f"forced burgers: warmup must be an integer >= 0, got {self.warmup!r}")
        factor = self.reference_resolution // self.source_resolution
        if factor * self.source_resolution != self.reference_resolution or factor & (factor - 1):
            raise ProblemError(f"forced burgers: the reference grid ({self.reference_resolution}) must be a power of "
                               f"two times the source grid ({self.source_resolution})")
        for name in ("length", "dt"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ProblemError(f"forced burgers: {name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.viscosity, (int, float)) and self.viscosity >= 0):
            raise ProblemError(f"forced burgers: viscosity must be a number >= 0, got {self.viscosity!r}")

    @property
    def factor(self) -> int:
        """How many reference cells per source cell along each axis."""
        return self.reference_resolution // self.source_resolution

    def dx(self, grid: str) -> float:
        """Cell size of the 'reference' or 'source' grid."""
        return self.length / self._resolution(grid)

    def _resolution(self, grid: str) -> int:
        if grid == "reference":
            return self.reference_resolution
        if grid == "source":
            return self.source_resolution
        raise ValueError(f"unknown grid {grid!r}; choose 'reference' or 'source'")

    def step(self, velocity: Tensor, force: Tensor, grid: str = "source") -> Tensor:
        """P(v) = exp(nu dt Laplace) Advect[v, v] + dt f on the 'source' (P_s) or 'reference' (P_R) grid."""
        self.check_state(velocity, grid)
        return fb.burgers_step(velocity, self.dt, self.dx(grid), self.viscosity, force)

    def project(self, reference: Tensor) -> Tensor:
        """T r: the staggered restriction of reference states (..., 2, R, R) to the source grid."""
        self.check_state(reference, "reference")
        return fb.restrict(reference, self.factor)

    #: the correction network's input layout: the force as two more channels, periodic n x n states
    correction_layout = {"condition": "field", "padded": False}

    def simulate(self, which: str):
        """The 'train' or 'test' reference runs (:func:`problems.solver_in_the_loop.data.simulate`)."""
        from .data import simulate
        seeds = {"train": self.training_seeds, "test": self.test_seeds}.get(which)
        if seeds is None:
            raise ValueError(f"unknown set {which!r}; choose 'train' or 'test'")
        return simulate(self, seeds)

    def mean_absolute_error(self, a: Tensor, b: Tensor) -> Tensor:
        """mean |a - b| over everything but the leading (simulation) dimension."""
        return (a - b).abs().flatten(1).mean(dim=1)

    def check_state(self, velocity: Tensor, grid: str = "source", name: str = "state") -> None:
        """ProblemError unless ``velocity`` is a floating staggered field (..., 2, n, n) of that grid."""
        n = self._resolution(grid)
        try:
            check_velocity(velocity, (n, n))
        except ValueError as err:
            raise ProblemError(f"forced burgers: the {grid} {name} is not a {n} x {n} staggered field: {err}") from None
