"""2-D Poisson inverse problem of the SIP paper (Sec. 3.5, Fig. 6a,b)."""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .base import Batch
from .fields import FieldConfig, FieldProblem
from .grids import laplace_dirichlet, smooth_noise, solve_poisson_dirichlet


@dataclasses.dataclass
class PoissonConfig(FieldConfig):
    """64x64 cells, dx = 1, zero Dirichlet boundary; x* smooth noise (amplitudes ~ 1/|k|^2, modes with at most
    ``noise_low_cut`` cycles per domain removed, as PhiFlow's default ``Noise`` does), zero mean, unit std."""
    noise_power: float = 2.0
    noise_low_cut: float = 2.03


class PoissonProblem(FieldProblem):
    r"""Infer the source x of Poisson's equation from its potential: P(x) = L^{-1} x.

    L is the 5-point Laplacian with zero Dirichlet boundary (:func:`problems.grids.laplace_dirichlet`); P is solved
    exactly with a 2-D discrete sine transform (:func:`problems.grids.solve_poisson_dirichlet`), O(n log n).
    The network input is y* = P(x*). SIP update: the exact inverse of the residual,
        dx = -L (P(x) - y*),   so x + dx = L y* = x*  (step 1, authors' code).
    Metric: L1 error of x against x* (sum over cells, batch mean).
    """

    name = "poisson"
    description = "2-D Poisson, zero Dirichlet, P(x) = Laplace^-1 x, U-net (SIP paper Sec. 3.5, Fig. 6a,b)"
    Config = PoissonConfig
    # Authors' code: Adam 1e-3 for both; SGD with momentum 0.9 at lr 3e-12 on the loss summed over the batch
    # (1e-10 diverged). Our loss is the batch mean, so the equivalent SGD rate is 3e-12 * batch size (128).
    hyperparameters = {"adam": {"lr": 1e-3}, "sip": {"lr": 1e-3}, "sgd": {"lr": 3e-12 * 128, "momentum": 0.9}}
    default_batch_size = 128

    def sample_solution(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        c = self.config
        return smooth_noise(batch_size, self.x_shape, generator, power=c.noise_power, low_cut=c.noise_low_cut,
                            dtype=torch.float64)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        return solve_poisson_dirichlet(x, self.config.dx)

    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        self.check_prediction(x, batch)
        return -laplace_dirichlet(self.forward(x, batch) - batch.target, self.config.dx)
