"""physopt.phiml_physics: a simulation written with phiml / PhiFlow as a batched torch physics for SIP and HIG."""
import warnings

import numpy as np
import pytest
import torch
from phiml import math
from phiml.math import channel, spatial
from torch import nn

import physopt
from physopt.hig.direction import hig_direction


def phiml_heat(x):
    """Three explicit diffusion steps (diffusivity 0.1, dt 0.5, dx 1, zero boundary) written with phiml."""
    for _ in range(3):
        padded = math.pad(x, {"x": (1, 1)}, 0)
        x = x + 0.05 * (padded.x[2:] - 2 * x + padded.x[:-2])
    return x


def torch_heat(x):
    """Its plain-torch twin."""
    for _ in range(3):
        p = torch.nn.functional.pad(x, (1, 1))
        x = x + 0.05 * (p[:, 2:] - 2 * x + p[:, :-2])
    return x


@pytest.fixture
def heat():
    return physopt.phiml_physics(phiml_heat, x=spatial("x"), y=spatial("x"))


def test_the_wrapped_simulation_is_its_torch_twin_in_float64_with_autograd_intact(heat):
    x = torch.randn(4, 16, dtype=torch.float64, requires_grad=True)
    y = heat(x)
    assert y.dtype == torch.float64 and y.shape == (4, 16)       # phiml's default 32-bit precision is not imposed
    torch.testing.assert_close(y, torch_heat(x), rtol=1e-14, atol=1e-14)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    (expected,) = torch.autograd.grad(torch_heat(x).square().sum(), x)
    torch.testing.assert_close(g, expected, rtol=1e-13, atol=1e-14)


def test_tensors_cross_without_copies():
    identity = physopt.phiml_physics(lambda v: v, x=spatial("x") & channel(vector="u,v"),
                                     y=spatial("x") & channel(vector="u,v"))
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    assert identity(x).data_ptr() == x.data_ptr()


def test_a_phiflow_field_result_is_accepted():
    flow = pytest.importorskip("phi.flow")
    P = physopt.phiml_physics(lambda v: flow.diffuse.explicit(flow.CenteredGrid(v, 0, x=16), 0.1, 0.5),
                              x=spatial("x"), y=spatial("x"))
    x = torch.randn(2, 16, dtype=torch.float64)
    p = torch.nn.functional.pad(x, (1, 1))
    torch.testing.assert_close(P(x), x + 0.05 * (p[:, 2:] - 2 * x + p[:, :-2]), rtol=1e-13, atol=1e-14)


def test_hig_and_the_generic_updates_match_the_torch_twin(heat):
    """torch.func cannot look inside phiml: HIG's expand engine and the updates' autograd route give what the
    torch.func routes give on the plain-torch twin (1e-8 relative, float64)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 24), nn.Tanh(), nn.Linear(24, 16)).double()
    inputs = torch.randn(6, 16, dtype=torch.float64)
    target = torch_heat(torch.randn(6, 16, dtype=torch.float64))
    loss = lambda y, t: 0.5 * (y - t).square().sum(-1)                                 # noqa: E731
    for route in ("factored", "gram"):
        got = hig_direction(net, inputs, lambda v, t: heat(v), loss, target, route=route)[0]
        ref = hig_direction(net, inputs, lambda v, t: torch_heat(v), loss, target, route=route, jacobian="vmap")[0]
        a, b = (torch.cat([d[k].reshape(-1) for k in sorted(d)]) for d in (got, ref))
        assert ((a - b).norm() / b.norm()).item() < 1e-8
    x = torch.randn(6, 16, dtype=torch.float64)
    for update in (physopt.GaussNewtonUpdate, physopt.NewtonUpdate):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # the one-time notice of the fallback
            got = update(heat)(x, target)
        ref = update(torch_heat, derivatives="func")(x, target)
        assert ((got - ref).norm() / ref.norm()).item() < 1e-8


def test_hig_trains_a_network_through_the_phiml_simulation(heat):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 16)).double()
    opt = physopt.HIG(net, physics=lambda v, t: heat(v), loss=lambda y, t: 0.5 * (y - t).square().sum(-1))
    inputs = torch.randn(8, 16, dtype=torch.float64)
    target = torch_heat(torch.randn(8, 16, dtype=torch.float64))
    losses = [float(opt.step(inputs, target)) for _ in range(4)]
    assert losses[-1] < 0.5 * losses[0]


def test_sip_with_the_generic_gauss_newton_update_trains_a_network_through_the_phiml_simulation(heat):
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 16)).double()
    update = physopt.GaussNewtonUpdate(heat, damping=1e-6)
    sip = physopt.SIP(net.parameters(), inverse=update, base=torch.optim.Adam, lr=1e-2)
    x_true = torch.randn(32, 16, dtype=torch.float64)
    y_star = torch_heat(x_true)
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # the one-time notice of the autograd fallback
        for _ in range(30):
            sip.zero_grad()
            x = net(y_star)
            losses.append(float(0.5 * (heat(x.detach()) - y_star).square().sum(-1).mean()))
            sip.step(x, y_star)
    assert losses[-1] < 0.2 * losses[0]


@pytest.mark.parametrize("fn, y, match", [
    (lambda v: math.sum(v, "x"), spatial("x"), "dimension 'x' is missing"),
    (lambda v: math.expand(v, channel(c=2)), spatial("x"), "dimension 'c' is not declared"),
    (lambda v: math.sum(v, "examples"), spatial("x"), "lost the batch dimension 'examples'"),
    (lambda v: math.wrap(v.numpy("examples,x"), math.batch("examples"), spatial("x")), spatial("x"),
     "numpy backend, not torch"),
    (lambda v: v.x[1:], spatial(x=8), "'x' of size 7, but y = .* declares 8"),
    (lambda v: np.zeros(3), spatial("x"), "must return a phiml tensor or a PhiFlow field")])
def test_bad_results_are_named(fn, y, match):
    P = physopt.phiml_physics(fn, x=spatial("x"), y=y)
    with pytest.raises((ValueError, TypeError), match=match):
        P(torch.randn(3, 8, dtype=torch.float64))


def test_bad_declarations_and_inputs_are_named(heat):
    with pytest.raises(TypeError, match="phiml Shape"):
        physopt.phiml_physics(phiml_heat, x="x", y=spatial("x"))
    with pytest.raises(ValueError, match="declares a batch dimension"):
        physopt.phiml_physics(phiml_heat, x=math.batch("b") & spatial("x"), y=spatial("x"))
    with pytest.raises(ValueError, match=r"\(batch, x\)"):
        heat(torch.randn(3, 4, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="'x' has size 8, but .* declares 16"):
        physopt.phiml_physics(phiml_heat, x=spatial(x=16), y=spatial("x"))(torch.randn(2, 8))
    with pytest.raises(TypeError, match="floating-point torch tensor"):
        heat(np.zeros((2, 16)))


def test_a_phiml_simulation_that_stops_the_gradient_is_named():
    frozen = physopt.phiml_physics(lambda v: math.stop_gradient(v) * 2, x=spatial("x"), y=spatial("x"))
    net = nn.Sequential(nn.Linear(4, 4)).double()
    with pytest.raises(physopt.JacobianError, match="not differentiable"):
        physopt.HIG(net, lambda v, t: frozen(v), lambda y, t: y.square().sum(-1)).step(
            torch.randn(3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not depend differentiably"):
        physopt.GaussNewtonUpdate(frozen, derivatives="autograd")(torch.randn(3, 4, dtype=torch.float64),
                                                                   torch.zeros(3, 4, dtype=torch.float64))


# ---- staggered grids -------------------------------------------------------------------------------------------

def _flow():
    return pytest.importorskip("phi.torch.flow")


def torch_staggered_diffusion(v, amount=0.1):
    """Explicit diffusion of each component of a periodic staggered field (b, 2, nx, ny), unit cells: the plain-torch
    twin of PhiFlow's diffuse.explicit on a periodic StaggeredGrid (every component has n x n faces there)."""
    lap = sum(torch.roll(v, s, d) for d in (2, 3) for s in (1, -1)) - 4 * v
    return v + amount * lap


@pytest.mark.parametrize("boundary", ["PERIODIC", "ZERO", "ZERO_GRADIENT"])
def test_a_staggered_grid_crosses_in_phiflows_layout_each_component_padded(boundary):
    flow = _flow()
    bc = getattr(flow.extrapolation, boundary)
    grid = physopt.staggered(spatial(x=5, y=4), bc)
    sizes = {"PERIODIC": [(5, 4), (5, 4)], "ZERO": [(4, 4), (5, 3)], "ZERO_GRADIENT": [(6, 4), (5, 5)]}[boundary]
    assert grid.component_sizes() == sizes                        # PhiFlow's own face counts for the boundary
    assert grid.faces() == (2, max(s[0] for s in sizes), max(s[1] for s in sizes))
    seen = {}

    def keep(v):
        seen["grid"] = v
        seen["components"] = [v.values[{"~vector": c}].native(["examples", "x", "y"]) for c in "xy"]
        return v

    P = physopt.phiml_physics(keep, x=grid, y=grid)
    x = torch.randn(3, *grid.faces(), dtype=torch.float64, requires_grad=True)
    y = P(x)
    assert seen["grid"].is_staggered and seen["grid"].resolution.sizes == (5, 4)
    for k, (c, (a, b)) in enumerate(zip("xy", sizes)):
        assert seen["components"][k].data_ptr() == x[:, k].data_ptr()              # a view, no copy
        torch.testing.assert_close(seen["components"][k], x[:, k, :a, :b])
        assert y[:, k, a:].abs().sum() == 0 and y[:, k, :, b:].abs().sum() == 0
        torch.testing.assert_close(y[:, k, :a, :b], x[:, k, :a, :b])
    assert (y.data_ptr() == x.data_ptr()) == (boundary == "PERIODIC")             # periodic: no copy either way
    (g,) = torch.autograd.grad(y.sum(), x)                    # the padding is no input: no gradient reaches it
    assert g.sum().item() == sum(a * b for a, b in sizes) * 3


def test_staggered_phiflow_physics_is_its_torch_twin_with_gradients_hig_and_updates():
    flow = _flow()
    grid = physopt.staggered(spatial(x=6, y=6), flow.extrapolation.PERIODIC)
    P = physopt.phiml_physics(lambda v: flow.diffuse.explicit(v, 0.1, 1.0), x=grid, y=grid)
    x = torch.randn(4, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    y = P(x)
    torch.testing.assert_close(y, torch_staggered_diffusion(x), rtol=1e-12, atol=1e-13)
    w = torch.randn_like(y)
    (g,) = torch.autograd.grad((y * w).sum(), x)
    (expected,) = torch.autograd.grad((torch_staggered_diffusion(x) * w).sum(), x)
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-13)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(72, 32), nn.Tanh(), nn.Linear(32, 72), nn.Unflatten(1, (2, 6, 6)))
    net = net.double()
    inputs, target = torch.randn(5, 2, 6, 6, dtype=torch.float64), torch.randn(5, 2, 6, 6, dtype=torch.float64)
    loss = lambda y, t: 0.5 * (y - t).square().sum((1, 2, 3))                          # noqa: E731
    got = hig_direction(net, inputs, lambda v, t: P(v), loss, target, route="gram")[0]
    ref = hig_direction(net, inputs, lambda v, t: torch_staggered_diffusion(v), loss, target, route="gram",
                        jacobian="vmap")[0]
    a, b = (torch.cat([d[k].reshape(-1) for k in sorted(d)]) for d in (got, ref))
    assert ((a - b).norm() / b.norm()).item() < 1e-8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        update = physopt.GaussNewtonUpdate(P)(x.detach(), target[:4])
    ref_update = physopt.GaussNewtonUpdate(torch_staggered_diffusion, derivatives="func")(x.detach(), target[:4])
    assert ((update - ref_update).norm() / ref_update.norm()).item() < 1e-8


def test_bad_staggered_declarations_inputs_and_results_are_named():
    flow = _flow()
    grid = physopt.staggered(spatial(x=5, y=4), flow.extrapolation.ZERO_GRADIENT)
    with pytest.raises(ValueError, match="with sizes"):
        physopt.staggered(spatial("x,y"), flow.extrapolation.ZERO)
    P = physopt.phiml_physics(lambda v: v, x=grid, y=grid)
    with pytest.raises(ValueError, match=r"\(batch, 2, 6, 5\).*zero-gradient"):
        P(torch.randn(3, 2, 5, 4, dtype=torch.float64))
    centred = physopt.phiml_physics(lambda v: v.at_centers(), x=grid, y=grid)
    with pytest.raises(TypeError, match="not staggered"):
        centred(torch.randn(3, *grid.faces(), dtype=torch.float64))
    other = physopt.phiml_physics(lambda v: v, x=grid, y=physopt.staggered(spatial(x=4, y=4),
                                                                           flow.extrapolation.ZERO_GRADIENT))
    with pytest.raises(ValueError, match="resolution"):
        other(torch.randn(3, *grid.faces(), dtype=torch.float64))
