"""methods: the optimizers the bench compares, each a ``step(batch) -> loss`` built from (network, problem,
hyperparameters); hyperparameters resolved as method fallbacks < the paper's values < overrides, and checked."""
import copy

import pytest
import torch
from torch import nn

from physopt.bench.methods import (METHODS, Diverged, get_method, optimizer_arguments, resolve_hyperparameters,
                                   validate_hyperparameters)
from physopt.names import UnknownNameError
from problems import get_problem


@pytest.fixture(scope="module")
def exp():
    problem = get_problem("exp")
    return problem, problem.sample(8, torch.Generator().manual_seed(0))


def network(problem, seed=0):
    torch.manual_seed(seed)
    return problem.default_network()


def mean_loss(problem, net, batch):
    with torch.no_grad():
        return problem.loss(problem.forward(problem.predict(net, batch), batch), batch).mean().item()


def weights(net):
    return [p.detach().clone() for p in net.parameters()]


@pytest.mark.parametrize("name", list(METHODS))
def test_every_step_returns_the_mean_batch_loss_before_its_update_and_moves_the_weights(name, exp):
    problem, batch = exp
    net = network(problem)
    before, w0 = mean_loss(problem, net, batch), weights(net)
    step = METHODS[name].build(net, problem, dict(METHODS[name].defaults))
    assert step(batch) == pytest.approx(before, rel=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(w0, net.parameters()))


@pytest.mark.parametrize("name, optimizer", [("adam", torch.optim.Adam), ("sgd", torch.optim.SGD),
                                             ("adagrad", torch.optim.Adagrad), ("adadelta", torch.optim.Adadelta),
                                             ("rmsprop", torch.optim.RMSprop)])
def test_classic_methods_are_the_torch_optimizer_on_the_loss_through_the_physics(name, optimizer, exp):
    problem, batch = exp
    net = network(problem)
    reference = copy.deepcopy(net)
    step = METHODS[name].build(net, problem, {"lr": 1e-2})
    opt = optimizer(reference.parameters(), lr=1e-2)
    for _ in range(2):
        step(batch)
        opt.zero_grad()
        (0.5 * (torch.exp(reference(batch.inputs)) - batch.target).square().sum(-1)).mean().backward()
        opt.step()
    for a, b in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b)


class NaNOutput(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x) * float("nan")


class _NaNGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class NaNGradient(NaNOutput):
    def forward(self, x):
        return _NaNGradient.apply(self.net(x))


@pytest.mark.parametrize("name, wrapper, message", [
    ("adam", NaNOutput, "step 1: the loss is nan; the weights were not changed"),
    ("adam", NaNGradient, "step 1: the gradient contains NaN/inf; the weights were not changed"),
    ("sip", NaNOutput, "NaN/inf at step 1; the weights were not changed"),
    ("hig", NaNOutput, "step 1: the loss is nan"),
    ("gn", NaNOutput, "step 1: the loss is nan"),
])
def test_a_step_that_turns_nan_raises_diverged_and_leaves_the_weights(name, wrapper, message, exp):
    problem, batch = exp
    net = wrapper(network(problem))
    w0 = weights(net)
    step = METHODS[name].build(net, problem, dict(METHODS[name].defaults))
    with pytest.raises(Diverged, match=message):
        step(batch)
    assert all(torch.equal(a, b) for a, b in zip(w0, net.parameters()))


def test_sip_takes_its_base_optimizer_by_name(exp):
    problem, batch = exp
    assert METHODS["sip"].build(network(problem), problem, {"lr": 1e-3, "base": " SGD "})(batch) > 0
    with pytest.raises(UnknownNameError, match="unknown SIP base optimizer 'adamm'. Did you mean 'adam'?"):
        METHODS["sip"].build(network(problem), problem, {"lr": 1e-3, "base": "adamm"})


def test_only_sip_needs_the_problems_inverse_update():
    assert [name for name, m in METHODS.items() if m.needs_inverse] == ["sip"]


def test_get_method_by_name_suggests_the_closest():
    assert get_method(" SIP ") is METHODS["sip"] and get_method("hig").name == "hig"
    with pytest.raises(UnknownNameError, match="unknown optimizer 'adamw'. Did you mean 'adam'?"):
        get_method("adamw")


def test_hyperparameters_are_fallbacks_then_the_papers_values_then_overrides():
    oscillators, exp = get_problem("oscillators"), get_problem("exp")
    # the paper (HIG, Table 2) sets Adam's rate and batch size on the oscillators
    assert resolve_hyperparameters(get_method("adam"), oscillators) == {"batch_size": 512, "lr": 3e-4}
    assert resolve_hyperparameters(get_method("adam"), oscillators, {"lr": 2e-3}) == {"batch_size": 512, "lr": 2e-3}
    # no paper value: the method's fallback and the problem's batch size
    assert resolve_hyperparameters(get_method("adagrad"), exp) == {"batch_size": 100, "lr": 1e-2}
    assert resolve_hyperparameters(get_method("hig"), exp, {"batch_size": 4}) == {
        "batch_size": 4, "lr": 1.0, "truncation": 1e-6}
    with pytest.raises(ValueError, match="adam: Invalid lr: 0"):
        resolve_hyperparameters(get_method("adam"), exp, {"lr": 0})


@pytest.mark.parametrize("hparams, message", [
    ({"lr": -1}, "sgd: Invalid lr: -1; it must be a finite number > 0"),
    ({"lr": float("nan")}, "sgd: Invalid lr: nan"),
    ({"lr": "fast"}, "sgd: Invalid lr: 'fast'"),
    ({"batch_size": 0}, "sgd: Invalid batch_size: 0; it must be an integer >= 1"),
    ({"batch_size": 2.5}, "sgd: Invalid batch_size: 2.5"),
])
def test_bad_learning_rates_and_batch_sizes_are_refused_naming_the_method(hparams, message):
    with pytest.raises(ValueError, match=message):
        validate_hyperparameters("sgd", hparams)


def test_the_batch_size_is_a_setting_of_the_run_not_of_the_optimizer():
    validate_hyperparameters("sgd", {"momentum": 0.9})                # what the check does not cover passes
    assert optimizer_arguments({"batch_size": 8, "lr": 0.1, "momentum": 0.9}) == {"lr": 0.1, "momentum": 0.9}
