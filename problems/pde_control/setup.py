"""The Burgers control setup: grid, time step and sequence length of the paper's Table 1 (App. D.1; the authors'
legacy code that produced it works in grid units: 32 cells, dx = 1, dt = 1, nu = 0.1, 32 steps)."""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from ..base import ProblemError
from ..solvers import burgers as bu

__all__ = ["ControlSetup", "is_power_of_two"]


def is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and n & (n - 1) == 0


@dataclasses.dataclass(frozen=True)
class ControlSetup:
    """A Burgers control task: ``steps`` solver steps of length ``dt`` on ``resolution`` cells of width ``dx``.

    The solver step is  Solver[u] = Diffuse[Advect[u, u]]  (:func:`problems.solvers.burgers.burgers_step`); a
    control force acts after it:  u_{t+1} = Solver[u_t] + F_t."""
    resolution: int = 32
    steps: int = 32
    dt: float = 1.0
    dx: float = 1.0
    viscosity: float = 0.1

    def __post_init__(self):
        if not (isinstance(self.resolution, int) and self.resolution >= 2):
            raise ProblemError(f"burgers control: resolution must be an integer >= 2, got {self.resolution!r}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ProblemError(f"burgers control: steps must be an integer >= 1, got {self.steps!r}")
        try:
            bu.check_stability(self.viscosity, self.dt, self.dx)
        except bu.BurgersStabilityError as err:
            raise ProblemError(f"burgers control: {err}") from None

    def step(self, u: Tensor) -> Tensor:
        """One unforced solver step of states (..., resolution)."""
        return bu.burgers_step(u, self.dt, self.dx, self.viscosity)

    def check_state(self, u: Tensor, name: str = "state", frames: int | None = None) -> None:
        """ProblemError unless ``u`` is a floating tensor (..., resolution) (or (B, frames, resolution))."""
        if not isinstance(u, Tensor) or not u.is_floating_point():
            raise ProblemError(f"burgers control: {name} must be a floating torch.Tensor, got "
                               f"{getattr(u, 'dtype', type(u).__name__)}")
        if u.dim() < 1 or u.shape[-1] != self.resolution:
            raise ProblemError(f"burgers control: {name} has shape {tuple(u.shape)}, but this setup has "
                               f"{self.resolution} cells: pass states of shape (batch, {self.resolution}) or build "
                               f"the setup with resolution={u.shape[-1] if u.dim() else '?'}")
        if frames is not None and (u.dim() != 3 or u.shape[1] != frames):
            raise ProblemError(f"burgers control: {name} has shape {tuple(u.shape)}, expected (batch, {frames}, "
                               f"{self.resolution})")

    def check_hierarchical(self, what: str = "the hierarchical schemes") -> None:
        """ProblemError unless ``steps`` is a power of two (the OPs halve every span down to one step)."""
        if not is_power_of_two(self.steps):
            below = 2 ** int(math.log2(self.steps))
            raise ProblemError(f"burgers control: {what} need a sequence length that is a power of two (each OP_n "
                               f"splits a span of n steps into two of n/2), got steps={self.steps}: use "
                               f"{below} or {2 * below}")

    @property
    def spans(self) -> list[int]:
        """The OP time spans 2, 4, ..., steps (one network each)."""
        self.check_hierarchical()
        return [2 ** k for k in range(1, int(math.log2(self.steps)) + 1)]

    def cells(self, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
        """Where the paper's data generator samples its Gaussians: ``resolution`` points from 0 to 1."""
        return torch.linspace(0.0, 1.0, self.resolution, dtype=dtype, device=device)
