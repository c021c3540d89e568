"""Specification of n-TangentProp (physopt.derivatives.tangentprop): both routes equal nested autograd."""
import copy
import functools
import math

import pytest
import torch
from torch import nn

from physopt.derivatives.tangentprop import (METHODS, faa_di_bruno_coefficient, nested_autograd_derivatives,
                                             ntangentprop, partitions, tanh_derivative_polynomial,
                                             taylor_coefficients)
from problems.networks import mlp

F64 = torch.float64
# (sizes, activation, direction kind): scalar input, and d > 1 along one direction or one direction per point
NETS = [
    ([1, 8, 1], "tanh", None),
    ([1, 16, 16, 16, 1], "tanh", None),
    ([3, 12, 12, 2], "tanh", "shared"),
    ([2, 10, 10, 10, 1], "tanh", "per-point"),
    ([2, 6, 6, 1], "sigmoid", "shared"),
]
ORDER = 8


def rel_err(a, b):
    """Largest relative error over the orders: ||a_k - b_k|| / ||b_k|| (absolute where b_k = 0)."""
    pairs = [(ak.detach(), bk.detach()) for ak, bk in zip(a, b)]
    return max(float((ak - bk).norm() / (bk.norm() if bk.norm() > 0 else 1)) for ak, bk in pairs)


def make(sizes, activation="tanh", kind=None, batch=5, seed=0):
    torch.manual_seed(seed)
    net = mlp(sizes, activation).double()
    g = torch.Generator().manual_seed(seed)
    x = 2 * torch.rand(batch, sizes[0], generator=g, dtype=F64) - 1
    v = {None: None, "shared": torch.randn(sizes[0], generator=g, dtype=F64),
         "per-point": torch.randn(batch, sizes[0], generator=g, dtype=F64)}[kind]
    return net, x, v


@functools.lru_cache(maxsize=None)
def case(i):
    """Network, inputs and the nested-autograd reference up to ORDER for NETS[i] (computed once)."""
    net, x, v = make(*NETS[i])
    return net, x, v, nested_autograd_derivatives(net, x, ORDER, v).detach()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("i", range(len(NETS)), ids=[f"{'x'.join(map(str, s))}-{a}-{k}" for s, a, k in NETS])
def test_every_order_up_to_eight_matches_nested_autograd(i, method):
    net, x, v, ref = case(i)
    jets = ntangentprop(net, x, ORDER, v, method=method)
    assert jets.shape == (ORDER + 1, x.shape[0], net[-1].out_features)
    assert rel_err(jets, ref) < 1e-8


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_routes_agree_up_to_order_twelve(activation):
    net, x, v = make([2, 12, 12, 12, 1], activation, "per-point", batch=7, seed=3)
    a, b = (ntangentprop(net, x, 12, v, method=m) for m in METHODS)
    assert rel_err(a, b) < 1e-9


def test_taylor_coefficients_are_derivatives_over_factorials():
    net, x, v = make([3, 12, 12, 1], "tanh", "shared")
    scale = torch.tensor([math.factorial(k) for k in range(11)], dtype=F64)[:, None, None]
    assert rel_err(taylor_coefficients(net, x, 10, v) * scale, ntangentprop(net, x, 10, v)) < 1e-12


@pytest.mark.parametrize("method", METHODS)
def test_weight_gradient_of_a_fourth_order_loss_matches_nested_autograd(method):
    net, x, v = make([2, 10, 10, 1], "tanh", "shared")

    def grads(jets):
        loss = (jets[4] ** 2).mean() + (jets[2] * jets[0]).mean()
        return torch.autograd.grad(loss, list(net.parameters()))

    got, want = grads(ntangentprop(net, x, 4, v, method=method)), grads(nested_autograd_derivatives(net, x, 4, v))
    assert rel_err(got, want) < 1e-8


def test_order_zero_is_the_plain_forward_pass():
    net, x, v = make([3, 8, 8, 2], "tanh", "shared")
    for method in METHODS:
        out = ntangentprop(net, x, 0, v, method=method)
        assert out.shape == (1, 5, 2)
        torch.testing.assert_close(out[0], net(x), rtol=0, atol=1e-15)


def test_identity_nested_sequential_and_linear_only_networks():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(1, 6), nn.Sequential(nn.Tanh(), nn.Identity(), nn.Linear(6, 6)), nn.Sigmoid(),
                        nn.Linear(6, 1, bias=False)).double()
    x = torch.rand(4, 1, dtype=F64)
    ref = nested_autograd_derivatives(net, x, 5)
    for method in METHODS:
        assert rel_err(ntangentprop(net, x, 5, method=method), ref) < 1e-8
    linear = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1)).double()
    x2, v = torch.rand(4, 2, dtype=F64), torch.tensor([1.0, -2.0], dtype=F64)
    jets = ntangentprop(linear, x2, 3, v)
    assert torch.equal(jets[2:], torch.zeros_like(jets[2:]))
    assert rel_err(jets, nested_autograd_derivatives(linear, x2, 3, v)) < 1e-12


def test_float32_ninth_order_stays_close_to_float64():
    net, x, _ = make([1, 64, 64, 64, 1], "tanh", batch=32)
    ref = ntangentprop(net, x, 9)
    net32 = copy.deepcopy(net).float()
    for method in METHODS:
        assert rel_err(ntangentprop(net32, x.float(), 9, method=method).double(), ref) < 1e-4


def test_runs_on_every_device(device):
    net, x, v = make([3, 8, 8, 1], "tanh", "shared")
    want = ntangentprop(net, x, 6, v)
    got = ntangentprop(net.to(device), x.to(device), 6, v.to(device))
    assert rel_err(got.cpu(), want) < 1e-10


def test_partitions_coefficients_and_tanh_polynomials():
    partition_numbers = [1, 1, 2, 3, 5, 7, 11, 15, 22, 30, 42, 56, 77, 101, 135, 176]
    bell = [1, 1, 2, 5, 15, 52, 203, 877, 4140, 21147, 115975, 678570, 4213597, 27644437, 190899322, 1382958545]
    for i in range(1, 16):
        assert len(partitions(i)) == partition_numbers[i]
        assert all(sum(m * j for m, j in p) == i for p in partitions(i))
        assert sum(faa_di_bruno_coefficient(i, p) for p in partitions(i)) == bell[i]   # set partitions of i items
    assert tanh_derivative_polynomial(2) == (0, -2, 0, 2)
    t = torch.linspace(-2, 2, 7, dtype=F64, requires_grad=True)
    d = torch.tanh(t)
    for k in range(1, 9):
        d = torch.autograd.grad(d.sum(), t, create_graph=True)[0]
        y = torch.tanh(t)
        want = sum(c * y ** e for e, c in enumerate(tanh_derivative_polynomial(k)))
        torch.testing.assert_close(d, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("layer", [nn.ReLU(), nn.GELU()])
def test_unsupported_activation_names_itself_and_the_way_out(layer):
    net = nn.Sequential(nn.Linear(1, 4), layer, nn.Linear(4, 1))
    with pytest.raises(NotImplementedError, match=rf"layer 1 \({type(layer).__name__}\).*Tanh.*nested_autograd"):
        ntangentprop(net, torch.rand(3, 1), 2)


def test_bad_arguments_raise_clear_errors():
    net, x, v = make([3, 4, 1], kind="shared")
    with pytest.raises(TypeError, match="nn.Sequential"):
        ntangentprop(nn.Linear(3, 1), x, 2, v)
    with pytest.raises(ValueError, match="order n must be an int >= 0"):
        ntangentprop(net, x, -1, v)
    with pytest.raises(ValueError, match="order n must be an int >= 0"):
        ntangentprop(net, x, 2.0, v)
    with pytest.raises(ValueError, match=r"\(B, d\).*x\[:, None\]"):
        ntangentprop(net, x[:, 0], 2, v)
    with pytest.raises(ValueError, match="2 input features but the network's first Linear expects 3"):
        ntangentprop(net, x[:, :2], 2, v[:2])
    with pytest.raises(ValueError, match="pass a direction v of shape"):
        ntangentprop(net, x, 2)
    with pytest.raises(ValueError, match=r"direction must have shape \(3,\) or \(5, 3\)"):
        ntangentprop(net, x, 2, v[:2])
    with pytest.raises(ValueError, match=r"direction must have shape"):
        nested_autograd_derivatives(net, x, 2, torch.ones(4, 3))
    with pytest.raises(ValueError, match="unknown n-TangentProp method"):
        ntangentprop(net, x, 2, v, method="taylor")
