"""The forced Burgers scenario settings (problems/solver_in_the_loop/setup.py)."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop import ForcedBurgers
from problems.solvers import forced_burgers as fb


def test_defaults_are_the_authors_burgers_settings():
    sc = ForcedBurgers()
    assert (sc.reference_resolution, sc.source_resolution, sc.factor) == (128, 32, 4)
    assert (sc.dx("reference"), sc.dx("source")) == (0.25, 1.0)
    assert (sc.dt, sc.viscosity, sc.n_waves, sc.warmup, sc.frames) == (0.1, 0.1, 20, 30, 200)
    assert sc.training_seeds == tuple(range(10)) and sc.test_seeds == (100, 101, 102, 103, 104)


def test_steps_and_projection_use_each_grids_spacing():
    sc = ForcedBurgers(reference_resolution=16, source_resolution=8, length=8.0)
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(2, 2, 16, 16, generator=g), torch.randn(2, 2, 16, 16, generator=g)
    torch.testing.assert_close(sc.step(r, f, "reference"), fb.burgers_step(r, 0.1, 0.5, 0.1, f))
    s = sc.project(r)
    torch.testing.assert_close(s, fb.restrict(r, 2))
    torch.testing.assert_close(sc.step(s, sc.project(f)), fb.burgers_step(s, 0.1, 1.0, 0.1, fb.restrict(f, 2)))


def test_a_state_of_the_wrong_resolution_names_the_grid():
    sc = ForcedBurgers()
    with pytest.raises(ProblemError, match="source state is not a 32 x 32"):
        sc.step(torch.zeros(1, 2, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(ProblemError, match="reference state is not a 128 x 128"):
        sc.project(torch.zeros(1, 2, 32, 32))
    with pytest.raises(ValueError, match="unknown grid"):
        sc.dx("fine")


@pytest.mark.parametrize("kwargs,match", [({"reference_resolution": 96}, "power of two"),
                                          ({"source_resolution": 0}, "source_resolution"),
                                          ({"dt": 0.0}, "dt"), ({"warmup": -1}, "warmup")])
def test_inconsistent_settings_are_rejected(kwargs, match):
    with pytest.raises(ProblemError, match=match):
        ForcedBurgers(**kwargs)
