"""SimulationError: one class, defined beside the solvers that raise it and re-exported where users catch it."""
import pytest
import torch

import problems
import problems.base
import problems.solvers
from problems.solvers.errors import SimulationError
from problems.solvers.staggered import check_cfl


def test_one_class_is_reexported_from_problems_and_problems_base():
    assert problems.SimulationError is problems.base.SimulationError is problems.solvers.SimulationError
    assert problems.SimulationError is SimulationError


def test_it_is_a_value_error_raised_for_a_state_the_solver_cannot_step_from():
    assert issubclass(SimulationError, ValueError)       # callers that catch ValueError keep working
    with pytest.raises(SimulationError, match="NaN or inf"):
        check_cfl(torch.full((1, 2, 4, 4), float("nan")), dt=0.1, dx=1.0)
