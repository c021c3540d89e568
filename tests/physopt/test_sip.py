"""SIP: the proxy loss hands -dx to the network, the optimizer behaves like torch.optim, bad input is caught."""
import copy

import pytest
import torch
from torch import nn

import physopt
from physopt import SIP, PhysicsUpdateError, sip_loss


def test_sip_loss_gradient_is_minus_dx():
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    dx = torch.randn(4, 3, 2, dtype=torch.float64)
    sip_loss(x, dx, reduction="sum").backward()
    torch.testing.assert_close(x.grad, -dx)
    x.grad = None
    sip_loss(x, dx, reduction="mean").backward()
    torch.testing.assert_close(x.grad, -dx / 4)
    # value: 1/2 ||dx||^2 per example
    torch.testing.assert_close(sip_loss(x, dx, "sum"), 0.5 * dx.pow(2).sum())


def test_sip_loss_rejects_bad_shapes_and_reduction():
    x = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="shape"):
        sip_loss(x, torch.randn(4, 2))
    with pytest.raises(ValueError, match="Invalid reduction: 'max'; choose one of 'mean', 'sum'"):
        sip_loss(x, torch.randn(4, 3), reduction="max")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))


def test_step_equals_base_optimizer_on_the_proxy_gradient():
    """Independent reference: Adam stepped by hand on dL/dtheta = -(dx . dNN/dtheta)."""
    net_a, net_b = _net(), _net()
    inputs = torch.randn(5, 3)
    target = torch.randn(5, 2)
    inverse = lambda x, t: t - x  # noqa: E731  (points straight at the solution, Theorem 1)
    opt = SIP(net_a.parameters(), inverse=inverse, lr=1e-2, reduction="sum")
    ref = torch.optim.Adam(net_b.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        opt.step(net_a(inputs), target)
        ref.zero_grad()
        x = net_b(inputs)
        x.backward(-(target - x.detach()))
        ref.step()
    for pa, pb in zip(net_a.parameters(), net_b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_sip_with_exact_inverse_converges_to_solution():
    net = _net()
    inputs = torch.randn(16, 3)
    target = inputs[:, :2] * 3.0
    opt = SIP(net.parameters(), inverse=lambda x, t: t - x, lr=1e-2)
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = opt.step(net(inputs), target)
        first = first if first is not None else loss.item()
    assert loss.item() < 1e-2 * first


def test_hyperparameters_are_validated():
    net = _net()
    for lr in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="Invalid lr: .*; it must be a finite number > 0$"):
            SIP(net.parameters(), inverse=lambda x: x, lr=lr)
    with pytest.raises(TypeError, match="callable"):
        SIP(net.parameters(), inverse="newton")
    with pytest.raises(TypeError, match="Optimizer class"):
        SIP(net.parameters(), inverse=lambda x: x, base=torch.optim.Adam(net.parameters()))
    with pytest.raises(ValueError, match="Invalid reduction: 'median'; choose one of 'mean', 'sum'"):
        SIP(net.parameters(), inverse=lambda x: x, reduction="median")
    with pytest.raises(ValueError, match="momentum"):  # the base optimizer's own checks still run
        SIP(net.parameters(), inverse=lambda x: x, base=torch.optim.SGD, lr=0.1, momentum=-1)


def test_nan_update_raises_with_step_and_keeps_weights():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    opt = SIP(net.parameters(), inverse=lambda x: torch.full_like(x, float("nan")), lr=1e-2)
    with pytest.raises(PhysicsUpdateError, match="step 1"):
        opt.step(net(torch.randn(4, 3)))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_wrong_update_shape_and_detached_prediction():
    net = _net()
    opt = SIP(net.parameters(), inverse=lambda x: x[:, :1], lr=1e-2)
    with pytest.raises(ValueError, match="shape"):
        opt.step(net(torch.randn(4, 3)))
    with pytest.raises(ValueError, match="does not require grad"):
        opt.step(net(torch.randn(4, 3)).detach())


def test_state_dict_round_trip_reproduces_training():
    inputs, target = torch.randn(8, 3), torch.randn(8, 2)
    inverse = lambda x, t: 0.5 * (t - x)  # noqa: E731
    net = _net()
    opt = SIP(net.parameters(), inverse=inverse, lr=1e-2, betas=(0.8, 0.9))
    for _ in range(3):
        opt.zero_grad()
        opt.step(net(inputs), target)
    net2 = copy.deepcopy(net)
    opt2 = SIP(net2.parameters(), inverse=inverse, lr=1.0)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.param_groups[0]["lr"] == 1e-2 and opt2.steps == 3
    for o, n in ((opt, net), (opt2, net2)):
        o.zero_grad()
        o.step(n(inputs), target)
    for pa, pb in zip(net.parameters(), net2.parameters()):
        torch.testing.assert_close(pa, pb)
    with pytest.raises(ValueError, match="base optimizer"):
        SIP(_net().parameters(), inverse=inverse, base=torch.optim.SGD, lr=0.1).load_state_dict(opt.state_dict())


def test_lr_scheduler_drives_the_base_optimizer():
    net = _net()
    opt = SIP(net.parameters(), inverse=lambda x: -x, lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.zero_grad()
    opt.step(net(torch.randn(2, 3)))
    sched.step()
    assert opt.base.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_public_api_exports():
    for name in ("SIP", "sip_loss", "NewtonUpdate", "GaussNewtonUpdate", "PhysicsUpdateError"):
        assert hasattr(physopt, name)


@pytest.mark.parametrize("bad_lr", [float("nan"), -1e-3, 0.0])
def test_a_learning_rate_changed_after_construction_is_checked_at_the_next_step(bad_lr):
    net = _net()
    opt = SIP(net.parameters(), inverse=lambda x: -x, lr=1e-2)
    before = copy.deepcopy(net.state_dict())
    opt.param_groups[0]["lr"] = bad_lr
    opt.zero_grad()
    with pytest.raises(ValueError, match="Invalid lr"):
        opt.step(net(torch.randn(4, 3)))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_a_scheduler_that_drives_the_lr_negative_is_caught():
    net = _net()
    opt = SIP(net.parameters(), inverse=lambda x: -x, lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0 - epoch)   # 1, 0, -1, ...
    opt.zero_grad()
    opt.step(net(torch.randn(4, 3)))
    scheduler.step()
    opt.zero_grad()
    with pytest.raises(ValueError, match="Invalid lr: 0.0"):
        opt.step(net(torch.randn(4, 3)))


def test_a_finite_but_huge_update_is_undone_with_the_base_optimizers_state():
    """SGD with lr 1e10 on dx = 1e30 overflows float32 weights: the step is undone and says which step it was."""
    net = _net()
    opt = SIP(net.parameters(), inverse=lambda x: torch.full_like(x, 1e30), base=torch.optim.SGD, lr=1e10,
              momentum=0.9)
    before = copy.deepcopy(net.state_dict())
    opt.zero_grad()
    with pytest.raises(PhysicsUpdateError, match="at step 1 made weights NaN/inf.*undone"):
        opt.step(net(torch.randn(4, 3)))
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert len(opt.state) == 0 and opt.steps == 0          # no momentum buffer left from the undone step
    # the optimizer still works: a sane step afterwards equals a fresh optimizer's first step
    twin = _net()
    reference = SIP(twin.parameters(), inverse=lambda x: -x, base=torch.optim.SGD, lr=1e-2, momentum=0.9)
    inputs = torch.randn(4, 3)
    opt.inverse = lambda x: -x
    opt.param_groups[0]["lr"] = 1e-2
    for o, n in ((opt, net), (reference, twin)):
        o.zero_grad()
        o.step(n(inputs))
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
