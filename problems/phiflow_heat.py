"""The SIP paper's heat problem with its physics written in PhiFlow, as a plugin problem: named by import path,
``physopt compare problems.phiflow_heat:PhiFlowHeatProblem``, as a user's own would be (it is not in the registry,
so the canonical bench leaves it out; needs ``pip install 'physopt[phiflow]'``).

The data, network, metric and settings are :class:`problems.heat.HeatProblem`'s; the physics is PhiFlow's spectral
diffusion of a periodic ``CenteredGrid`` (``phi.flow.diffuse.fourier``, diffusivity = the config's nu t, dt = 1),
wrapped once with :func:`physopt.phiml_physics`. It equals the plain-torch ``heat`` physics to rounding
(tests/problems/test_phiflow_heat.py). There is no hand-written inverse: SIP takes the generic damped Gauss-Newton
update (:class:`physopt.GaussNewtonUpdate`, through torch.autograd since torch.func cannot look inside phiml), and
HIG differentiates the PhiFlow simulation with its ``expand`` engine.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from .base import Batch
from .heat import HeatConfig, HeatProblem
from .settings import BenchmarkSettings, Preset, opt, quick

@dataclasses.dataclass
class PhiFlowHeatConfig(HeatConfig):
    """heat's settings, with a U-net without batch norm (so that HIG applies; ``physopt compare heat --param
    unet_batch_norm=false`` trains the same network on the plain-torch physics)."""
    unet_batch_norm: bool = False


_SOURCE = "ours: heat's settings; SIP with the generic Gauss-Newton update, HIG at a small batch (J is b n^2 rows)"


class PhiFlowHeatProblem(HeatProblem):
    r"""Infer the initial heat sources x from the diffused profile, the diffusion simulated by PhiFlow:
    P(x) = diffuse.fourier(CenteredGrid(x, PERIODIC), nu t, 1), i.e. exp(nu t Laplace) x per Fourier mode.

    SIP update: damped Gauss-Newton  (J^T J + lambda) dx = -J^T (P(x) - y*)  by conjugate gradients (``damping``
    lambda = 1e-4, 20 iterations), J from torch.autograd through PhiFlow.
    """

    name = "phiflow-heat"
    description = "heat (SIP paper Sec. 3.5) with the diffusion simulated by PhiFlow; SIP by generic Gauss-Newton"
    Config = PhiFlowHeatConfig
    benchmark = BenchmarkSettings(
        optimizers=("adam", "sip", "hig"), batch_size=HeatProblem.benchmark.batch_size,
        held_out_size=HeatProblem.benchmark.held_out_size, source=_SOURCE,
        per_optimizer={"adam": opt("heat's (authors' code)", lr=1e-3), "sip": opt("heat's (Adam's rate)", lr=1e-3),
                       "hig": opt(_SOURCE, 4, lr=0.1, truncation=1e-4)},
        presets={"quick": quick(resolution=16, max_half_size=3.0), "standard": Preset(iterations=300, batch_size=32),
                 "paper": Preset(iterations=10_000)})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        try:
            from phi import flow
        except ImportError as err:
            raise ImportError("the problem 'phiflow-heat' simulates with PhiFlow: pip install 'physopt[phiflow]'") \
                from err
        from phiml.math import spatial

        import physopt
        self._flow = flow
        self.simulation = physopt.phiml_physics(self._diffuse, x=spatial("y,x"), y=spatial("y,x"))
        self._update = physopt.GaussNewtonUpdate(self.simulation, damping=1e-4, max_iterations=20,
                                                 derivatives="autograd")

    def _diffuse(self, x):
        """PhiFlow: periodic centred grid of resolution^2 cells of size dx, diffused by nu t in Fourier space."""
        flow, c = self._flow, self.config
        n = c.resolution
        grid = flow.CenteredGrid(x, flow.extrapolation.PERIODIC, bounds=flow.Box(x=n * c.dx, y=n * c.dx), x=n, y=n)
        return flow.diffuse.fourier(grid, c.amount, 1.0)

    def forward(self, x: Tensor, batch: Batch) -> Tensor:
        return self.simulation(x.to(torch.float64)).to(x.dtype)

    def inverse_update(self, x: Tensor, batch: Batch) -> Tensor:
        self.check_prediction(x, batch)
        dx = self._update(x.detach().to(torch.float64), batch.target.to(torch.float64))
        return dx.to(x.dtype)


__all__ = ["PhiFlowHeatProblem"]
