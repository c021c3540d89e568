"""The control setup refuses what the solver or the hierarchical schemes cannot run, with the fix in the message."""
import pytest
import torch

from problems import ProblemError
from problems.pde_control.setup import ControlSetup, is_power_of_two


def test_the_defaults_are_the_papers_grid_units():
    s = ControlSetup()
    assert (s.resolution, s.steps, s.dt, s.dx, s.viscosity) == (32, 32, 1.0, 1.0, 0.1)
    assert s.spans == [2, 4, 8, 16, 32]


def test_a_dt_beyond_the_stability_limit_is_one_clear_error():
    with pytest.raises(ProblemError, match=r"dt=6 is beyond the stability limit.*use dt <= 5"):
        ControlSetup(dt=6.0)


def test_a_sequence_length_that_is_not_a_power_of_two_is_refused_by_the_hierarchical_schemes():
    s = ControlSetup(steps=24)                       # fine for the CFE chain
    with pytest.raises(ProblemError, match="power of two.*steps=24: use 16 or 32"):
        s.spans
    assert [n for n in range(1, 40) if is_power_of_two(n)] == [1, 2, 4, 8, 16, 32]


def test_a_state_of_the_wrong_resolution_is_refused():
    with pytest.raises(ProblemError, match=r"shape \(4, 30\).*32 cells.*resolution=30"):
        ControlSetup().check_state(torch.zeros(4, 30))
    with pytest.raises(ProblemError, match="floating"):
        ControlSetup().check_state(torch.zeros(4, 32, dtype=torch.long))
