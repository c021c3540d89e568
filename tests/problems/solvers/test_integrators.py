"""RK4 and the controlled integrator against independent references: analytic solutions, the Taylor series, scipy's
DOP853 at tight tolerance, and the exact RK4 stability polynomial of a linear system."""
import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from torch.autograd import gradcheck

from problems.solvers.integrators import integrate, rk4_step

F64 = torch.float64
T = 12.0


def harmonic(s0, t):
    """Exact flow of x'' = -x: x(t) = x0 cos t + v0 sin t, v(t) = -x0 sin t + v0 cos t (applied per mass)."""
    n = s0.shape[-1] // 2
    x0, v0 = s0[..., :n], s0[..., n:]
    return torch.cat([x0 * math.cos(t) + v0 * math.sin(t), -x0 * math.sin(t) + v0 * math.cos(t)], -1)


def oscillator(s, t):
    return torch.stack([s[..., 1], -s[..., 0]], -1)


def test_rk4_is_fourth_order_on_the_harmonic_oscillator():
    s0 = torch.tensor([[1.0, 0.5]], dtype=F64)
    errors = [(integrate(oscillator, s0, T / n, steps=n) - harmonic(s0, T)).norm().item() for n in (48, 96, 192)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(15.5 < r < 16.5 for r in ratios), ratios  # halving dt divides the global error by 2^4


def test_rk4_step_matches_the_taylor_series_of_a_time_dependent_ode():
    # ds/dt = t s, s(0) = 1: s(t) = exp(t^2 / 2); one step is exact to O(dt^5)
    f = lambda s, t: t * s
    for dt in (0.1, 0.05):
        err = abs(rk4_step(f, torch.ones(1, dtype=F64), 0.3, dt).item() * math.exp(0.3 ** 2 / 2)
                  - math.exp((0.3 + dt) ** 2 / 2))
        assert err < 0.1 * dt ** 5


def forced_pendulum(s, t, u):
    """theta' = omega, omega' = -sin(theta) + u + 0.3 cos(t): nonlinear, time-dependent and controlled."""
    return torch.stack([s[..., 1], -torch.sin(s[..., 0]) + u + 0.3 * math.cos(t)], -1)


def scipy_reference(s0: np.ndarray, u: np.ndarray, dt: float) -> np.ndarray:
    """The same ODE solved piece by piece (u constant on each [k dt, (k+1) dt]) by scipy's DOP853 at 1e-13."""
    out = []
    for y, ub in zip(s0, u):
        for k, uk in enumerate(ub):
            sol = solve_ivp(lambda t, s: [s[1], -np.sin(s[0]) + uk + 0.3 * np.cos(t)], (k * dt, (k + 1) * dt), y,
                            method="DOP853", rtol=1e-13, atol=1e-13)
            y = sol.y[:, -1]
        out.append(y)
    return np.stack(out)


def test_controlled_nonlinear_ode_converges_to_scipy_at_fourth_order():
    g = torch.Generator().manual_seed(0)
    s0, u = torch.randn(3, 2, dtype=F64, generator=g), torch.randn(3, 20, dtype=F64, generator=g)
    ref = scipy_reference(s0.numpy(), u.numpy(), 0.1)
    # refining dt keeps the control piecewise constant on the coarse intervals: each u_k repeats k times
    errors = [np.abs(integrate(forced_pendulum, s0, 0.1 / k, u.repeat_interleave(k, 1)).numpy() - ref).max()
              for k in (1, 2, 4)]
    assert errors[0] < 1e-5                                                            # measured 3.7e-6
    assert 15 < errors[0] / errors[1] < 17 and 15 < errors[1] / errors[2] < 17         # measured 16.0, 16.0


def test_jacobian_of_a_linear_system_is_the_rk4_stability_polynomial_to_the_power_n():
    # for ds/dt = A s one RK4 step is s -> R(dt A) s, R(z) = 1 + z + z^2/2 + z^3/6 + z^4/24, exactly
    a = torch.tensor([[0.0, 1.0], [-1.0, -0.1]], dtype=F64)
    dt, n = 0.3, 17
    z = dt * a
    eye = torch.eye(2, dtype=F64)
    r = eye + z + z @ z / 2 + z @ z @ z / 6 + z @ z @ z @ z / 24
    f = lambda s, t: s @ a.T
    jac = torch.func.jacrev(lambda s: integrate(f, s[None], dt, steps=n)[0])(torch.tensor([0.4, -1.2], dtype=F64))
    torch.testing.assert_close(jac, torch.linalg.matrix_power(r, n), atol=1e-14, rtol=1e-13)


def test_integrate_passes_one_control_per_step_and_returns_the_trajectory():
    # ds/dt = u: the final state is the sum of dt * u_k, exactly, and the trajectory is its cumulative sum
    u = torch.randn(3, 7, 2, dtype=F64)
    s0 = torch.randn(3, 2, dtype=F64)
    final, traj = integrate(lambda s, t, uk: uk, s0, 0.5, u, return_trajectory=True)
    torch.testing.assert_close(final, s0 + 0.5 * u.sum(1))
    assert traj.shape == (3, 8, 2)
    torch.testing.assert_close(traj[:, 1:], s0[:, None] + 0.5 * u.cumsum(1))
    torch.testing.assert_close(traj[:, 0], s0)
    with pytest.raises(ValueError, match="steps"):
        integrate(lambda s, t: s, s0, 0.5)
    with pytest.raises(ValueError, match="steps=4"):
        integrate(lambda s, t, uk: uk, s0, 0.5, u, steps=4)
    with pytest.raises(ValueError, match=r"\(B, n_steps, \.\.\.\)"):
        integrate(lambda s, t, uk: uk, s0, 0.5, u[0, 0])


def test_gradients_match_finite_differences_vmap_and_leave_inputs_alone():
    g = torch.Generator().manual_seed(1)
    s0, u = torch.randn(2, 2, dtype=F64, generator=g), torch.randn(2, 6, dtype=F64, generator=g)
    s0_copy, u_copy = s0.clone(), u.clone()
    assert gradcheck(lambda s, v: integrate(forced_pendulum, s, 0.2, v),
                     (s0.clone().requires_grad_(), u.clone().requires_grad_()))
    batched = integrate(forced_pendulum, s0, 0.2, u)
    per_example = torch.func.vmap(lambda s, v: integrate(forced_pendulum, s[None], 0.2, v[None])[0])(s0, u)
    torch.testing.assert_close(per_example, batched, atol=0, rtol=0)
    torch.testing.assert_close(s0, s0_copy, atol=0, rtol=0)
    torch.testing.assert_close(u, u_copy, atol=0, rtol=0)
