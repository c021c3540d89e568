"""Burgers control through a hierarchical predictor-corrector (Holl, Koltun, Thuerey, ICLR 2020, Sec. 6.1) as a
problem for ``physopt compare``: the execution schemes and losses of the paper's Table 1 side by side, and any
optimizer (SIP with a generic Gauss-Newton update, HIG) on them.

The full Table 1 pipeline (per-level pre-training, end-to-end stages, shooting, timing) is ``physopt pde-control``
(:mod:`physopt.bench.pde_control`); this problem is its last stage as one training run: the network is an execution
scheme with its networks, x is the trajectory it plans.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

import physopt

from .base import Batch, Problem, ProblemConfig, ProblemError
from .pde_control import ControlForceEstimator, ObservationPredictors, control_forces, force_integral, sample_scenes
from .pde_control.schemes import SCHEMES, execute
from .pde_control.setup import ControlSetup
from .settings import BenchmarkSettings, Preset, opt, quick

__all__ = ["BurgersControlConfig", "BurgersControlProblem", "SchemeNetwork"]

LOSSES = ("physics", "supervised")


@dataclasses.dataclass
class BurgersControlConfig(ProblemConfig):
    """The paper's grid units (32 cells, dx = dt = 1, nu = 0.1, 32 steps); ``scheme`` cfe-chain | staggered |
    refined; ``loss`` physics (the force through the solver, weighted by ``force_weight`` as in the authors' code,
    without their change-of-force term, which needs the states as well as the forces) or supervised (the
    ground-truth trajectory)."""
    resolution: int = 32
    steps: int = 32
    dt: float = 1.0
    dx: float = 1.0
    viscosity: float = 0.1
    scheme: str = "staggered"
    loss: str = "physics"
    force_weight: float = 0.1

    def check(self) -> "BurgersControlConfig":
        super().check()
        for field, allowed in (("scheme", SCHEMES), ("loss", LOSSES)):
            if getattr(self, field) not in allowed:
                raise ProblemError(f"burgers-control: unknown {field} '{getattr(self, field)}'; choose one of "
                                   f"{', '.join(allowed)}")
        if self.scheme != "cfe-chain":
            self.setup().check_hierarchical(f"the {self.scheme} scheme")
        return self

    def setup(self) -> ControlSetup:
        return ControlSetup(self.resolution, self.steps, float(self.dt), float(self.dx), float(self.viscosity))


class SchemeNetwork(nn.Module):
    """An execution scheme with its networks as one module: inputs (B, 2, N) = (u_0, o*) -> the planned states
    u_1 ... u_{n-1} (B, n - 1, N)."""

    def __init__(self, scheme: str, model: nn.Module, setup: ControlSetup):
        super().__init__()
        self.scheme, self.model, self.setup = scheme, model, setup

    def forward(self, inputs: Tensor) -> Tensor:
        if inputs.dim() != 3 or inputs.shape[1] != 2:
            raise ProblemError(f"burgers-control: the network takes (batch, 2, {self.setup.resolution}) = (initial "
                               f"state, target), got {tuple(inputs.shape)}")
        return execute(self.scheme, self.model, inputs[:, 0], inputs[:, 1], self.setup)[:, 1:-1]


class BurgersControlProblem(Problem):
    r"""Steer u_0 to o* in n steps of Burgers' equation with the least force (PDE-control paper, Sec. 3, 6.1).

    x = the intermediate states u_1 ... u_{n-1} a scheme plans (the last state is the target); the physics gives
    the forces that realise them, P(x)_t = F_t = u_{t+1} - Solver[u_t] (B, n, N), and the loss is
    w_F sum_t 1/2 ||F_t||^2 (y* = 0). With ``loss=supervised`` the physics is the identity and y* the ground-truth
    states (the paper's supervised loss on the whole trajectory instead of level by level). The x-space metric is
    Table 1's force integral sum_t sum_x |F_t(x)|. SIP's update is the generic damped Gauss-Newton step of P
    (:class:`physopt.GaussNewtonUpdate`). The forced runs of the data generator are x* only for the supervised
    loss: they reach the target with more force than needed, so for the physics loss there is no x*.
    """

    name = "burgers-control"
    description = ("1-D Burgers control, hierarchical predictor-corrector (CFE chain / staggered / refined), force "
                   "integral (PDE-control paper, Sec. 6.1, Table 1)")
    Config = BurgersControlConfig
    x_error_name = "force_integral"
    benchmark = BenchmarkSettings(
        optimizers=("adam", "sip"), batch_size=16, held_out_size=100,
        source="authors' legacy code: Adam, lr 1e-4 for diff. physics; the paper: batch 4-16; 100 test tasks",
        per_optimizer={"adam": opt("authors' code (diff. physics)", lr=1e-4),
                       "sip": opt("Adam's rate", lr=1e-4)},
        presets={"quick": quick(steps=4),
                 "standard": Preset(iterations=300), "paper": Preset(iterations=100_000)})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup = self.config.setup()

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.config.steps - 1, self.config.resolution)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Batch:
        scenes = sample_scenes(batch_size, generator if generator is not None else torch.default_generator,
                               self.setup, torch.float64)
        inputs = torch.stack([scenes.initial, scenes.target], dim=1)
        if self.config.loss == "supervised":
            states = scenes.trajectory[:, 1:-1]
            return Batch(inputs, states, states).to(self.device, self.dtype)
        # no x*: the forced run reaches the target but with more force than needed, so it does not solve the task
        return Batch(inputs, torch.zeros_like(scenes.trajectory[:, 1:])).to(self.device, self.dtype)

    def trajectory(self, x: Tensor, batch: Batch) -> Tensor:
        """u_0, x, o*: (B, n + 1, N)."""
        if not isinstance(batch, Batch):
            raise ProblemError("burgers-control: the forces need the batch (its initial states and targets): call "
                               "forward(x, batch)")
        return torch.cat([batch.inputs[:, :1].to(x.dtype), x, batch.inputs[:, 1:].to(x.dtype)], dim=1)

    def forces(self, x: Tensor, batch: Batch) -> Tensor:
        return control_forces(self.trajectory(x, batch), self.setup)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        if self.config.loss == "supervised":
            return x
        return self.forces(x, batch)

    def loss(self, y: Tensor, batch: Batch) -> Tensor:
        weight = self.config.force_weight if self.config.loss == "physics" else 1.0
        return weight * 0.5 * (y - batch.target).pow(2).reshape(y.shape[0], -1).sum(-1)

    def x_error(self, x: Tensor, batch: Batch) -> Tensor:
        return force_integral(self.forces(x, batch))

    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        self.check_prediction(x, batch)
        if self.config.loss == "supervised":
            return batch.target - x
        x64 = x.detach().to(torch.float64)
        update = physopt.GaussNewtonUpdate(lambda states: self.forces(states, batch), damping=1e-4,
                                           max_iterations=50)
        return update(x64, batch.target.to(torch.float64)).to(x.dtype)

    def default_network(self) -> nn.Module:
        model = (ControlForceEstimator(self.setup) if self.config.scheme == "cfe-chain"
                 else ObservationPredictors(self.setup))
        return SchemeNetwork(self.config.scheme, model, self.setup).to(self.device)
