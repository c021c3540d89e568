"""physopt.HIG / physopt.GaussNewton: the update of the HIG paper (Eq. 7), torch.optim conventions, clear errors."""
import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

import physopt
from physopt import HalfInversionError


def scaled_physics(x, target):
    """A user's own solver, written only against torch: two outputs on scales 1 and 1e-2, coupled nonlinearly."""
    return torch.stack([torch.sin(x[:, 0]) + 0.3 * x[:, 1] ** 2, 1e-2 * (x[:, 1] + 0.5 * x[:, 0] ** 3)], dim=-1)


def mse(y, target):
    return 0.5 * (y - target).pow(2).sum(-1)


def make(seed=0, b=16, dtype=torch.float64):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).to(dtype)
    inputs = torch.rand(b, 2, dtype=dtype) * 2 - 1
    target = scaled_physics(inputs, None)        # reachable: x* = inputs solves it
    return net, inputs, target


def test_one_step_is_minus_lr_times_the_half_inverse_of_the_dense_jacobian():
    net, inputs, target = make()
    names = [n for n, _ in net.named_parameters()]
    before = [p.detach().clone() for p in net.parameters()]

    def y_of(*ps):
        return scaled_physics(functional_call(net, dict(zip(names, ps)), (inputs,)), target).reshape(-1)

    J = torch.cat([j.reshape(32, -1) for j in torch.autograd.functional.jacobian(y_of, tuple(before))], 1)
    g = ((y_of(*before).view(16, 2) - target) / 16).reshape(-1)      # dL/dy of the batch-mean loss
    U, S, Vh = torch.linalg.svd(J, full_matrices=False)
    keep = S > 1e-6 * S.max()
    expected = -0.7 * Vh.T @ (torch.where(keep, S.clamp_min(1e-300) ** -0.5, 0) * (U.T @ g))

    for route in ("factored", "gram", "svd"):
        model = copy.deepcopy(net)
        opt = physopt.HIG(model, scaled_physics, mse, lr=0.7, truncation=1e-6, route=route)
        opt.step(inputs, target)
        step = torch.cat([(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before)])
        torch.testing.assert_close(step, expected, rtol=1e-6, atol=1e-9)
        assert opt.last_stats.route == route and opt.last_stats.rows == 32


def test_gauss_newton_is_hig_with_kappa_minus_one():
    net, inputs, target = make(1)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    physopt.GaussNewton(a, scaled_physics, mse, truncation=1e-6).step(inputs, target)
    physopt.HIG(b, scaled_physics, mse, truncation=1e-6, kappa=-1.0).step(inputs, target)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_hig_trains_a_network_through_a_users_own_physics():
    """Custom problem written only against the public API: HIG drives the ill-scaled loss down by 100x."""
    net, _, _ = make(2, dtype=torch.float32)
    opt = physopt.HIG(net, physics=scaled_physics, loss=mse, lr=1.0, truncation=1e-6)
    data = torch.Generator().manual_seed(0)
    test_in = torch.rand(256, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    test_target = scaled_physics(test_in, None)

    def test_loss():
        with torch.no_grad():
            return mse(scaled_physics(net(test_in), test_target), test_target).mean().item()

    start = test_loss()
    for _ in range(150):
        inputs = torch.rand(32, 2, generator=data) * 2 - 1
        opt.step(inputs, scaled_physics(inputs, None))
    assert test_loss() < start / 100


def test_state_dict_round_trip_keeps_hyperparameters():
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse, lr=0.3, truncation=1e-5)
    opt.param_groups[0]["lr"] = 0.05
    other = physopt.HIG(net, scaled_physics, mse)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == 0.05 and other.param_groups[0]["truncation"] == 1e-5
    sched = torch.optim.lr_scheduler.StepLR(other, step_size=1, gamma=0.5)
    other.step(inputs, target)
    sched.step()
    assert other.param_groups[0]["lr"] == pytest.approx(0.025)


@pytest.mark.parametrize("kwargs, match", [
    ({"lr": 0.0}, "Invalid lr: 0.0; it must be a finite number > 0"), ({"lr": float("nan")}, "Invalid lr: nan"),
    ({"truncation": 1.0}, "Invalid truncation: 1.0; it must be a finite number >= 0 and < 1"),
    ({"truncation": -1e-3}, "Invalid truncation"), ({"kappa": "a"}, "Invalid kappa: 'a'"),
    ({"route": "cholesky"}, "Invalid route: 'cholesky'; choose one of 'auto', 'factored', 'gram', 'svd'"),
    ({"memory_bound": -5}, "Invalid memory_bound: -5; it must be an integer >= 1 or None"),
    ({"chunk_size": 0}, "Invalid chunk_size"), ({"decomposition_dtype": torch.float16}, "Invalid decomposition_dtype"),
])
def test_bad_hyperparameters_are_named(kwargs, match):
    net, _, _ = make()
    with pytest.raises(ValueError, match=match):
        physopt.HIG(net, scaled_physics, mse, **kwargs)


def test_needs_the_model_not_its_parameters():
    net, _, _ = make()
    with pytest.raises(TypeError, match="nn.Module"):
        physopt.HIG(net.parameters(), scaled_physics, mse)


def test_nan_in_the_physics_leaves_the_weights_untouched():
    net, inputs, target = make()
    before = copy.deepcopy(net.state_dict())
    opt = physopt.HIG(net, lambda x, t: scaled_physics(x, t) * torch.tensor(float("nan"), dtype=x.dtype), mse)
    with pytest.raises(HalfInversionError, match="NaN"):
        opt.step(inputs, target)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_jacobian_larger_than_the_memory_bound_is_refused_with_advice():
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse, memory_bound=1000, route="gram")
    with pytest.raises(MemoryError, match="lower the batch size.*raise memory_bound"):
        opt.step(inputs, target)


def test_memory_bound_only_changes_the_chunk_size():
    net, inputs, target = make(b=32)
    a, b = copy.deepcopy(net), copy.deepcopy(net)
    free = physopt.HIG(a, scaled_physics, mse, route="gram")
    n = sum(p.numel() for p in net.parameters())
    bound = 32 * 2 * n * 8 + 8 * 4 * 64 ** 2 + 30_000
    bounded = physopt.HIG(b, scaled_physics, mse, route="gram", memory_bound=bound)
    free.step(inputs, target)
    bounded.step(inputs, target)
    assert bounded.last_stats.chunk_size < free.last_stats.chunk_size == 32
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
