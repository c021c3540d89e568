"""The 1-D Burgers solver against independent references: PhiFlow's semi-Lagrangian advection and explicit diffusion
(numpy backend), the exact discrete decay of a cosine mode and its continuum limit, the analytic solution of
inviscid Burgers for a linear profile, the von Neumann stability limit, and autograd gradcheck in float64."""
import math

import pytest
import torch
from torch.autograd import gradcheck

from problems.solvers import burgers as bu

F64 = torch.float64


def two_gaussians(n: int = 32, dtype=F64) -> torch.Tensor:
    """The clash of two Gaussians of the paper's Burgers data (velocities up to 3 cells per step)."""
    x = torch.linspace(0, 1, n, dtype=dtype)
    return 2.5 * torch.exp(-0.5 * (x - 0.3) ** 2 / 0.1 ** 2) - 2.0 * torch.exp(-0.5 * (x - 0.7) ** 2 / 0.08 ** 2)


def test_one_step_matches_phiflow_semi_lagrangian_advection_and_explicit_diffusion():
    flow = pytest.importorskip("phi.flow")
    pm = pytest.importorskip("phiml.math")
    numpy_backend = pytest.importorskip("phiml.backend").NUMPY    # PhiFlow's torch backend samples only 2-D/3-D grids
    u0 = two_gaussians()
    with pm.precision(64), numpy_backend:
        grid = flow.CenteredGrid(pm.tensor(u0.numpy(), pm.spatial("x")), flow.extrapolation.ZERO_GRADIENT, x=32,
                                 bounds=flow.Box(x=32))            # dx = 1: the paper's grid units
        advected = flow.advect.semi_lagrangian(grid, grid, dt=1.0)
        stepped = flow.diffuse.explicit(advected, 0.1, 1.0, substeps=1)
        ref_advected = torch.as_tensor(advected.values.numpy("x"))     # read inside: outside, phiml casts to float32
        ref_step = torch.as_tensor(stepped.values.numpy("x"))
    torch.testing.assert_close(bu.advect_semi_lagrangian(u0, u0, 1.0), ref_advected, rtol=0, atol=1e-12)
    torch.testing.assert_close(bu.burgers_step(u0), ref_step, rtol=0, atol=1e-12)
    # diffusion alone agrees to rounding
    with pm.precision(64), numpy_backend:
        diffused = torch.as_tensor(flow.diffuse.explicit(grid, 0.1, 1.0, substeps=1).values.numpy("x"))
    torch.testing.assert_close(bu.diffuse_explicit(u0, 0.1, 1.0), diffused, rtol=0, atol=1e-13)


def cosine_mode(n: int, k: int, dx: float) -> torch.Tensor:
    """cos(pi k x / L) at the cell centres x_i = (i + 1/2) dx of [0, L]: zero gradient at both ends."""
    return torch.cos(math.pi * k * (torch.arange(n, dtype=F64) + 0.5) / n)


def test_a_cosine_mode_decays_by_the_discrete_factor_and_converges_to_the_heat_equation():
    nu, k = 0.05, 2
    # discrete: an eigenvector of the zero-gradient Laplacian with eigenvalue -4/dx^2 sin^2(pi k / 2N)
    u = cosine_mode(16, k, 1.0)
    factor = 1 - 4 * nu * math.sin(math.pi * k / 32) ** 2
    torch.testing.assert_close(bu.diffuse_explicit(u, nu, 1.0), factor * u, rtol=0, atol=1e-14)
    # continuum: on [0, 1] the heat equation gives exp(-nu (pi k)^2 t); the error falls as dx^2 (dt ~ dx^2)
    errors = []
    for n in (16, 32, 64):
        dx = 1.0 / n
        dt = 0.2 * dx ** 2 / nu
        steps = round(0.5 / dt)
        v = cosine_mode(n, k, dx)
        for _ in range(steps):
            v = bu.diffuse_explicit(v, nu, dt, dx)
        exact = math.exp(-nu * (math.pi * k) ** 2 * steps * dt) * cosine_mode(n, k, dx)
        errors.append((v - exact).abs().max().item())
    assert errors[0] / errors[1] > 3.5 and errors[1] / errors[2] > 3.5, errors


def test_inviscid_advection_of_a_linear_profile_converges_to_the_analytic_solution():
    # u_t + u u_x = 0 with u(x, 0) = a x has u(x, t) = a x / (1 + a t); every back-trace stays in the domain
    a, t_end, n = 0.05, 10.0, 32
    x = torch.arange(n, dtype=F64)
    errors = []
    for steps in (20, 40, 80):
        u = a * x
        dt = t_end / steps
        for _ in range(steps):
            u = bu.advect_semi_lagrangian(u, u, dt)
        errors.append((u - a * x / (1 + a * t_end)).abs().max().item())
    assert errors[-1] < 5e-3
    assert all(1.8 < e0 / e1 < 2.2 for e0, e1 in zip(errors, errors[1:])), errors   # first order in dt


def test_back_traced_points_outside_the_domain_read_the_edge_cell():
    u = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=F64)
    pos = torch.tensor([-3.0, 0.5, 2.25, 7.0], dtype=F64)
    torch.testing.assert_close(bu.sample_linear_clamped(u, pos), torch.tensor([1.0, 1.5, 5.0, 8.0], dtype=F64))


@pytest.mark.parametrize("r, grows", [(0.5, False), (0.55, True)])
def test_the_stability_limit_is_where_the_checkerboard_mode_starts_to_grow(r, grows):
    u = torch.tensor([(-1.0) ** i for i in range(16)], dtype=F64)
    for _ in range(50):
        u = bu.diffuse_explicit(u, r, 1.0)
    assert (u.abs().max().item() > 1.0 + 1e-9) == grows


def test_a_dt_beyond_the_stability_limit_is_refused_with_the_largest_stable_dt():
    with pytest.raises(bu.BurgersStabilityError, match=r"nu\*dt/dx\^2 = 0.6 > 0.5.*use dt <= 5"):
        bu.burgers_step(two_gaussians(), dt=6.0, viscosity=0.1)
    for bad in (dict(dt=0.0), dict(dt=float("nan")), dict(viscosity=-0.1), dict(dx=-1.0)):
        with pytest.raises(bu.BurgersStabilityError, match="must be a finite number"):
            bu.burgers_step(two_gaussians(), **bad)


def test_rollout_adds_the_force_before_each_step_and_keeps_every_state():
    u0 = two_gaussians().expand(3, 32)
    f = 0.03 * torch.randn(3, 32, dtype=F64, generator=torch.Generator().manual_seed(0))
    states = bu.rollout(u0, 4, f)
    assert states.shape == (3, 5, 32)
    torch.testing.assert_close(states[:, 0], u0)
    torch.testing.assert_close(states[:, 2], bu.burgers_step(bu.burgers_step(u0 + f) + f))


def test_gradcheck_through_three_forced_steps_in_float64():
    g = torch.Generator().manual_seed(1)
    u0 = (torch.randn(2, 8, dtype=F64, generator=g) * 0.7).requires_grad_()
    f = (torch.randn(2, 8, dtype=F64, generator=g) * 0.1).requires_grad_()
    assert gradcheck(lambda u, f: bu.rollout(u, 3, f), (u0, f), eps=1e-7, atol=1e-6)


def test_vmap_and_jacrev_work_and_inputs_are_not_modified():
    u = torch.stack([two_gaussians(), -two_gaussians()])
    before = u.clone()
    torch.testing.assert_close(torch.func.vmap(bu.burgers_step)(u), bu.burgers_step(u))
    jac = torch.func.jacrev(bu.burgers_step)(u[0])
    assert jac.shape == (32, 32) and torch.isfinite(jac).all()
    torch.testing.assert_close(u, before, rtol=0, atol=0)
