"""The optimizer contract, one table over SIP, HIG and GaussNewton (the way torch tests its optimizers).

Every physopt optimizer is a ``torch.optim.Optimizer`` that
- returns the batch's loss from ``step`` as a 0-dim detached tensor,
- round-trips ``state_dict`` (a restored optimizer continues exactly as the original),
- follows a learning-rate scheduler (the scheduled lr is the one the next step uses),
- leaves the weights untouched when the physics produces NaN (and raises a FloatingPointError subclass),
- names a bad hyperparameter in a ValueError,
- supports ``zero_grad``.
"""
import copy

import pytest
import torch
from torch import nn

import physopt

A = torch.tensor([[2.0, 0.5], [0.0, 0.01]], dtype=torch.float64)      # badly scaled linear physics P(x) = A x


def physics(x, target):
    return x @ A.T


def loss(y, target):
    return 0.5 * (y - target).pow(2).sum(-1)


def inverse(x, target):
    """SIP's physics update: the exact inverse step  dx = A^-1 (y* - A x)."""
    return torch.linalg.solve(A, (target - physics(x, target)).T).T


def nan_physics(x, target):
    return physics(x, target) * torch.tensor(float("nan"), dtype=x.dtype)


def nan_inverse(x, target):
    return inverse(x, target) * float("nan")


class Case:
    """How to build and step one optimizer: ``build(net, lr, broken)`` and ``step(opt, net, inputs, target)``."""

    def __init__(self, name, build, step):
        self.name, self.build, self.step = name, build, step

    def __repr__(self):
        return self.name


def _sip_step(opt, net, inputs, target):
    opt.zero_grad()
    return opt.step(net(inputs), target)


CASES = [
    Case("SIP", lambda net, lr=1e-2, broken=False: physopt.SIP(net.parameters(), inverse=nan_inverse if broken
                                                               else inverse, lr=lr), _sip_step),
    Case("HIG", lambda net, lr=0.5, broken=False: physopt.HIG(net, nan_physics if broken else physics, loss, lr=lr),
         lambda opt, net, inputs, target: opt.step(inputs, target)),
    Case("GaussNewton", lambda net, lr=0.5, broken=False: physopt.GaussNewton(net, nan_physics if broken else physics,
                                                                             loss, lr=lr),
         lambda opt, net, inputs, target: opt.step(inputs, target)),
]


def problem(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    x_true = torch.randn(16, 2, dtype=torch.float64)
    target = physics(x_true, None)
    return net, target, target                                       # the network sees y* and predicts x


def weights(net):
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_step_returns_the_loss_as_a_detached_scalar_tensor_and_changes_the_weights(case):
    net, inputs, target = problem()
    before = weights(net)
    out = case.step(case.build(net), net, inputs, target)
    assert isinstance(out, torch.Tensor) and out.dim() == 0 and not out.requires_grad and torch.isfinite(out)
    assert any(not torch.equal(a, b) for a, b in zip(before, weights(net)))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_state_dict_round_trip_continues_exactly(case):
    net, inputs, target = problem()
    opt = case.build(net)
    for _ in range(2):
        case.step(opt, net, inputs, target)
    twin = copy.deepcopy(net)
    restored = case.build(twin, lr=123.0)                            # the state dict brings the lr back
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert restored.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for _ in range(2):
        case.step(opt, net, inputs, target)
        case.step(restored, twin, inputs, target)
    for a, b in zip(weights(net), weights(twin)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_a_scheduler_sets_the_lr_the_next_step_uses(case):
    net, inputs, target = problem()
    twin, fixed = copy.deepcopy(net), copy.deepcopy(net)
    opt, by_hand, unscheduled = case.build(net), case.build(twin), case.build(fixed)
    lr = opt.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        case.step(opt, net, inputs, target)
        case.step(by_hand, twin, inputs, target)
        case.step(unscheduled, fixed, inputs, target)
        scheduler.step()
        by_hand.param_groups[0]["lr"] /= 2
    assert opt.param_groups[0]["lr"] == pytest.approx(lr / 4)
    for o, n in ((opt, net), (by_hand, twin), (unscheduled, fixed)):
        case.step(o, n, inputs, target)
    for a, b, c in zip(weights(net), weights(twin), weights(fixed)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.allclose(a, c) for a, c in zip(weights(net), weights(fixed)))


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_nan_from_the_physics_raises_and_leaves_the_weights_untouched(case):
    net, inputs, target = problem()
    before = weights(net)
    with pytest.raises(FloatingPointError, match="NaN"):
        case.step(case.build(net, broken=True), net, inputs, target)
    for a, b in zip(before, weights(net)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES, ids=repr)
@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_learning_rate_is_named(case, lr):
    net, _, _ = problem()
    with pytest.raises(ValueError, match=r"^Invalid lr: .*; it must be a finite number > 0$"):
        case.build(net, lr=lr)


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_zero_grad_clears_every_gradient(case):
    net, inputs, target = problem()
    opt = case.build(net)
    case.step(opt, net, inputs, target)
    for p in net.parameters():
        p.grad = torch.ones_like(p)
    opt.zero_grad()
    assert all(p.grad is None for p in net.parameters())
