"""pdes: the ZCS paper's data-free operator problems (scaling PDE, reaction-diffusion, Kirchhoff-Love plate): their
data, PDE residuals from any derivative engine, and boundary terms."""
import math

import pytest
import torch

from physopt.derivatives.zcs import ENGINES, derivative_engine
from problems.operators import KirchhoffLovePlate, ReactionDiffusion, ScalingPDE, scaling_coefficients

F64 = torch.float64


def test_scaling_pde_expands_the_operator_binomially(gen):
    assert scaling_coefficients(2) == {(0, 0): 1, (1, 0): 1, (0, 1): 1, (2, 0): 1, (1, 1): 2, (0, 2): 1}
    assert sum(scaling_coefficients(4).values()) == sum(2 ** k for k in range(5))
    # u = p exp(c (x + y)): (d/dx + d/dy)^k u = (2c)^k u, so the residual is u sum_k (2c)^k
    problem, c = ScalingPDE(order=3, dtype=F64), 0.3
    batch = problem.sample(2, 7, gen())

    def fn(p, x):
        return p[:, :1] * torch.exp(c * x.sum(1))[None, :]

    for name in ENGINES:
        res = problem.residual(derivative_engine(name, fn, batch.p, batch.x), batch)
        torch.testing.assert_close(res, fn(batch.p, batch.x) * sum((2 * c) ** k for k in range(4)))
    with pytest.raises(ValueError, match=">= 0"):
        scaling_coefficients(-1)


def test_reaction_diffusion_data_and_residual(gen):
    problem = ReactionDiffusion(dtype=F64)
    batch = problem.sample(3, 40, gen())
    assert batch.p.shape == (3, 50) and batch.x.shape == (40, 2) and batch.source.shape == (3, 40)
    assert set(batch.boundary["boundary"][:, 0].tolist()) == {0.0, 1.0}
    assert torch.all(batch.boundary["initial"][:, 1] == 0)
    # the branch sees the same Gaussian-process source that enters the PDE: f at the sensors x = 0 and x = 1
    ends = problem.interpolate(problem.sample_sources(2, gen(5)), torch.tensor([0.0, 1.0], dtype=F64))
    again = ReactionDiffusion(dtype=F64).sample(2, 4, gen(5)).p
    torch.testing.assert_close(again[:, [0, -1]], ends)
    # manufactured u = p0 t sin(pi x): u_t - D u_xx + k u^2 - f = p0 sin(pi x)(1 + D pi^2 t) + k u^2 - f
    def fn(p, x):
        return p[:, :1] * (x[:, 1] * torch.sin(math.pi * x[:, 0]))[None, :]

    u, xs, t = fn(batch.p, batch.x), batch.x[:, 0], batch.x[:, 1]
    want = batch.p[:, :1] * torch.sin(math.pi * xs) * (1 + 0.01 * math.pi ** 2 * t) + 0.01 * u ** 2 - batch.source
    for name in ENGINES:
        torch.testing.assert_close(problem.residual(derivative_engine(name, fn, batch.p, batch.x), batch), want)
    # fn vanishes at x = 0, 1 and t = 0: no boundary penalty
    assert problem.boundary_loss(fn, batch, "zcs") < 1e-30


def test_gaussian_process_sources_have_the_kernel_covariance(gen):
    problem = ReactionDiffusion(grid=64)
    f = problem.sample_sources(4000, gen(1))
    cov = f.T @ f / f.shape[0]
    d = problem.grid[:, None] - problem.grid[None, :]
    torch.testing.assert_close(cov, torch.exp(-0.5 * d ** 2 / 0.2 ** 2), atol=0.1, rtol=0)


@pytest.mark.parametrize("name", list(ENGINES))
def test_plate_analytic_solution_has_round_off_residual(name, gen):
    problem = KirchhoffLovePlate(dtype=F64)
    batch = problem.sample(2, 20, gen())
    assert batch.p.shape == (2, 100)
    res = problem.residual(derivative_engine(name, problem.exact, batch.p, batch.x), batch)
    assert res.abs().max() < 1e-12 * batch.source.abs().max() * 100      # (10 pi)^4 amplifies round-off
    assert problem.loss(problem.exact, batch, name) < 1e-20 * batch.source.square().mean()


def test_plate_residual_sees_a_wrong_solution(gen):
    problem = KirchhoffLovePlate(dtype=F64, modes=2)
    batch = problem.sample(2, 10, gen())
    assert problem.loss(lambda p, x: 1.01 * problem.exact(p, x), batch) > 1e-6 * batch.source.square().mean()


def test_bad_sizes_and_settings_raise():
    with pytest.raises(ValueError, match="m >= 1"):
        ScalingPDE().sample(0, 10)
    with pytest.raises(ValueError, match="length_scale"):
        ReactionDiffusion(length_scale=0)
    with pytest.raises(ValueError, match="rigidity"):
        KirchhoffLovePlate(rigidity=0)
