"""physopt.HIG / physopt.GaussNewton: the update of the HIG paper (Eq. 7), torch.optim conventions, clear errors."""
import copy
import math
import warnings

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


@pytest.mark.parametrize("route", ["factored", "gram", "svd"])
def test_a_step_can_run_without_any_host_sync(route, host_reads):
    """stats off, no guard, non-finite steps skipped on the device: not one read of a tensor value on the host
    (a CUDA sync each); the default step reads (its checks and guard), so the spy does see them."""
    net, inputs, target = make()
    quiet = physopt.HIG(net, scaled_physics, mse, route=route, max_loss_increase=None, on_nonfinite="skip")
    with host_reads() as spy:
        loss = quiet.step(inputs, target)
    assert spy.reads == []
    assert loss.shape == () and quiet.last_stats.kept is None and quiet.last_stats.condition is None
    assert bool(quiet.last_stats.ok) and int(quiet.skipped_steps) == 0
    default = physopt.HIG(copy.deepcopy(net), scaled_physics, mse, route=route)
    with host_reads() as spy:
        default.step(inputs, target)
    assert spy.reads


def test_skip_mode_leaves_a_nan_step_undone_and_counts_it():
    net, inputs, target = make()
    before = copy.deepcopy(net.state_dict())
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    opt = physopt.HIG(net, lambda x, t: scaled_physics(x, t) * t[:, :1].ne(99).to(x.dtype), mse,
                      on_nonfinite="skip", max_loss_increase=None)
    poisoned = target.clone()
    poisoned[3, 0] = nan                                     # the loss of one example is NaN
    opt.step(inputs, poisoned)
    assert not bool(opt.last_stats.ok) and int(opt.skipped_steps) == 1
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k])
    opt.step(inputs, target)                                 # a good batch trains again
    assert bool(opt.last_stats.ok) and int(opt.skipped_steps) == 1
    assert any(not torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_stats_are_counted_only_when_asked():
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse, stats=True)
    opt.step(inputs, target)
    s = opt.last_stats
    assert isinstance(s.kept, int) and 0 < s.kept <= 32 and s.condition >= 1 and isinstance(s.loss, float)
    assert s.ok is True
    quiet = physopt.HIG(copy.deepcopy(net), scaled_physics, mse)
    quiet.step(inputs, target)
    assert quiet.last_stats.kept is None and isinstance(quiet.last_stats.loss, torch.Tensor)


def test_a_zero_jacobian_is_named_in_raise_mode():
    net, inputs, target = make()
    with pytest.raises(physopt.JacobianError, match="does not depend"):
        physopt.HIG(net, lambda x, t: 0 * x + t, mse).step(inputs, target)


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


@pytest.mark.parametrize("route", ["auto", "factored", "gram", "svd"])
def test_a_float32_network_with_float64_physics_works_on_every_route(route):
    """Mixed precision between network and physics: every route gives the dense SVD route's update."""
    net32, inputs, target = make(dtype=torch.float32)
    ref = copy.deepcopy(net32)

    def physics64(x, t):
        return scaled_physics(x.double(), t)

    target = target.double()
    opt = physopt.HIG(net32, physics64, mse, route=route)
    physopt.HIG(ref, physics64, mse, route="svd").step(inputs, target)
    opt.step(inputs, target)
    assert opt.last_stats.route == ("factored" if route == "auto" else route)
    for p, q in zip(net32.parameters(), ref.parameters()):
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key, value", [("truncation", 1.0), ("truncation", 2.0), ("kappa", float("nan")),
                                        ("beta", float("inf")), ("lr", -1.0)])
def test_hyperparameters_changed_in_param_groups_are_checked_at_every_step(key, value):
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse)
    before = copy.deepcopy(net.state_dict())
    opt.param_groups[0][key] = value
    with pytest.raises(ValueError, match=f"Invalid {key}"):
        opt.step(inputs, target)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def exp_physics(x, target):
    return torch.exp(x)


def far_target_problem():
    """Gauss-Newton on y = e^x towards y* = 1000 from x ~ 0: the full step jumps to x ~ 1000 and e^x overflows."""
    torch.manual_seed(0)
    net = nn.Linear(2, 1).double()
    inputs = torch.randn(4, 2, dtype=torch.float64)
    return net, inputs, torch.full((4, 1), 1000.0, dtype=torch.float64)


def test_a_step_that_blows_up_the_loss_is_shrunk_said_and_recorded():
    net, inputs, target = far_target_problem()
    unguarded = copy.deepcopy(net)
    physopt.GaussNewton(unguarded, exp_physics, mse, truncation=0.0, max_loss_increase=None).step(inputs, target)
    assert not torch.isfinite(mse(exp_physics(unguarded(inputs), target), target)).all()   # what the guard prevents
    opt = physopt.GaussNewton(net, exp_physics, mse, truncation=0.0)
    with pytest.warns(RuntimeWarning, match="applied with lr scaled by"):
        before = opt.step(inputs, target).item()
    stats = opt.last_stats
    assert stats.lr_scale < 1 and math.isfinite(stats.loss_after) and stats.loss_after <= 1e3 * before
    assert stats.loss_after == pytest.approx(mse(exp_physics(net(inputs), target), target).mean().item())


def test_a_step_no_shrinking_can_save_is_undone_and_raises(monkeypatch):
    net, inputs, target = far_target_problem()
    opt = physopt.GaussNewton(net, exp_physics, mse, truncation=0.0)
    monkeypatch.setattr(opt, "_batch_loss", lambda inputs, args: float("inf"))
    before = copy.deepcopy(net.state_dict())
    with pytest.raises(HalfInversionError, match="step was undone"):
        opt.step(inputs, target)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_a_normal_step_is_not_touched_by_the_guard():
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse)
    loss_before = opt.step(inputs, target).item()
    assert opt.last_stats.lr_scale == 1.0 and opt.last_stats.loss_after < loss_before


def test_a_second_parameter_group_is_refused_when_it_is_added():
    net, inputs, target = make()
    opt = physopt.HIG(net, scaled_physics, mse)
    with pytest.raises(ValueError, match="takes exactly one parameter group"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))]})
    assert len(opt.param_groups) == 1


def test_the_parts_are_timed_only_when_asked_and_profiling_changes_no_update():
    results = []
    for profile in (False, True):
        net, inputs, target = make()
        opt = physopt.HIG(net, scaled_physics, mse, profile=profile)
        opt.step(inputs, target)
        s = opt.last_stats
        timed = (s.jacobian_s, s.decomposition_s, s.apply_s)
        assert all(t is None for t in timed) if not profile else all(t >= 0 for t in timed)
        results.append(torch.nn.utils.parameters_to_vector(net.parameters()))
    torch.testing.assert_close(results[0], results[1], rtol=0, atol=0)


def test_one_examples_output_is_probed_once_per_input_layout_and_again_if_it_changes():
    net, inputs, target = make()
    calls = []

    def physics(x, t):
        calls.append(x.shape[0])
        return scaled_physics(x, t)[:, :t.shape[1]]       # the output has as many values as the target

    opt = physopt.HIG(net, physics, mse)
    opt.step(inputs, target)
    opt.step(inputs, target)
    assert calls.count(1) == 1                            # the second step reuses the first one's probe
    calls.clear()
    opt.step(inputs, target[:, :1])                       # now one value per example: probed again, still right
    assert calls.count(1) == 1
    reference = physopt.HIG(copy.deepcopy(net), physics, mse)
    torch.testing.assert_close(opt.step(inputs, target[:, :1]), reference.step(inputs, target[:, :1]))


@pytest.mark.parametrize("jacobian", ["expand", "vmap"])
def test_compile_physics_takes_the_same_step_as_the_eager_physics(jacobian):
    """torch.compile of the physics (through AOTAutograd, the compiler's front end; inductor itself is tested in
    tests/physopt/test_compiled.py) under each Jacobian engine: the same update to 1e-10 in float64."""
    steps = []
    for compile_physics in (False, {"backend": "aot_eager"}):
        net, inputs, target = make(seed=3)
        opt = physopt.HIG(net, physics=scaled_physics, loss=mse, jacobian=jacobian, compile_physics=compile_physics)
        before = [p.detach().clone() for p in net.parameters()]
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)       # no fallback to eager: the compiled physics ran
            opt.step(inputs, target)
        assert not compile_physics or opt.physics.fallback is None
        steps.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(net.parameters(), before)]))
    assert ((steps[1] - steps[0]).norm() / steps[0].norm()).item() < 1e-10


def test_compile_physics_must_be_a_flag_or_torch_compile_options():
    net, _, _ = make()
    with pytest.raises(TypeError, match="compile_physics must be True, False or a dict"):
        physopt.HIG(net, physics=scaled_physics, loss=mse, compile_physics="yes")


def test_a_supplied_physics_jacobian_takes_the_same_step_and_is_checked_when_built():
    """physics_jacobian=(y, dy/dx) by hand: the step of the autograd engine to 1e-10 in float64 on the SVD route (the
    Gram-based routes square the condition number, and with it the rounding), recorded as engine 'supplied'; a
    non-callable, or jacobian='supplied' without one, is refused at construction."""
    def physics_jacobian(x, t):
        J = torch.stack([torch.stack([torch.cos(x[:, 0]), 0.6 * x[:, 1]], -1),
                         torch.stack([1.5e-2 * x[:, 0] ** 2, torch.full_like(x[:, 0], 1e-2)], -1)], 1)
        return scaled_physics(x, t), J

    steps = []
    for supplied in (None, physics_jacobian):
        net, inputs, target = make(seed=3)
        opt = physopt.HIG(net, physics=scaled_physics, loss=mse, physics_jacobian=supplied, route="svd")
        before = [p.detach().clone() for p in net.parameters()]
        opt.step(inputs, target)
        assert opt.last_stats.engine == ("supplied" if supplied else "expand")
        steps.append(torch.cat([(p.detach() - b).flatten() for p, b in zip(net.parameters(), before)]))
    assert ((steps[1] - steps[0]).norm() / steps[0].norm()).item() < 1e-10
    with pytest.raises(TypeError, match="physics_jacobian must be a callable"):
        physopt.HIG(net, physics=scaled_physics, loss=mse, physics_jacobian=3)
    with pytest.raises(ValueError, match="jacobian='supplied' needs"):
        physopt.HIG(net, physics=scaled_physics, loss=mse, jacobian="supplied")
