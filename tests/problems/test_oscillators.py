"""The nonlinear-oscillator control problem (HIG paper Sec. 3.1) against independent references: analytic harmonic
solutions, Duhamel's integral, energy conservation, time-step refinement and finite differences. The RK4 integrator
itself is specified in tests/problems/solvers/test_integrators.py."""
import dataclasses
import math

import pytest
import torch
from torch.autograd import gradcheck

from problems import Batch, get_problem
from problems.oscillators import OscillatorsConfig, OscillatorsProblem

F64 = torch.float64
T = 12.0  # 96 steps of 0.125


def make(**kw):
    return get_problem("oscillators", dtype=F64, **kw)


def harmonic(s0, t):
    """Exact flow of x'' = -x: x(t) = x0 cos t + v0 sin t, v(t) = -x0 sin t + v0 cos t (applied per mass)."""
    n = s0.shape[-1] // 2
    x0, v0 = s0[..., :n], s0[..., n:]
    return torch.cat([x0 * math.cos(t) + v0 * math.sin(t), -x0 * math.sin(t) + v0 * math.cos(t)], -1)


def start(batch_size=64, seed=0):
    return make().sample(batch_size, torch.Generator().manual_seed(seed))


# ---- the physics ----------------------------------------------------------------------------------------------------
def test_without_interaction_and_control_the_masses_are_harmonic_oscillators():
    p = make(alpha=0.0)
    batch = start()
    y = p.forward(torch.zeros(64, 96, dtype=F64), batch)
    # RK4's phase error after T = 12 is about T dt^4 / 120 = 2.4e-5 per unit amplitude (measured 3.4e-5 at most)
    torch.testing.assert_close(y, harmonic(batch.target, T), atol=1e-4, rtol=0)


def test_rhs_is_the_stated_ode_with_free_ends():
    p = make(n_masses=3, alpha=0.7, coupling=(1.0, -2.0, 0.5))
    s = torch.randn(5, 6, dtype=F64)
    u = torch.randn(5, dtype=F64)
    x, v = s[:, :3], s[:, 3:]
    expect_a = torch.stack([
        -x[:, 0] + 0.7 * (x[:, 1] - x[:, 0]) ** 3 + 1.0 * u,
        -x[:, 1] + 0.7 * ((x[:, 2] - x[:, 1]) ** 3 + (x[:, 0] - x[:, 1]) ** 3) - 2.0 * u,
        -x[:, 2] + 0.7 * (x[:, 1] - x[:, 2]) ** 3 + 0.5 * u,
    ], -1)
    force = u[:, None] * torch.tensor([0, 0, 0, 1.0, -2.0, 0.5], dtype=F64)
    torch.testing.assert_close(p.rhs(s, 0.0, force), torch.cat([v, expect_a], -1))


def test_single_mass_is_a_driven_harmonic_oscillator():
    p = make(n_masses=1, coupling=(1.0,), alpha=5.0)  # no bonds: alpha plays no role
    s = torch.randn(4, 2, dtype=F64)
    force = torch.randn(4, 1, dtype=F64) * torch.tensor([0.0, 1.0], dtype=F64)
    torch.testing.assert_close(p.rhs(s, 0.0, force), torch.stack([s[:, 1], -s[:, 0] + force[:, 1]], -1))


def test_energy_is_conserved_without_control():
    p = make()
    batch = start(256)
    _, traj = p.simulate(torch.zeros(256, 96, dtype=F64), batch.target, return_trajectory=True)
    energy = p.energy(traj)  # E = sum (x^2 + v^2)/2 + alpha/4 sum_bonds (x_{i+1} - x_i)^4, per state
    drift = ((energy - energy[:, :1]).abs() / energy[:, :1]).max()
    assert drift < 5e-4  # measured 2.0e-4 with dt = 0.125 (RK4 is not symplectic: a small drift remains)
    _, fine = make(dt=0.125 / 2, steps=192).simulate(torch.zeros(256, 192, dtype=F64), batch.target,
                                                     return_trajectory=True)
    fine_energy = p.energy(fine)
    assert ((fine_energy - fine_energy[:, :1]).abs() / fine_energy[:, :1]).max() < drift / 8


def test_energy_formula():
    p = make(n_masses=3, alpha=2.0, coupling=(0.0, 0.0, 1.0))
    s = torch.tensor([[1.0, 3.0, 0.0, 0.5, -1.0, 2.0]], dtype=F64)
    expect = 0.5 * (1 + 9 + 0 + 0.25 + 1 + 4) + 2.0 / 4 * (2.0 ** 4 + 3.0 ** 4)
    torch.testing.assert_close(p.energy(s), torch.tensor([expect], dtype=F64))


def test_finer_time_steps_agree_as_rk4_predicts():
    batch = start(128)
    u = 0.1 * torch.randn(128, 96, dtype=F64, generator=torch.Generator().manual_seed(2))
    y = {k: make(dt=0.125 / k, steps=96 * k).forward(u.repeat_interleave(k, 1), batch) for k in (1, 2, 4)}
    assert (y[1] - y[4]).abs().max() < 5e-3  # measured 1.1e-3
    # with error C dt^4: |y_dt - y_dt/4| / |y_dt/2 - y_dt/4| = (1 - 4^-4) / (2^-4 - 4^-4) = 17 (measured 19)
    ratio = (y[1] - y[4]).norm(dim=1).mean() / (y[2] - y[4]).norm(dim=1).mean()
    assert 13 < ratio < 25


def test_control_acts_only_on_the_second_mass():
    p = make(alpha=0.0)  # uncoupled: the first mass never feels the control
    batch = start(16)
    u = torch.randn(16, 96, dtype=F64)
    y0, y1 = p.forward(torch.zeros_like(u), batch), p.forward(u, batch)
    torch.testing.assert_close(y1[:, [0, 2]], y0[:, [0, 2]], atol=0, rtol=0)
    assert ((y1 - y0)[:, [1, 3]].abs() > 1e-3).all()
    # the rhs depends on u only through dv_2/dt = ... + 3 u
    s = batch.target
    d_rhs = torch.func.jacrev(lambda f: p.rhs(s[:1], 0.0, f * p._constants(s)[3]))(torch.ones(1, dtype=F64))
    torch.testing.assert_close(d_rhs[0, :, 0], torch.tensor([0.0, 0.0, 0.0, 3.0], dtype=F64))
    # with coupling (alpha = 1) the control reaches the first mass through the bond
    coupled = make()
    assert ((coupled.forward(u, batch) - coupled.forward(torch.zeros_like(u), batch))[:, [0, 2]].abs() > 1e-6).all()


def test_uncoupled_control_response_matches_duhamels_integral():
    # x'' = -x + 3 u(t), u = u_k on [t_k, t_k+1): x(T) and v(T) are linear in u with
    # dx(T)/du_k = 3 [cos(T - t_{k+1}) - cos(T - t_k)],  dv(T)/du_k = 3 [sin(T - t_k) - sin(T - t_{k+1})]
    p = make(alpha=0.0)
    batch = start(1)
    jac = torch.func.jacrev(lambda u: p.forward(u, batch))(torch.zeros(1, 96, dtype=F64))[0, :, 0]  # (4, 96)
    t = 0.125 * torch.arange(97, dtype=F64)
    dx = 3 * (torch.cos(T - t[1:]) - torch.cos(T - t[:-1]))
    dv = 3 * (torch.sin(T - t[:-1]) - torch.sin(T - t[1:]))
    torch.testing.assert_close(jac[1], dx, atol=1e-5, rtol=0)
    torch.testing.assert_close(jac[3], dv, atol=1e-5, rtol=0)
    assert (jac[[0, 2]] == 0).all()


def test_jacobian_matches_finite_differences_and_vmap():
    p = make()
    batch = start(3, seed=5)
    u = 0.3 * torch.randn(3, 96, dtype=F64, generator=torch.Generator().manual_seed(6))
    one = Batch(batch.inputs[:1], batch.target[:1])
    jac = torch.func.jacrev(lambda v: p.forward(v, one))(u[:1])[0, :, 0]  # (4, 96)
    # central differences of all 96 controls in one batched forward
    eps = 1e-6
    bumps = eps * torch.eye(96, dtype=F64)
    rep = Batch(one.inputs.expand(96, -1), one.target.expand(96, -1))
    fd = (p.forward(u[:1] + bumps, rep) - p.forward(u[:1] - bumps, rep)).T / (2 * eps)
    torch.testing.assert_close(jac, fd, atol=1e-7, rtol=1e-6)
    # per-example Jacobians under vmap (as Gauss-Newton / HIG compute them) equal the single-example ones
    per_example = torch.func.vmap(
        torch.func.jacrev(lambda v, s: p.forward(v[None], Batch(s[None], s[None]))[0]))(u, batch.target)
    torch.testing.assert_close(per_example[0], jac)
    assert gradcheck(lambda v: p.forward(v, batch), (u.clone().requires_grad_(),), eps=1e-6, atol=1e-6,
                     fast_mode=True)


def test_forward_does_not_modify_its_inputs_and_keeps_dtype():
    p = get_problem("oscillators")  # float32
    batch = p.sample(8, torch.Generator().manual_seed(0))
    target, u = batch.target.clone(), torch.randn(8, 96)
    y = p.forward(u.clone(), batch)
    assert y.shape == (8, 4) and y.dtype == torch.float32
    torch.testing.assert_close(batch.target, target, atol=0, rtol=0)


# ---- data, network, config ------------------------------------------------------------------------------------------
def test_sample_is_seeded_uniform_and_asks_to_return_to_the_start():
    p = get_problem("oscillators")
    a = p.sample(1000, torch.Generator().manual_seed(7))
    b = p.sample(1000, torch.Generator().manual_seed(7))
    c = p.sample(1000, torch.Generator().manual_seed(8))
    torch.testing.assert_close(a.inputs, b.inputs, atol=0, rtol=0)
    assert not torch.equal(a.inputs, c.inputs)
    assert a.inputs.shape == (1000, 4) and a.inputs.dtype == torch.float32 and a.x_true is None
    assert torch.equal(a.inputs, a.target)
    assert a.inputs.min() >= 0 and a.inputs.max() < 1 and abs(a.inputs.mean().item() - 0.5) < 0.02
    expect = torch.rand(1000, 4, generator=torch.Generator().manual_seed(7), dtype=F64).float()
    torch.testing.assert_close(a.inputs, expect, atol=0, rtol=0)  # float64 draws, so every dtype sees the same data


def test_default_network_has_the_papers_2956_weights():
    p = get_problem("oscillators")
    net = p.default_network()
    assert sum(w.numel() for w in net.parameters()) == 2956
    batch = p.sample(5, torch.Generator().manual_seed(0))
    x = p.predict(net, batch)
    assert x.shape == (5, 96)
    m = p.metrics(x.detach(), batch)
    assert m["x_error"] is None and m["loss"] > 0
    three = get_problem("oscillators", n_masses=3, coupling=(0.0, 0.0, 3.0), steps=10)
    assert three.default_network()[0].in_features == 6 and three.x_shape == (10,)


def test_paper_settings():
    c = OscillatorsConfig()
    assert (c.n_masses, c.alpha, c.coupling, c.dt, c.steps) == (2, 1.0, (0.0, 3.0), 0.125, 96)
    settings, config = OscillatorsProblem.benchmark, OscillatorsProblem.Config()
    assert set(settings.per_optimizer) == set(settings.optimizers)
    # the paper's batch sizes and truncation; Adam's and HIG's rates are tuned for 600 s (the paper's 3e-4 and 1 are
    # for 3600 s; tests/results checks them against the tuning files)
    assert settings.hyperparameters("hig", config) == {"lr": 8.0, "truncation": 1e-6, "batch_size": 128}
    assert settings.hyperparameters("adam", config) == {"lr": 1e-3, "batch_size": 512}
    assert "600 s" in settings.per_optimizer["hig"].source and "600 s" in settings.per_optimizer["adam"].source
    assert not OscillatorsProblem.defines_inverse()


def test_config_overrides_and_strings():
    p = get_problem("oscillators", alpha="0.5", steps="48", coupling="1, 2, 3", n_masses="3")
    assert (p.config.alpha, p.config.steps, p.config.coupling, p.config.n_masses) == (0.5, 48, (1.0, 2.0, 3.0), 3)
    assert dataclasses.replace(p.config, coupling=[1, 2, 3]).coupling == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("overrides, message", [
    ({"n_masses": 0, "coupling": ()}, "n_masses must be an integer >= 1"),
    ({"n_masses": 3}, "coupling needs one weight per mass"),
    ({"coupling": (1.0,)}, "coupling needs one weight per mass"),
    ({"dt": 0.0}, "dt must be a finite number > 0"),
    ({"dt": -0.1}, "dt must be a finite number > 0"),
    ({"steps": 0}, "steps must be an integer >= 1"),
])
def test_bad_config_raises(overrides, message):
    with pytest.raises(ValueError, match=message):
        get_problem("oscillators", **overrides)


def test_wrong_number_of_controls_is_rejected():
    p = get_problem("oscillators")
    batch = p.sample(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"expected \(2, 96\)"):
        p.forward(torch.zeros(2, 95), batch)
