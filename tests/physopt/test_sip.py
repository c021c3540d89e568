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


# ---- the torch forms of a step: step(), step(closure), sip_backward ---------------------------------------------

def _sip_setup(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    scale = torch.tensor([1.0, 0.01], dtype=torch.float64)
    inverse = lambda x, y: y / scale - x                      # noqa: E731 - exact inverse step of P(x) = x * scale
    y = torch.randn(16, 2, dtype=torch.float64) * scale
    return net, inverse, y


def test_step_after_sip_backward_and_step_with_a_closure_take_the_same_step_as_step_x():
    results = []
    for form in ("x", "backward", "closure"):
        net, inverse, y = _sip_setup()
        opt = physopt.SIP(net.parameters(), inverse=inverse, lr=1e-2)
        for _ in range(5):
            opt.zero_grad()
            if form == "x":
                opt.step(net(y), y)
            elif form == "backward":
                x = net(y)
                physopt.sip_backward(x, inverse(x.detach(), y))
                assert opt.step() is None
            else:
                def closure():
                    opt.zero_grad()
                    x = net(y)
                    return physopt.sip_backward(x, inverse(x.detach(), y))
                assert opt.step(closure=closure) > 0
        results.append(torch.nn.utils.parameters_to_vector(net.parameters()))
        assert opt.steps == 5
    torch.testing.assert_close(results[1], results[0], rtol=0, atol=0)
    torch.testing.assert_close(results[2], results[0], rtol=0, atol=0)


def test_every_form_undoes_a_step_that_leaves_nan_weights():
    net, inverse, y = _sip_setup()
    opt = physopt.SIP(net.parameters(), inverse=inverse, lr=1e-2)
    before = torch.nn.utils.parameters_to_vector(net.parameters()).clone()
    x = net(y)
    physopt.sip_loss(x, torch.full_like(x, float("nan"))).backward()
    with pytest.raises(physopt.PhysicsUpdateError, match="proxy gradient contains NaN/inf at step 1"):
        opt.step()
    torch.testing.assert_close(torch.nn.utils.parameters_to_vector(net.parameters()), before)
    with pytest.raises(physopt.PhysicsUpdateError, match="contains 32 NaN/inf value"):
        physopt.sip_backward(net(y), torch.full((16, 2), float("inf"), dtype=torch.float64))
    with pytest.raises(TypeError, match="take no further arguments"):
        opt.step(lambda: None, y)


def test_a_step_checks_everything_with_one_device_sync(monkeypatch):
    net, inverse, y = _sip_setup()
    opt = physopt.SIP(net.parameters(), inverse=inverse, base=torch.optim.SGD, lr=1e-2)
    calls = []
    original = torch.Tensor.__bool__
    monkeypatch.setattr(torch.Tensor, "__bool__", lambda self: calls.append(1) or original(self))
    opt.zero_grad()
    opt.step(net(y), y)
    assert len(calls) == 1


def test_a_nan_prediction_that_breaks_the_inverse_is_named():
    net, _, y = _sip_setup()
    def inverse(x, y):
        if not torch.isfinite(x).all():
            raise RuntimeError("linalg.eigh: the algorithm failed to converge")
        return y - x
    opt = physopt.SIP(net.parameters(), inverse=inverse, lr=1e-2)
    with torch.no_grad():
        net[0].weight.fill_(float("nan"))
    with pytest.raises(physopt.PhysicsUpdateError, match="prediction contains NaN/inf at step 1, and the inverse"):
        opt.step(net(y), y)


def test_sip_trains_inside_a_lightning_trainer_as_in_a_plain_loop():
    """PyTorch Lightning's automatic optimization calls ``optimizer.step(closure=...)``; the SIP gradient comes from
    the training step's proxy loss. 20 steps on the poisson network in float64 match the plain loop's weights."""
    L = pytest.importorskip("lightning", reason="lightning is part of the test extra: pip install -e '.[test]'")
    from problems import get_problem
    problem = get_problem("poisson", dtype=torch.float64, resolution=16)
    batches = [problem.sample(2, torch.Generator().manual_seed(i)) for i in range(20)]
    torch.manual_seed(0)
    plain_net = problem.default_network()
    lightning_net = copy.deepcopy(plain_net)
    initial = torch.nn.utils.parameters_to_vector(plain_net.parameters()).detach().clone()

    opt = SIP(plain_net.parameters(), inverse=problem.inverse_update, lr=1e-3)
    for batch in batches:
        opt.zero_grad()
        opt.step(problem.predict(plain_net, batch), batch)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = lightning_net

        def training_step(self, batch, index):
            x = problem.predict(self.net, batch)
            return sip_loss(x, problem.inverse_update(x.detach(), batch))

        def configure_optimizers(self):
            return SIP(self.net.parameters(), inverse=problem.inverse_update, lr=1e-3)

    loader = torch.utils.data.DataLoader(batches, batch_size=None, collate_fn=lambda b: b)
    trainer = L.Trainer(max_steps=20, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(Module(), loader)
    a = torch.nn.utils.parameters_to_vector(plain_net.parameters()).detach()
    b = torch.nn.utils.parameters_to_vector(lightning_net.parameters()).detach()
    assert trainer.global_step == 20 and b.dtype == torch.float64
    assert float((a - b).norm() / a.norm()) < 1e-6
    assert float((a - initial).norm() / initial.norm()) > 1e-4              # the 20 steps did train
