"""Generic SIP updates against closed forms and dense linear algebra; a user's own physics trains with them."""
import numpy as np
import pytest
import torch
from torch import nn

import physopt
from physopt import GaussNewtonUpdate, NewtonUpdate, saddle_free_newton_step


def test_newton_on_exp_matches_closed_form():
    """SIP paper / authors' exp toy: dx = -|g/H| sign(g), g = (e^x - y) e^x, H = 2 e^{2x} - y e^x."""
    x = torch.linspace(-6, 1, 11, dtype=torch.float64)[:, None]
    y = torch.exp(torch.linspace(-8, 0, 11, dtype=torch.float64))[:, None]
    dx = NewtonUpdate(torch.exp)(x, y)
    g = (torch.exp(x) - y) * torch.exp(x)
    h = 2 * torch.exp(2 * x) - y * torch.exp(x)
    torch.testing.assert_close(dx, -(g / h).abs() * torch.sign(g))


def test_saddle_free_step_matches_dense_eigendecomposition():
    torch.manual_seed(0)
    a = torch.randn(6, 4, 4, dtype=torch.float64)
    h = a + a.transpose(-1, -2)  # indefinite
    g = torch.randn(6, 4, dtype=torch.float64)
    step = saddle_free_newton_step(g, h)
    for i in range(6):
        lam, q = np.linalg.eigh(h[i].numpy())
        ref = -q @ np.diag(1 / np.abs(lam)) @ q.T @ g[i].numpy()
        np.testing.assert_allclose(step[i].numpy(), ref, rtol=1e-9, atol=1e-12)
        assert float(step[i] @ g[i]) < 0  # always a descent direction


def test_saddle_free_cap_limits_flat_directions_only():
    g = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    h = torch.diag(torch.tensor([100.0, 1e-6], dtype=torch.float64))[None]
    step = saddle_free_newton_step(g, h, max_loss_change=0.2)
    torch.testing.assert_close(step, torch.tensor([[-0.01, -0.2]], dtype=torch.float64))


def test_newton_trust_radius_scales_long_steps_down():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([[3.0, 4.0], [0.3, 0.4]], dtype=torch.float64)
    dx = NewtonUpdate(lambda v: v, max_step=1.0)(x, y)  # exact step is y - x
    torch.testing.assert_close(dx, torch.tensor([[0.6, 0.8], [0.3, 0.4]], dtype=torch.float64))


def test_gauss_newton_solves_linear_least_squares():
    torch.manual_seed(1)
    a = torch.randn(7, 5, dtype=torch.float64)
    physics = lambda x: x @ a.T  # noqa: E731
    x = torch.randn(3, 5, dtype=torch.float64)
    y = torch.randn(3, 7, dtype=torch.float64)
    dx = GaussNewtonUpdate(physics, damping=0.0, max_iterations=50, tolerance=1e-12)(x, y)
    ref = np.linalg.lstsq(a.numpy(), (y - physics(x)).numpy().T, rcond=None)[0].T
    np.testing.assert_allclose(dx.numpy(), ref, rtol=1e-8, atol=1e-10)


def test_gauss_newton_damping_matches_dense_levenberg_marquardt():
    torch.manual_seed(2)
    physics = lambda x: torch.sin(x) * torch.tensor([1.0, 10.0, 0.1], dtype=torch.float64)  # noqa: E731
    x = torch.randn(4, 3, dtype=torch.float64)
    y = torch.randn(4, 3, dtype=torch.float64) * 0.05
    dx = GaussNewtonUpdate(physics, damping=0.3, tolerance=1e-12)(x, y)
    for i in range(4):
        j = torch.func.jacrev(physics)(x[i:i + 1])[0, :, 0].numpy()
        r = (physics(x[i:i + 1]) - y[i:i + 1])[0].numpy()
        ref = np.linalg.solve(j.T @ j + 0.3 * np.eye(3), -j.T @ r)
        np.testing.assert_allclose(dx[i].numpy(), ref, rtol=1e-8, atol=1e-10)


def test_update_arguments_are_validated():
    with pytest.raises(TypeError, match="callable"):
        NewtonUpdate(3)
    with pytest.raises(ValueError, match="damping"):
        GaussNewtonUpdate(torch.sin, damping=-1)
    with pytest.raises(ValueError, match="max_loss_change"):
        NewtonUpdate(torch.sin, max_loss_change=0)
    with pytest.raises(ValueError, match="target"):
        GaussNewtonUpdate(torch.sin)(torch.zeros(2, 3), torch.zeros(2, 4))


def _user_physics(x: torch.Tensor) -> torch.Tensor:
    """A user's own simulator with no hand-written inverse: badly scaled and nonlinear."""
    return torch.stack([torch.exp(x[:, 0]), 100.0 * x[:, 1] + x[:, 0] ** 3, 0.01 * torch.tanh(x[:, 1])], dim=1)


@pytest.mark.parametrize("update", ["newton", "gauss-newton"])
def test_user_physics_trains_with_generic_sip_update(update):
    """Acceptance: a user-defined physics with no inverse trains with SIP through the public API."""
    torch.manual_seed(0)
    x_true = torch.rand(256, 2) * torch.tensor([2.0, 0.5]) - torch.tensor([1.0, 0.25])
    y_true = _user_physics(x_true)
    net = nn.Sequential(nn.Linear(3, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    inverse = physopt.NewtonUpdate(_user_physics, max_step=0.5) if update == "newton" else \
        physopt.GaussNewtonUpdate(_user_physics, damping=1e-6)
    opt = physopt.SIP(net.parameters(), inverse=inverse, lr=3e-3)

    def x_error():
        with torch.no_grad():
            return (net(y_true) - x_true).abs().mean().item()

    start = x_error()
    for it in range(600):
        idx = torch.randint(0, 256, (64,))
        opt.zero_grad()
        opt.step(net(y_true[idx]), y_true[idx])
    assert x_error() < 0.2 * start


# ---- physics torch.func cannot transform (a phiml / PhiFlow simulation, a legacy autograd.Function) ----------------
class _LegacyCube(torch.autograd.Function):
    """x^3 as an old-style autograd.Function (no setup_context): torch.func refuses it, torch.autograd runs it; its
    backward is made of differentiable ops, so double backward works too."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


_MIX = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -0.3], [0.2, 0.0, 1.0], [0.1, 0.1, 0.1]], dtype=torch.float64)


def legacy_physics(x):
    """(b, 3) -> (b, 4): a cubic, then a fixed linear map; examples independent."""
    return (_LegacyCube.apply(x) + x) @ _MIX.T


def twin_physics(x):
    """The same function in plain torch ops (torch.func can transform it)."""
    return (x ** 3 + x) @ _MIX.T


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("make", [lambda p, d: GaussNewtonUpdate(p, damping=1e-3, derivatives=d),
                                  lambda p, d: NewtonUpdate(p, derivatives=d)], ids=["gauss-newton", "newton"])
def test_the_autograd_route_gives_the_torch_func_update(make):
    torch.manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64)
    target = twin_physics(torch.randn(5, 3, dtype=torch.float64))
    reference = make(twin_physics, "func")(x, target)
    assert _rel(make(twin_physics, "autograd")(x, target), reference) < 1e-8
    assert _rel(make(legacy_physics, "autograd")(x, target), reference) < 1e-8


@pytest.mark.parametrize("make", [lambda p: GaussNewtonUpdate(p, damping=1e-3), lambda p: NewtonUpdate(p)],
                         ids=["gauss-newton", "newton"])
def test_auto_falls_back_to_autograd_once_with_a_notice(make):
    torch.manual_seed(1)
    x = torch.randn(4, 3, dtype=torch.float64)
    target = twin_physics(torch.randn(4, 3, dtype=torch.float64))
    update = make(legacy_physics)
    with pytest.warns(RuntimeWarning, match="torch.func cannot transform this physics"):
        dx = update(x, target)
    assert update.derivatives == "autograd" and "derivatives='autograd'" in repr(update)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # the second call says nothing
        update(x, target)
    assert _rel(dx, make(twin_physics)(x, target)) < 1e-8
    plain = make(twin_physics)
    plain(x, target)
    assert plain.derivatives == "auto"                    # torch.func worked: nothing was switched


def test_the_derivative_route_is_checked_and_a_non_differentiable_physics_named():
    with pytest.raises(ValueError, match="derivatives.*autograd"):
        GaussNewtonUpdate(twin_physics, derivatives="numeric")
    x = torch.randn(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="does not depend differentiably"):
        GaussNewtonUpdate(lambda v: v.detach() * 2, derivatives="autograd")(x, torch.zeros(2, 3, dtype=torch.float64))
