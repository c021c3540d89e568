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
    # the problem sets Adam's rate and batch size on the oscillators (the paper's batch, a rate tuned for 600 s)
    assert resolve_hyperparameters(get_method("adam"), oscillators) == {"batch_size": 512, "lr": 1e-3}
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


# ---- optimizers from anywhere ----------------------------------------------------------------------------------

from physopt.bench.methods import (OPTIMIZER_GROUP, canonical_optimizers, check_settings,  # noqa: E402
                                   settings_by_method)


def test_any_torch_optimizer_trains_through_the_physics_by_import_path(exp):
    problem, batch = exp
    method = get_method("torch.optim.AdamW")
    assert method.name == "torch.optim.AdamW" and method.alias == "adamw" and "weight_decay" in method.settings
    net = network(problem)
    before = mean_loss(problem, net, batch)
    step = method.build(net, problem, {"lr": 1e-2})
    for _ in range(20):
        step(batch)
    assert mean_loss(problem, net, batch) < before
    assert get_method("torch.optim:AdamW").build is not None


def test_an_import_path_optimizer_matches_the_built_in_one_step_for_step(exp):
    problem, batch = exp
    nets = [network(problem), network(problem)]
    steps = [get_method(name).build(net, problem, {"lr": 1e-2}) for name, net in zip(("adam", "torch.optim.Adam"),
                                                                                      nets)]
    for _ in range(5):
        assert steps[0](batch) == steps[1](batch)
    assert all(torch.equal(a, b) for a, b in zip(nets[0].parameters(), nets[1].parameters()))


def test_lbfgs_gets_a_closure_that_re_evaluates_the_loss_on_the_batch(exp):
    problem, batch = exp
    net = network(problem)
    before = mean_loss(problem, net, batch)
    step = get_method("torch.optim.LBFGS").build(net, problem, {"lr": 0.1, "max_iter": 5})
    first = step(batch)
    assert first == pytest.approx(before, rel=1e-5)          # LBFGS returns the loss before its update
    assert mean_loss(problem, net, batch) < before


def test_an_unknown_setting_is_refused_by_name_with_the_settings_listed(exp):
    problem, _ = exp
    method = get_method("torch.optim.AdamW")
    with pytest.raises(ValueError, match="torch.optim.AdamW has no setting 'weight_decayy'. Did you mean "
                                         "'weight_decay'\\? Its settings: lr, betas"):
        check_settings(method, problem, {"lr": 1e-3, "weight_decayy": 0.1, "batch_size": 4})


@pytest.mark.parametrize("name, words", [
    ("torch.nn.Linear", "is the class Linear, not a torch.optim.Optimizer subclass"),
    ("math.pi", "is float 3.14"),
    ("physopt.SIP", "use the built-in name 'sip'"),
    ("nosuchpkg_xyz:Opt", "no module named 'nosuchpkg_xyz'"),
    ("adamm", "unknown optimizer 'adamm'. Did you mean 'adam'?"),
])
def test_what_is_not_an_optimizer_is_refused_in_one_line(name, words):
    with pytest.raises(UnknownNameError, match=words.replace("(", r"\(").replace("?", r"\?")):
        get_method(name)


def test_hparam_keys_match_a_method_by_name_or_alias_in_any_case():
    methods = [get_method("adam"), get_method("torch.optim.AdamW")]
    assert settings_by_method(methods, {"adamw": {"weight_decay": 0.1}, "ADAM": {"lr": 1.0}}) == {
        "torch.optim.AdamW": {"weight_decay": 0.1}, "adam": {"lr": 1.0}}
    with pytest.raises(ValueError, match="settings given for 'sgd', which is not among"):
        settings_by_method(methods, {"sgd": {"lr": 1.0}})


class _EntryPoint:
    def __init__(self, name, target):
        self.name, self.value, self.target = name, f"tests:{name}", target

    def load(self):
        return self.target


def test_an_installed_entry_point_names_an_optimizer(monkeypatch):
    import physopt.bench.methods as methods
    monkeypatch.setattr(methods, "installed_entry_points", lambda group: {"fancy": _EntryPoint("fancy", torch.optim.Adamax)}
                        if group == OPTIMIZER_GROUP else {})
    monkeypatch.setattr(methods, "_RESOLVED", {})
    assert get_method("fancy").description.startswith("torch.optim.adamax.Adamax through the physics")
    assert "fancy" in methods.list_methods()


def test_a_problem_without_an_inverse_runs_its_optimizers_but_sip(exp):
    assert canonical_optimizers(exp[0]) == ["adam", "sgd", "sip"]
    from problems import from_functions
    plain = from_functions("plain-test", sample=lambda n, g: torch.rand(n, 1, generator=g), physics=torch.exp,
                           network=lambda: nn.Linear(1, 1), register_name=False)
    assert canonical_optimizers(plain) == ["adam", "sgd"]


# ---- adversarial optimizers (probe) ------------------------------------------------------------------------------

def test_a_full_name_wins_over_another_optimizers_alias():
    methods = [get_method("adam"), get_method("torch.optim.Adam")]          # the alias of torch.optim.Adam is adam
    assert settings_by_method(methods, {"adam": {"lr": 0.1}, "torch.optim.adam": {"lr": 0.2}}) == {
        "adam": {"lr": 0.1}, "torch.optim.Adam": {"lr": 0.2}}


def test_an_entry_point_in_another_case_is_the_method_named_as_declared(monkeypatch):
    import physopt.bench.methods as methods
    entries = {"fancy": _EntryPoint("fancy", torch.optim.Adamax)}
    monkeypatch.setattr(methods, "installed_entry_points", lambda group: entries if group == OPTIMIZER_GROUP else {})
    monkeypatch.setattr(methods, "_RESOLVED", {})
    method = get_method("FANCY")
    assert isinstance(method, methods.Method) and method.name == "fancy"     # was the EntryPoint itself


def test_a_built_in_name_is_not_taken_over_in_the_list_by_an_entry_point(monkeypatch):
    import physopt.bench.methods as methods
    monkeypatch.setattr(methods, "installed_entry_points", lambda group: {"adam": _EntryPoint("adam", torch.optim.SGD)}
                        if group == OPTIMIZER_GROUP else {})
    listed = methods.list_methods()["adam"]
    assert listed.startswith("Adam through the physics") and "is hidden by it" in listed


def test_gauss_newton_by_import_path_names_its_built_in():
    with pytest.raises(UnknownNameError, match="use the built-in name 'gn'$"):
        get_method("physopt.GaussNewton")


class _RaisingSGD(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("boom in step")


@pytest.mark.parametrize("name, hparams, words", [
    ("torch.optim.LBFGS", {"line_search_fn": "wolfe"}, "one trial step on exp failed: RuntimeError: only "
                                                       "'strong_wolfe' is supported"),
    ("torch.optim.SparseAdam", {}, "SparseAdam does not support dense gradients"),
    (f"{__name__}:_RaisingSGD", {"lr": 0.1}, "one trial step on exp failed: RuntimeError: boom in step"),
])
def test_a_user_optimizer_that_fails_only_when_it_steps_is_refused_before_training(exp, name, hparams, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        check_settings(get_method(name), exp[0], {**hparams, "batch_size": 4})
    check_settings(get_method("torch.optim.LBFGS"), exp[0], {"line_search_fn": "strong_wolfe", "batch_size": 4})


def test_a_network_without_weights_or_a_loss_without_gradient_is_named():
    from problems import from_functions
    kw = dict(sample=lambda n, g: torch.rand(n, 1, generator=g), physics=torch.exp, register_name=False)
    empty = from_functions("no-weights", network=lambda: nn.Identity(), **kw)()
    with pytest.raises(ValueError, match=r"the default network of no-weights \(Identity\) has no trainable weights"):
        check_settings(get_method("adam"), empty, {"lr": 1e-3, "batch_size": 4})
    flat = from_functions("no-gradient", network=lambda: nn.Linear(1, 1), loss=lambda y, t: (y - t).detach()[:, 0],
                          **kw)()
    step = get_method("adam").build(flat.default_network(), flat, {"lr": 1e-3})
    with pytest.raises(ValueError, match="the loss of no-gradient does not depend on the network's weights"):
        step(flat.sample(4, torch.Generator().manual_seed(0)))


class _ClosureSGD(torch.optim.SGD):
    """Needs a closure and returns nothing from step, as many SAM-like optimizers do."""

    @torch.no_grad()
    def step(self, closure):
        with torch.enable_grad():
            closure()
        super().step()


def test_a_closure_optimizer_whose_step_returns_nothing_reports_the_loss_before_its_update(exp):
    problem, batch = exp
    net = network(problem)
    before = mean_loss(problem, net, batch)
    step = get_method(f"{__name__}:_ClosureSGD").build(net, problem, {"lr": 1e-2})
    assert step(batch) == pytest.approx(before, rel=1e-5)           # was Diverged: "the loss became NaN/inf"
    assert mean_loss(problem, net, batch) < before


def test_hig_uses_a_problems_closed_form_physics_jacobian_unless_told_otherwise():
    """quantum-dipole supplies dy/dx in closed form: the bench's HIG steps with it (engine 'supplied');
    ``hig.jacobian=expand`` still differentiates the physics by autograd."""
    problem = get_problem("quantum-dipole", steps=8)
    batch = problem.sample(2, torch.Generator().manual_seed(0))
    for hparams, engine in (({}, "supplied"), ({"jacobian": "expand"}, "expand")):
        torch.manual_seed(0)
        step = get_method("hig").build(problem.default_network(), problem, {"lr": 0.5, **hparams})
        step(batch)
        assert step.optimizer.last_stats.engine == engine
