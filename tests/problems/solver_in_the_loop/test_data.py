"""Reference simulations projected to the source grid (problems/solver_in_the_loop/data.py)."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop import ForcedBurgers, Simulations, simulate

SMALL = ForcedBurgers(reference_resolution=32, source_resolution=8, warmup=3, frames=6)


def test_frames_follow_the_reference_solver():
    """With T = identity (reference grid = source grid) frame j+1 is P(frame j, force j) exactly."""
    sc = ForcedBurgers(reference_resolution=16, source_resolution=16, length=16.0, warmup=2, frames=5)
    sims = simulate(sc, [0, 1], dtype=torch.float64)
    assert sims.velocity.shape == sims.condition.shape == (2, 5, 2, 16, 16)
    for j in range(4):
        torch.testing.assert_close(sims.velocity[:, j + 1], sc.step(sims.velocity[:, j], sims.condition[:, j]),
                                   atol=1e-12, rtol=0)


def test_each_simulation_depends_only_on_its_seed():
    both = simulate(SMALL, [3, 5])
    alone = simulate(SMALL, [5])
    torch.testing.assert_close(both.velocity[1], alone.velocity[0], atol=1e-6, rtol=0)
    assert both.velocity.shape == (2, 6, 2, 8, 8) and both.velocity.dtype == torch.float32
    assert not torch.allclose(both.velocity[0], both.velocity[1])


def test_windows_and_their_bounds():
    sims = simulate(SMALL, [0, 1])
    v, f = sims.windows(torch.tensor([1, 0]), torch.tensor([2, 0]), steps=3)
    assert v.shape == f.shape == (2, 4, 2, 8, 8)
    torch.testing.assert_close(v[0], sims.velocity[1, 2:6])
    torch.testing.assert_close(f[1], sims.condition[0, 0:4])
    with pytest.raises(ProblemError, match="runs past the 6 stored frames"):
        sims.windows(torch.tensor([0]), torch.tensor([3]), steps=3)
    assert len(Simulations.cat([sims, sims])) == 4


def test_no_seeds_is_an_error():
    with pytest.raises(ProblemError, match="no simulation seeds"):
        simulate(SMALL, [])
