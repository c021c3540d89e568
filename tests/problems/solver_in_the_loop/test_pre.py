"""Pre-computed corrections (problems/solver_in_the_loop/pre.py): the time-regularised least-squares corrector."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop import ForcedBurgers, simulate
from problems.solver_in_the_loop.pre import precompute_corrections

SMALL = ForcedBurgers(reference_resolution=32, source_resolution=8, warmup=3, frames=7)


@pytest.fixture(scope="module")
def sims():
    return simulate(SMALL, [0, 1], dtype=torch.float64)


def test_without_the_temporal_weight_the_source_is_put_back_on_the_reference(sims):
    pairs = precompute_corrections(SMALL, sims, beta=0.0)
    assert pairs.inputs.shape == pairs.conditions.shape == pairs.corrections.shape == (12, 2, 8, 8)
    expected = sims.velocity[:, 1:] - SMALL.step(sims.velocity[:, :-1].flatten(0, 1),
                                                 sims.condition[:, :-1].flatten(0, 1)).unflatten(0, (2, 6))
    torch.testing.assert_close(pairs.corrections, expected.flatten(0, 1), atol=1e-12, rtol=0)


def test_each_correction_minimises_the_regularised_objective(sims):
    """c_t minimises ||c - d_t||^2 + beta ||c - c_{t-1}||^2 with d_t = T r_{t+1} - P_s(s~_t): the gradient
    (c_t - d_t) + beta (c_t - c_{t-1}) vanishes, and s~_{t+1} = P_s(s~_t) + c_t feeds the next step."""
    beta = 1.0
    pairs = precompute_corrections(SMALL, sims, beta=beta)
    inputs, corrections = pairs.inputs.unflatten(0, (2, 6)), pairs.corrections.unflatten(0, (2, 6))
    previous = torch.zeros_like(corrections[:, 0])
    for t in range(6):
        d = sims.velocity[:, t + 1] - inputs[:, t]
        gradient = (corrections[:, t] - d) + beta * (corrections[:, t] - previous)
        assert gradient.abs().max() < 1e-12
        if t < 5:
            torch.testing.assert_close(inputs[:, t + 1], SMALL.step(inputs[:, t] + corrections[:, t],
                                                                    sims.condition[:, t + 1]), atol=1e-12, rtol=0)
        previous = corrections[:, t]


def test_a_negative_weight_is_refused(sims):
    with pytest.raises(ProblemError, match="beta must be >= 0"):
        precompute_corrections(SMALL, sims, beta=-1.0)
