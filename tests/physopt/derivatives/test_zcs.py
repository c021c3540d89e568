"""Specification of the coordinate-derivative engines (physopt.derivatives.zcs): ZCS, FuncLoop, DataVect."""
import copy

import pytest
import torch

from physopt.names import UnknownNameError
from physopt.derivatives.zcs import (ENGINES, ZCS, DataVect, FuncLoop, as_multi_index, check_pointwise,
                                     derivative_engine)
from problems.operators import deeponet

ALPHAS = [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 1), (2, 2), (0, 4), (1, 3)]
M, N = 2, 3


@pytest.fixture
def setup():
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = deeponet(4, 2, width=8, depth=2).double()
    return net, torch.randn(M, 4, generator=g, dtype=torch.float64), torch.rand(N, 2, generator=g, dtype=torch.float64)


def nested_autograd(fn, p, x, alpha):
    """Independent reference: each u_ij as a scalar of its own leaf x_j, differentiated order by order."""
    out = torch.empty(p.shape[0], x.shape[0], dtype=x.dtype)
    for i in range(p.shape[0]):
        for j in range(x.shape[0]):
            xj = x[j].clone().requires_grad_(True)
            s = fn(p[i:i + 1], xj[None])[0, 0]
            for k, order in enumerate(alpha):
                for _ in range(order):
                    s = torch.autograd.grad(s, xj, create_graph=True)[0][k]
            out[i, j] = s.detach()
    return out


@pytest.mark.parametrize("name", list(ENGINES))
def test_every_derivative_up_to_order_four_matches_nested_autograd(setup, name):
    net, p, x = setup
    engine = derivative_engine(name, net, p, x)
    for alpha in ALPHAS:
        got, want = engine.derivative(alpha), nested_autograd(net, p, x, alpha)
        assert got.shape == (M, N)
        torch.testing.assert_close(got.detach(), want, rtol=1e-8, atol=1e-10 * want.abs().max().item())


def test_combination_is_the_sum_of_fields_with_one_a_gradient(setup):
    net, p, x = setup
    engine = ZCS(net, p, x)
    laplacian = engine.combination({(2, 0): 1.0, (0, 2): 1.0})
    assert engine.grad_calls == 3 + 1              # z-gradients of omega, omega_x, omega_y; then one a-gradient
    want = nested_autograd(net, p, x, (2, 0)) + nested_autograd(net, p, x, (0, 2))
    torch.testing.assert_close(laplacian.detach(), want, rtol=1e-8, atol=1e-12)
    for other in (FuncLoop(net, p, x), DataVect(net, p, x)):
        torch.testing.assert_close(other.combination({(2, 0): 1.0, (0, 2): 1.0}), laplacian, rtol=1e-10, atol=1e-12)


def test_zcs_cache_reuses_the_nearest_lower_multi_index(setup):
    net, p, x = setup
    engine = ZCS(net, p, x)
    engine.derivative((2, 0))                      # omega -> omega_x, omega_y; omega_x -> omega_xx, omega_xy; a
    assert engine.grad_calls == 3 and set(engine.cached) == {(0, 0), (1, 0), (0, 1), (2, 0), (1, 1)}
    engine.derivative((3, 0))                      # from (2, 0): one z-gradient (caches (3, 0), (2, 1)), one a
    assert engine.grad_calls == 5 and {(3, 0), (2, 1)} <= set(engine.cached)
    engine.omega_derivative((2, 1))                # cached: no autograd call
    assert engine.grad_calls == 5
    engine.derivative((2, 1))                      # only the a-gradient
    assert engine.grad_calls == 6
    engine.derivative((1, 3))                      # from (1, 1): (1, 2), then (1, 3); one a
    assert engine.grad_calls == 9
    assert engine.derivative((0, 0)) is engine.u and engine.grad_calls == 9


def test_baselines_cache_all_columns_of_each_gradient(setup):
    net, p, x = setup
    loop, vect = FuncLoop(net, p, x), DataVect(net, p, x)
    for engine in (loop, vect):
        engine.derivative((1, 0))
        engine.derivative((0, 1))                           # same gradient as (1, 0): cached
    assert vect.grad_calls == 1 and loop.grad_calls == M    # one gradient per function in the loop


@pytest.mark.parametrize("name", ["funcloop", "datavect"])
def test_weight_gradients_of_a_loss_of_fields_agree_with_the_baselines(setup, name):
    net, p, x = setup
    grads = []
    for engine_name in ("zcs", name):
        model = copy.deepcopy(net)
        e = derivative_engine(engine_name, model, p, x)
        loss = (e.combination({(2, 0): 1.0, (0, 2): 1.0}) + e.derivative((1, 1)) * e.u).square().mean()
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-13)


def test_datavect_without_pairwise_vmaps_the_operator_call(setup):
    net, p, x = setup
    plain = DataVect(lambda p_, x_: net(p_, x_), p, x)     # no .pairwise attribute
    torch.testing.assert_close(plain.derivative((2, 1)), ZCS(net, p, x).derivative((2, 1)), rtol=1e-10, atol=1e-13)


def test_derivatives_of_a_polynomial_vanish_beyond_its_degree():
    x = torch.rand(5, 2, dtype=torch.float64)
    p = torch.randn(3, 1, dtype=torch.float64)

    def fn(p_, x_):                                         # u = p x^2 y
        return p_ * (x_[:, 0] ** 2 * x_[:, 1])[None, :]

    for name in ENGINES:
        e = derivative_engine(name, fn, p, x)
        torch.testing.assert_close(e.derivative((2, 1)), 2 * p.expand(3, 5))
        assert torch.count_nonzero(e.derivative((3, 0))) == 0 and torch.count_nonzero(e.derivative((0, 2))) == 0


# ---- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(ENGINES))
def test_bad_shapes_raise_value_errors_that_say_what_to_do(setup, name):
    net, p, x = setup
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        derivative_engine(name, net, p, x[:, 0])
    with pytest.raises(ValueError, match="floating point"):
        derivative_engine(name, net, p, x.long())
    with pytest.raises(ValueError, match=r"\(M, N\)|one value per pair"):
        derivative_engine(name, lambda p_, x_: net(p_, x_)[..., None], p, x).derivative((1, 0))


@pytest.mark.parametrize("alpha, match", [((1,), "exactly 2"), ((1, 0, 0), "exactly 2"), ((-1, 0), ">= 0"),
                                          ((1.0, 0), "integer"), (3, "tuple of 2")])
def test_bad_multi_indices_raise(setup, alpha, match):
    net, p, x = setup
    with pytest.raises(ValueError, match=match):
        ZCS(net, p, x).derivative(alpha)
    with pytest.raises(ValueError, match=match):
        as_multi_index(alpha, 2)


def test_unknown_engine_names_the_choices(setup):
    net, p, x = setup
    with pytest.raises(UnknownNameError, match="Did you mean 'zcs'.*datavect, funcloop, zcs"):
        derivative_engine("zsc", net, p, x)
    with pytest.raises(ValueError, match="at least one"):
        ZCS(net, p, x).combination({})


# ---- networks that mix points ----------------------------------------------------------------------------------

def mixing(net):
    """A DeepONet whose trunk features are centred over the N points: u_ij depends on every x_l."""
    def fn(p, x):
        t = net.trunk(x)
        return net.branch(p) @ (t - t.mean(0)).T
    return fn


def test_point_mixing_network_gives_zcs_the_wrong_derivative(setup):
    net, p, x = setup
    fn = mixing(net)
    zcs = ZCS(fn, p, x).derivative((1, 0)).detach()
    own = nested_autograd(lambda p_, x_: fn(p_, torch.cat([x_, x[1:]]))[:, :1], p, x[:1], (1, 0))
    # ZCS returns the response to shifting all points at once (here the centring cancels it), not du_i0/dx_0
    assert not torch.allclose(zcs[:, :1], own, rtol=1e-3)
    with pytest.raises(ValueError, match="not pointwise"):
        check_pointwise(fn, p, x, generator=torch.Generator().manual_seed(0))


def test_check_pointwise_passes_a_deeponet(setup):
    net, p, x = setup
    check_pointwise(net, p, x, generator=torch.Generator().manual_seed(0))
