"""Specification of the physics-informed DeepONet problems (problems.operators) of the ZCS paper."""
import copy
import math

import pytest
import torch

from physopt.derivatives.zcs import ENGINES, check_pointwise, derivative_engine
from problems.operators import (DeepONet, KirchhoffLovePlate, ReactionDiffusion, ScalingPDE, scaling_coefficients,
                                train)

F64 = torch.float64


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_deeponet_is_the_papers_cartesian_product_network():
    net = ScalingPDE().default_network()
    sizes = [m.weight.shape[::-1] for m in net.branch if isinstance(m, torch.nn.Linear)]
    assert [tuple(s) for s in sizes] == [(50, 128), (128, 128), (128, 128)]
    assert [tuple(m.weight.shape[::-1]) for m in net.trunk if isinstance(m, torch.nn.Linear)] == [
        (2, 128), (128, 128), (128, 128)]
    p, x = torch.randn(3, 50), torch.rand(5, 2)
    u = net(p, x)
    assert u.shape == (3, 5)
    pairs = net.pairwise(p.repeat_interleave(5, 0), x.repeat(3, 1))
    torch.testing.assert_close(pairs.view(3, 5), u)
    check_pointwise(net.double(), p.double(), x.double(), generator=gen())
    with pytest.raises(ValueError, match="same width"):
        DeepONet([50, 8], [2, 16])


def test_scaling_pde_expands_the_operator_binomially():
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


def test_reaction_diffusion_data_and_residual():
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


def test_gaussian_process_sources_have_the_kernel_covariance():
    problem = ReactionDiffusion(grid=64)
    f = problem.sample_sources(4000, gen(1))
    cov = f.T @ f / f.shape[0]
    d = problem.grid[:, None] - problem.grid[None, :]
    torch.testing.assert_close(cov, torch.exp(-0.5 * d ** 2 / 0.2 ** 2), atol=0.1, rtol=0)


@pytest.mark.parametrize("name", list(ENGINES))
def test_plate_analytic_solution_has_round_off_residual(name):
    problem = KirchhoffLovePlate(dtype=F64)
    batch = problem.sample(2, 20, gen())
    assert batch.p.shape == (2, 100)
    res = problem.residual(derivative_engine(name, problem.exact, batch.p, batch.x), batch)
    assert res.abs().max() < 1e-12 * batch.source.abs().max() * 100      # (10 pi)^4 amplifies round-off
    assert problem.loss(problem.exact, batch, name) < 1e-20 * batch.source.square().mean()


def test_plate_residual_sees_a_wrong_solution():
    problem = KirchhoffLovePlate(dtype=F64, modes=2)
    batch = problem.sample(2, 10, gen())
    assert problem.loss(lambda p, x: 1.01 * problem.exact(p, x), batch) > 1e-6 * batch.source.square().mean()


@pytest.mark.parametrize("baseline", ["datavect", "funcloop"])
def test_zcs_and_baseline_training_reach_the_same_loss(baseline):
    problem = ReactionDiffusion(dtype=F64, sensors=8)
    batch = problem.sample(4, 30, gen())
    torch.manual_seed(0)
    net = problem.default_network(width=16, depth=2)
    curves = {name: train(problem, copy.deepcopy(net), batch, name, steps=30, lr=3e-3) for name in ("zcs", baseline)}
    assert curves["zcs"][-1] < 0.7 * curves["zcs"][0]
    torch.testing.assert_close(torch.tensor(curves["zcs"]), torch.tensor(curves[baseline]), rtol=1e-6, atol=0)


def test_bad_sizes_and_settings_raise():
    with pytest.raises(ValueError, match="m >= 1"):
        ScalingPDE().sample(0, 10)
    with pytest.raises(ValueError, match="length_scale"):
        ReactionDiffusion(length_scale=0)
    with pytest.raises(ValueError, match="rigidity"):
        KirchhoffLovePlate(rigidity=0)
    with pytest.raises(ValueError, match="steps"):
        train(ScalingPDE(), ScalingPDE().default_network(width=4, depth=1), ScalingPDE().sample(1, 1), steps=-1)
