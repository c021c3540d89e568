"""physopt.hig.direction: hig_direction looks its route up in one table; every route gives the paper's update."""
import pytest
import torch
from torch import nn

from physopt.hig import direction as direction_module
from physopt.hig.direction import HIG_ROUTES, ROUTES, hig_direction, loss_gradient


def mse(y, target):
    return 0.5 * (y - target).pow(2).sum(-1)


def flat(direction):
    return torch.cat([v.reshape(-1) for v in direction.values()])


def test_every_route_gives_the_half_inverse_of_the_dense_svd(setup, physics, dense_reference):
    """dtheta = V S^-1/2 U^T g with J = U S V^T from a dense SVD and g = dL/dy of the batch-mean loss (Eq. 7)."""
    net, inputs, target = setup(b=4)
    J = dense_reference(net, inputs, target)
    y = physics(net(inputs), target)
    g = ((y - target) / 4).reshape(-1)                       # d/dy of mean_i 1/2 |y_i - target_i|^2
    U, s, Vh = torch.linalg.svd(J, full_matrices=False)
    expected = Vh.T @ (s ** -0.5 * (U.T @ g))
    assert set(ROUTES) == {"factored", "gram", "svd"} and HIG_ROUTES[0] == "auto"
    for route in HIG_ROUTES:
        d, stats = hig_direction(net, inputs, physics, mse, target, route=route, truncation=0.0, stats=True)
        assert stats.route == ("factored" if route == "auto" else route)
        assert (stats.rows, stats.cols, stats.kept) == (12, 68, 12)
        assert stats.loss == pytest.approx(mse(y, target).mean().item())
        torch.testing.assert_close(flat(d), expected)


@pytest.mark.parametrize("name", ["oscillators", "poisson-hig"])
def test_both_jacobian_engines_give_the_same_update_on_every_route(name):
    """expand (one batched backward) and vmap (vmap(jacrev)) on a bundled HIG problem in float64: the same direction
    to 1e-10 relative on each route (issue 18's bar for a faster route)."""
    from problems import get_problem
    problem = get_problem(name, dtype=torch.float64, **({"resolution": 4} if name == "poisson-hig" else {}))
    batch = problem.sample(6, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    for route in ("factored", "gram", "svd"):
        d = {engine: hig_direction(net, batch.inputs, problem.forward, problem.loss, batch, route=route,
                                   jacobian=engine) for engine in ("vmap", "expand")}
        assert d["expand"][1].engine == "expand" and d["vmap"][1].engine == "vmap"
        a, b = flat(d["vmap"][0]), flat(d["expand"][0])
        assert ((a - b).norm() / a.norm()).item() < 1e-10, route


def test_both_jacobian_engines_agree_on_quantum_dipole_in_float64():
    """The 384-step Crank-Nicolson solver: the engines' updates agree to 1e-10 on the SVD route in float64 (the
    Gram-based routes square a condition number of ~1e6 there, so they amplify rounding beyond that bar); with the
    float32 network of hig-timing they differ by ~1e-3 (results/hig-timing/engines)."""
    from problems import get_problem
    problem = get_problem("quantum-dipole", dtype=torch.float64)
    batch = problem.sample(4, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    a, b = (flat(hig_direction(net, batch.inputs, problem.forward, problem.loss, batch, route="svd",
                               jacobian=engine)[0]) for engine in ("vmap", "expand"))
    assert ((a - b).norm() / a.norm()).item() < 1e-10


def test_a_supplied_physics_jacobian_gives_the_same_update_on_every_route(setup, physics, physics_jacobian):
    """jacobian='supplied' (dy/dx from the physics, only the network differentiated) against 'expand': the same
    direction to 1e-10 relative in float64 on each route; ``auto`` picks it when a physics Jacobian is given."""
    net, inputs, target = setup(b=4)
    for route in ("factored", "gram", "svd"):
        a, sa = hig_direction(net, inputs, physics, mse, target, route=route, jacobian="expand")
        b, sb = hig_direction(net, inputs, physics, mse, target, route=route, physics_jacobian=physics_jacobian)
        assert (sa.engine, sb.engine) == ("expand", "supplied")
        assert ((flat(a) - flat(b)).norm() / flat(a).norm()).item() < 1e-10, route


def test_the_quantum_dipoles_closed_form_jacobian_gives_the_autograd_update_in_float64():
    """The 384-step solver's closed-form dy/dx (problems.solvers.schroedinger.rollout_jacobian) under HIG: the
    update of vmap(jacrev) to 1e-10 on the SVD route (see the test above for why not the Gram-based routes)."""
    from problems import get_problem
    problem = get_problem("quantum-dipole", dtype=torch.float64)
    batch = problem.sample(4, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    a, b = (flat(hig_direction(net, batch.inputs, problem.forward, problem.loss, batch, route="svd", jacobian=engine,
                               physics_jacobian=problem.physics_jacobian)[0]) for engine in ("vmap", "auto"))
    assert ((a - b).norm() / a.norm()).item() < 1e-10


def test_auto_takes_svd_for_tall_jacobians_and_gram_where_the_network_does_not_factor(setup, physics):
    net, inputs, target = setup(b=40)                        # 120 rows > 68 weights
    assert hig_direction(net, inputs, physics, mse, target)[1].route == "svd"

    class Scaled(nn.Module):                                 # a weight outside nn.Linear: no factored form
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4).double()
            self.scale = nn.Parameter(torch.ones(4, dtype=torch.float64))

        def forward(self, x):
            return self.lin(x) * self.scale

    _, inputs, target = setup(b=2)
    assert hig_direction(Scaled(), inputs, physics, mse, target)[1].route == "gram"
    with pytest.raises(ValueError, match="route='factored' needs a model"):
        hig_direction(Scaled(), inputs, physics, mse, target, route="factored")
    with pytest.raises(ValueError, match="Invalid route: 'qr'"):
        hig_direction(Scaled(), inputs, physics, mse, target, route="qr")


def test_a_new_route_is_one_entry_in_the_table(setup, physics, monkeypatch):
    """hig_direction dispatches through ROUTES: a registered builder is used with the memory plan it is given."""
    seen = {}

    def build_spy(model, inputs, physics, args, **plan):
        seen.update(plan)
        route = ROUTES["gram"](model, inputs, physics, args, **plan)
        route.name = "spy"
        return route

    monkeypatch.setitem(ROUTES, "spy", build_spy)
    monkeypatch.setattr(direction_module, "HIG_ROUTES", (*HIG_ROUTES, "spy"))
    net, inputs, target = setup(b=2)
    d, stats = hig_direction(net, inputs, physics, mse, target, route="spy", chunk_size=1)
    reference, _ = hig_direction(net, inputs, physics, mse, target, route="gram")
    probe = seen.pop("probe")                                    # y of the first example, computed once
    torch.testing.assert_close(probe, physics(net(inputs[:1]), target[:1]))
    assert seen == {"chunk_size": 1, "memory_bound": None, "extra_bytes": 8 * 4 * 6 ** 2, "engine": "auto",
                    "physics_jacobian": None}
    assert stats.route == "gram" and stats.chunk_size == 1      # the spectrum names the decomposition it used
    torch.testing.assert_close(flat(d), flat(reference))


def test_loss_gradient_takes_per_example_or_scalar_losses():
    y = torch.tensor([[1.0, 2.0], [3.0, 5.0]], dtype=torch.float64)
    g, value = loss_gradient(lambda v: 0.5 * v.pow(2).sum(-1), y, ())
    torch.testing.assert_close(g, y.reshape(-1) / 2)
    assert value.dim() == 0 and not value.requires_grad and value.item() == pytest.approx(9.75)
    g_scalar, _ = loss_gradient(lambda v: 0.5 * v.pow(2).sum(-1).mean(), y, ())
    torch.testing.assert_close(g_scalar, g)
    with pytest.raises(ValueError, match=r"per-example losses of shape \(2,\) or a scalar"):
        loss_gradient(lambda v: v, y, ())


class _LegacySin(torch.autograd.Function):
    """sin as an old-style autograd.Function: torch.func (vmap) refuses it, torch.autograd runs it (a stand-in for a
    simulation written with phiml / PhiFlow)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return torch.cos(x) * g


def test_physics_that_cannot_be_vmapped_gets_the_same_update_through_the_expand_engine(setup):
    """expand never vmaps the physics: on the factored route nothing is vmapped, on the dense route only the network
    is; both equal the vmap engine on a plain-torch twin (1e-8 relative, float64); the vmap engine names the
    problem."""
    from physopt.hig.per_example import JacobianError
    net, inputs, target = setup(b=4)

    def legacy(x, t):
        return torch.stack([10 * _LegacySin.apply(x[:, 0]), x[:, 1] * x[:, 2], 0.01 * x[:, 3]], dim=-1)

    def twin(x, t):
        return torch.stack([10 * torch.sin(x[:, 0]), x[:, 1] * x[:, 2], 0.01 * x[:, 3]], dim=-1)

    for route in ("factored", "gram", "svd"):
        expected = flat(hig_direction(net, inputs, twin, mse, target, route=route, jacobian="vmap")[0])
        got = flat(hig_direction(net, inputs, legacy, mse, target, route=route, jacobian="expand")[0])
        assert ((got - expected).norm() / expected.norm()).item() < 1e-8, route
    with pytest.raises(JacobianError, match="vmap"):
        hig_direction(net, inputs, legacy, mse, target, jacobian="vmap")
