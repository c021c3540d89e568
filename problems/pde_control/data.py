"""Control tasks and their ground-truth trajectories, generated as the paper does (App. D.1; the authors' data
generator for Table 1):

* initial state u_0(x) = a_l exp(-(x - c_l)^2 / (2 s_l^2)) + a_r exp(-(x - c_r)^2 / (2 s_r^2)) on x in [0, 1]:
  c_l ~ U(0.2, 0.4), a_l ~ U(0, 3), s_l ~ U(0.05, 0.15); c_r ~ U(0.6, 0.8), a_r ~ U(-3, 0), s_r ~ U(0.05, 0.15)
  (two Gaussians set to clash in the centre; velocities in cells per step);
* a force constant in time, f(x) = a_f exp(-(x - c_f)^2 / (2 s_f^2)): c_f ~ U(0.4, 0.6), s_f ~ U(0.1, 0.4),
  a_f ~ U(-0.05, 0.05) per step;
* the forced run u_{t+1} = Solver[u_t + f] for ``steps`` steps, every frame kept; the target is its last frame
  o* = u_steps, so every target is reachable, and the forced run is a good (not optimal) ground-truth control.

The paper trains on 3600 scenes and tests on 100 from the same distribution. :func:`split_scenes` draws the held-out
scenes first from a fixed seed, then the training scenes from the same stream, so the two never overlap and the
held-out set does not depend on how many training scenes are asked for.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..solvers import burgers as bu
from .setup import ControlSetup

__all__ = ["ControlScenes", "sample_scenes", "split_scenes", "HELD_OUT_SEED"]

#: the seed of the stream the held-out and training scenes are drawn from (fixed: the held-out set never changes)
HELD_OUT_SEED = 2020


class ControlScenes(NamedTuple):
    """Control tasks: ``trajectory`` (B, steps + 1, N) the ground-truth forced run u_0 ... u_steps, ``force`` (B, N)
    its constant force."""
    trajectory: Tensor
    force: Tensor

    @property
    def initial(self) -> Tensor:
        return self.trajectory[:, 0]

    @property
    def target(self) -> Tensor:
        return self.trajectory[:, -1]

    def __len__(self) -> int:  # type: ignore[override]
        return self.trajectory.shape[0]

    def select(self, index: Tensor | slice) -> "ControlScenes":
        return ControlScenes(self.trajectory[index], self.force[index])

    def to(self, device=None, dtype=None) -> "ControlScenes":
        return ControlScenes(self.trajectory.to(device=device, dtype=dtype), self.force.to(device=device, dtype=dtype))


def _uniform(generator: torch.Generator, count: int, low: float, high: float, dtype) -> Tensor:
    return low + (high - low) * torch.rand(count, 1, generator=generator, dtype=dtype)


def _gaussian(x: Tensor, amplitude: Tensor, centre: Tensor, width: Tensor) -> Tensor:
    return amplitude * torch.exp(-0.5 * (x - centre) ** 2 / width ** 2)


def sample_scenes(count: int, generator: torch.Generator, setup: ControlSetup = ControlSetup(),
                  dtype: torch.dtype = torch.float32) -> ControlScenes:
    """``count`` control tasks drawn with ``generator`` (on the CPU, in float64, then cast to ``dtype``)."""
    if not (isinstance(count, int) and count >= 0):
        raise ValueError(f"burgers control: the number of scenes must be an integer >= 0, got {count!r}")
    f64 = torch.float64
    x = setup.cells(f64)
    draw = lambda low, high: _uniform(generator, count, low, high, f64)  # noqa: E731
    # the draw order is part of the data: keep it
    left = _gaussian(x, draw(0.0, 3.0), draw(0.2, 0.4), draw(0.05, 0.15))
    right = _gaussian(x, draw(-3.0, 0.0), draw(0.6, 0.8), draw(0.05, 0.15))
    force = _gaussian(x, draw(-0.05, 0.05), draw(0.4, 0.6), draw(0.1, 0.4))
    trajectory = bu.rollout(left + right, setup.steps, force, dt=setup.dt, dx=setup.dx, viscosity=setup.viscosity)
    return ControlScenes(trajectory.to(dtype), force.to(dtype))


def split_scenes(training: int, held_out: int = 100, setup: ControlSetup = ControlSetup(),
                 dtype: torch.dtype = torch.float32) -> tuple[ControlScenes, ControlScenes]:
    """(training scenes, held-out scenes): the held-out ones are the first ``held_out`` of the fixed stream
    :data:`HELD_OUT_SEED`, the training ones the next ``training``."""
    generator = torch.Generator().manual_seed(HELD_OUT_SEED)
    test = sample_scenes(held_out, generator, setup, dtype)
    train = sample_scenes(training, generator, setup, dtype)
    return train, test
