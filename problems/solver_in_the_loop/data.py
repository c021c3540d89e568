"""Reference simulations of the forced Burgers scenario, projected to the source grid (authors' ``burgers.py``):

per simulation seed: 20 force waves (:meth:`problems.solvers.forced_burgers.WaveForcing.draw`), then a random
initial state (:func:`~problems.solvers.forced_burgers.random_velocity`) on the reference grid; the reference solver
P_R runs ``warmup`` steps, then ``frames`` frames are kept. Frame j holds the velocity r_j and the force f_j at the
same time, and r_{j+1} = P_R(r_j) + dt f_j. Both are stored projected with T (the source grid's view of the data:
the source solver starts from T r_0 and is driven by T f_j; the errors are measured against T r_j).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..base import ProblemError
from ..solvers import forced_burgers as fb
from .setup import ForcedBurgers

__all__ = ["Simulations", "simulate"]


class Simulations(NamedTuple):
    """Projected reference data on the source grid: ``velocity`` T r (S, frames, *state) and ``condition``
    (S, frames, ...), what drives the solver and the correction besides the state: the force T f (S, frames, 2, n, n)
    of the forced Burgers scenario, the Reynolds-number parameter (S, frames) of the wake flow."""
    velocity: Tensor
    condition: Tensor

    def __len__(self) -> int:  # type: ignore[override]
        return self.velocity.shape[0]

    @property
    def frames(self) -> int:
        return self.velocity.shape[1]

    def to(self, device=None, dtype=None) -> "Simulations":
        return Simulations(self.velocity.to(device=device, dtype=dtype), self.condition.to(device=device, dtype=dtype))

    @staticmethod
    def cat(parts: Sequence["Simulations"]) -> "Simulations":
        return Simulations(torch.cat([p.velocity for p in parts]), torch.cat([p.condition for p in parts]))

    def windows(self, sims: Tensor, starts: Tensor, steps: int) -> tuple[Tensor, Tensor]:
        """Windows of ``steps`` + 1 frames from (simulation, start frame) pairs: velocities (B, steps + 1, *state) and
        conditions (B, steps + 1, ...). ProblemError if a window runs past the stored frames."""
        if not isinstance(steps, int) or steps < 1:
            raise ProblemError(f"solver-in-the-loop: the look-ahead must be an integer >= 1, got {steps!r}")
        if starts.numel() and int(starts.max()) + steps >= self.frames:
            raise ProblemError(f"solver-in-the-loop: a look-ahead of {steps} steps from frame {int(starts.max())} "
                               f"runs past the {self.frames} stored frames; start windows at frame <= "
                               f"{self.frames - 1 - steps} or use a shorter look-ahead")
        index = starts[:, None] + torch.arange(steps + 1, device=starts.device)
        return self.velocity[sims[:, None], index], self.condition[sims[:, None], index]


def simulate(scenario: ForcedBurgers, seeds: Sequence[int], dtype: torch.dtype = torch.float32) -> Simulations:
    """Run the reference simulations of ``seeds`` (batched, in float64 on the CPU) and return their projected frames
    in ``dtype``. Each simulation depends only on its own seed."""
    seeds = list(seeds)
    if not seeds:
        raise ProblemError("solver-in-the-loop: no simulation seeds given")
    n, dx = scenario.reference_resolution, scenario.dx("reference")
    forcings, states = [], []
    for seed in seeds:
        generator = torch.Generator().manual_seed(int(seed))
        forcings.append(fb.WaveForcing.draw(1, generator, scenario.n_waves))   # draw order: forces, then the state
        states.append(fb.random_velocity(1, (n, n), generator))
    forcing = fb.WaveForcing(*(torch.cat([getattr(f, name) for f in forcings])
                               for name in ("wavevector", "amplitude", "phase", "omega")))
    velocity = torch.cat(states)
    kept_v, kept_f = [], []
    for i in range(scenario.warmup + scenario.frames):
        force = forcing.field(i * scenario.dt, (n, n), dx)
        if i >= scenario.warmup:
            kept_v.append(scenario.project(velocity))
            kept_f.append(scenario.project(force))
        if i < scenario.warmup + scenario.frames - 1:
            velocity = scenario.step(velocity, force, "reference")
    return Simulations(torch.stack(kept_v, 1).to(dtype), torch.stack(kept_f, 1).to(dtype))
