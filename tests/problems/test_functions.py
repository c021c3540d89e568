"""from_functions: a problem made of plain functions behaves like a bundled one (data, physics, loss, metrics,
SIP update, network), and its bad functions are refused where they are given or first used."""
import pytest
import torch
from torch import nn

import physopt
import problems
from problems import Batch, ProblemError, from_functions


def physics(x):                                   # P(x) = (x1, 0.01 x2)
    return x * torch.tensor([1.0, 0.01], dtype=x.dtype)


def make(**kw):
    args = dict(sample=lambda n, g: torch.rand(n, 2, generator=g, dtype=torch.float64), physics=physics,
                network=lambda: nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)),
                inverse=physopt.NewtonUpdate(physics), register_name=False)
    return from_functions("fn-test", **{**args, **kw})


def test_data_is_the_physics_of_the_sampled_solutions_and_the_loss_is_half_the_squared_misfit():
    problem = make()(dtype=torch.float64)
    batch = problem.sample(5, torch.Generator().manual_seed(0))
    assert problem.x_shape == (2,) and batch.inputs.shape == (5, 2)
    torch.testing.assert_close(batch.target, physics(batch.x_true))
    x = torch.zeros(5, 2, dtype=torch.float64)
    expected = 0.5 * (physics(x) - batch.target).pow(2).sum(-1)
    torch.testing.assert_close(problem.loss(problem.forward(x, batch), batch), expected)
    torch.testing.assert_close(problem.x_error(x, batch), batch.x_true.abs().sum(-1))


def test_the_sip_update_of_a_linear_physics_is_the_exact_inverse_step():
    problem = make()(dtype=torch.float64)
    batch = problem.sample(4, torch.Generator().manual_seed(1))
    x = torch.zeros(4, 2, dtype=torch.float64)
    torch.testing.assert_close(problem.inverse_update(x, batch), batch.x_true)      # x + dx = P^-1(y*)


def test_custom_loss_and_x_error_are_used_and_a_problem_without_inverse_has_none():
    cls = make(loss=lambda y, t: (y - t).abs().sum(-1), x_error=lambda x, t: (x - t).pow(2).sum(-1), inverse=None)
    problem = cls(dtype=torch.float64)
    batch = problem.sample(3, torch.Generator().manual_seed(0))
    x = torch.zeros(3, 2, dtype=torch.float64)
    torch.testing.assert_close(problem.loss(problem.forward(x, batch), batch),
                               (physics(x) - batch.target).abs().sum(-1))
    torch.testing.assert_close(problem.x_error(x, batch), batch.x_true.pow(2).sum(-1))
    assert not cls.defines_inverse() and cls.benchmark.optimizers == ("adam", "sgd")


def test_it_is_registered_by_name_and_made_again_without_a_clash():
    try:
        first = from_functions("fn-test-registered", sample=lambda n, g: torch.rand(n, 1, generator=g),
                               physics=torch.exp, network=lambda: nn.Linear(1, 1))
        assert problems.get_problem("fn-test-registered").name == "fn-test-registered"
        again = from_functions("fn-test-registered", sample=lambda n, g: torch.rand(n, 1, generator=g),
                               physics=torch.exp, network=lambda: nn.Linear(1, 1))
        assert problems.PROBLEMS["fn-test-registered"] is again is not first
    finally:
        problems.PROBLEMS.pop("fn-test-registered", None)


def test_bad_functions_are_refused():
    with pytest.raises(TypeError, match="from_functions: physics must be a function"):
        make(physics="exp")
    with pytest.raises(ValueError, match="x_shape must be a tuple of positive integers"):
        make(x_shape=(0,))
    bad = make(sample=lambda n, g: torch.zeros(n + 1, 2))()
    with pytest.raises(ProblemError, match=r"sample\(4, generator\) must return x\* as a floating-point tensor of "
                                           r"shape \(4, \*x_shape\)"):
        bad.sample(4)


# ---- what a user's functions return is checked where it is first used (adversarial probe) ----------------------

@pytest.mark.parametrize("bad_physics, got", [
    (lambda x: physics(x)[:1], "got shape (1, 2)"),                         # drops the batch: x_error broadcast
    (lambda x: (10 * x).long(), "dtype torch.int64"),
    (lambda x: torch.exp(1j * x), "dtype torch.complex"),
    (lambda x: x.sum(), "got shape ()"),
    (lambda x: x.tolist(), "got list"),
])
def test_a_physics_output_that_is_not_a_batched_real_tensor_is_refused(bad_physics, got):
    with pytest.raises(ProblemError, match=r"the physics must return a real floating-point tensor with the batch "
                                           r"dimension first, shape \(4, ...\)") as err:
        make(physics=bad_physics, inverse=None)().sample(4, torch.Generator().manual_seed(0))
    assert got in str(err.value)


def test_a_physics_that_is_not_differentiable_is_refused_when_a_gradient_flows():
    problem = make(physics=lambda x: physics(x).detach(), inverse=None)()
    batch = problem.sample(3, torch.Generator().manual_seed(0))
    with pytest.raises(ProblemError, match=r"physics\(x\) is not differentiable"):
        problem.forward(torch.zeros(3, 2, requires_grad=True), batch)
    with torch.no_grad():
        problem.forward(torch.zeros(3, 2), batch)                          # evaluation needs no gradient


@pytest.mark.parametrize("kw, what", [
    ({"loss": lambda y, t: (y - t).pow(2).mean()}, r"loss\(\)"),            # a scalar: held-out loss / B
    ({"loss": lambda y, t: (y - t).pow(2)}, r"loss\(\)"),
    ({"x_error": lambda x, t: (x - t).abs().mean()}, r"x_error\(\)"),
])
def test_a_loss_or_x_error_that_is_not_one_value_per_example_is_refused(kw, what):
    problem = make(**kw)()
    batch = problem.sample(3, torch.Generator().manual_seed(0))
    x = torch.zeros(3, 2)
    with pytest.raises(ProblemError, match=what + r" must return one value per example, shape \(3,\)"):
        problem.metrics(x, batch)


@pytest.mark.parametrize("kw, words", [
    ({"sample": lambda n, g: torch.full((n, 2), float("nan"))}, r"returned x\* with NaN/inf entries"),
    ({"physics": lambda x: x * float("nan"), "inverse": None}, r"physics\(x\*\) of the sampled x\* contains NaN/inf"),
    ({"sample": lambda n, g: torch.rand(n, 2)}, "gave other data for the same generator state"),
    ({"sample": lambda n, g: torch.rand(n, 2, generator=g), "x_shape": (3,)},
     r"returned x\* of shape \(4, 2\), but x_shape is \(3,\)"),
])
def test_data_that_cannot_be_fitted_or_reproduced_is_refused(kw, words):
    with pytest.raises(ProblemError, match=words):
        make(**kw)().sample(4, torch.Generator().manual_seed(0))


def test_a_network_that_is_not_a_module_is_refused():
    with pytest.raises(ProblemError, match=r"network\(\) must return a torch.nn.Module"):
        make(network=lambda: (lambda x: x))().default_network()


def test_a_sample_returning_a_batch_gives_x_shape_and_detached_checked_data():
    def sample(n, g):
        x = torch.rand(n, 2, generator=g, requires_grad=True)
        return Batch(inputs=physics(x), target=physics(x), x_true=x)

    problem = make(sample=sample)()
    batch = problem.sample(3, torch.Generator().manual_seed(0))
    assert problem.x_shape == (2,) and not any(t.requires_grad for t in batch)
    bad = make(sample=lambda n, g: Batch(torch.rand(n, 2, generator=g), torch.rand(n + 1, 2, generator=g)))()
    with pytest.raises(ProblemError, match=r"x_shape=\(...\)"):
        bad.x_shape
    with pytest.raises(ProblemError, match=r"the Batch's target has shape \(4, 2\)"):
        bad.sample(3, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["a/b", "../evil", "my exp", "x:y", "-dash", ".hidden", ""])
def test_a_name_that_cannot_name_a_file_is_refused(name):
    with pytest.raises(ValueError, match="from_functions: name must be a string of letters, digits"):
        from_functions(name, sample=lambda n, g: torch.rand(n, 1, generator=g),
                       physics=torch.exp, network=lambda: nn.Linear(1, 1), register_name=False)


def test_a_name_that_differs_from_a_bundled_one_only_in_case_is_refused():
    with pytest.raises(ValueError, match=r"a different problem \(problems.toys.ExpProblem\) is already registered "
                                         r"as 'exp': give yours another name"):
        from_functions("EXP", sample=lambda n, g: torch.rand(n, 1, generator=g), physics=torch.exp,
                       network=lambda: nn.Linear(1, 1))
    assert problems.get_problem("EXP").name == "exp"
