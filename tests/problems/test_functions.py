"""from_functions: a problem made of plain functions behaves like a bundled one (data, physics, loss, metrics,
SIP update, network), and its bad functions are refused where they are given or first used."""
import pytest
import torch
from torch import nn

import physopt
import problems
from problems import ProblemError, from_functions


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
