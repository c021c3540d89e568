"""The navier-stokes problem: the paper's data, loss, metric and the SIP reverse-simulation update."""
import math

import pytest
import torch

from problems import ProblemError, get_problem
from problems.solvers import staggered as S

F64 = torch.float64


@pytest.fixture(scope="module")
def problem():
    return get_problem("navier-stokes", dtype=F64)


@pytest.fixture(scope="module")
def batch(problem):
    return problem.sample(4, torch.Generator().manual_seed(0))


def test_defaults_are_the_papers_setup(problem):
    c = problem.config
    assert (c.resolution, c.dx, c.steps, c.dt) == (64, 2.0, 8, 0.25)
    assert problem.size == 128 and problem.duration == 2.0 and problem.x_shape == (2, 64, 64)
    lr = {o: problem.benchmark.hyperparameters(o, problem.config)["lr"] for o in ("adam", "sip")}
    assert lr == {"adam": 5e-3, "sip": 5e-3}
    settings = problem.benchmark
    assert settings.batch_size == 64


def test_markers_fill_the_requested_fraction_inside_their_box(problem):
    m0 = problem.sample_markers(8, torch.Generator().manual_seed(1))
    fill = m0.mean(dim=(-2, -1))
    assert ((fill > 0.045) & (fill < 0.155)).all()
    assert set(m0.unique().tolist()) == {0.0, 1.0}
    ys, xs = torch.nonzero(m0[0], as_tuple=True)
    assert (ys.max() - ys.min() + 1) * 2 <= 56 and (xs.max() - xs.min() + 1) * 2 <= 56


def test_sample_poses_consistent_problems(problem, batch):
    m0, mt = batch.inputs[:, 0], batch.inputs[:, 1]
    torch.testing.assert_close(batch.target, mt)
    assert S.divergence(batch.x_true, 2.0).abs().max() < 1e-10
    torch.testing.assert_close(problem.forward(batch.x_true, batch), mt)
    torch.testing.assert_close(mt.sum(dim=(-2, -1)), m0.sum(dim=(-2, -1)))           # mass kept
    # the uniform part carries the marker towards the domain centre
    before = (S.centre_of_mass(m0, 2.0) - 64).norm(dim=-1)
    after = (S.centre_of_mass(mt, 2.0) - 64).norm(dim=-1)
    assert (after < before).all()


def test_loss_vanishes_at_the_truth_and_weights_low_frequencies(problem, batch):
    assert problem.loss(batch.target, batch).max() < 1e-2
    w = problem.frequency_weights()
    assert w[0, 0] == 0 and w[0, 1] > w[0, 2] > w[0, 4] and w[0, 1] == pytest.approx(math.exp(-0.5 * (80 / 128) ** 2))
    x = batch.x_true + 3.0 * problem.vortex_pattern()
    assert (problem.loss(problem.forward(x, batch), batch) > 1).all()


def test_x_error_is_the_l1_norm_of_the_velocity_difference_at_cell_centres(problem, batch):
    assert problem.x_error(batch.x_true, batch).max() < 1e-9
    shift = torch.zeros_like(batch.x_true)
    shift[:, 0] = 1.0                                  # uniform v_x + 1: |dv| = 1 in each of 64^2 cells
    torch.testing.assert_close(problem.x_error(batch.x_true + shift, batch), torch.full((4,), 4096.0, dtype=F64))


def test_vortex_strength_is_a_least_squares_fit_that_ignores_uniform_motion(problem):
    phi = problem.vortex_pattern()
    v = torch.stack((1.5 * phi + 0.0, -0.7 * phi))
    v[:, 0] += 3.0
    v[:, 1] -= 2.0
    torch.testing.assert_close(problem.vortex_strength(v), torch.tensor([1.5, -0.7], dtype=F64))


def test_vortex_correction_points_towards_the_true_strength(problem, batch):
    truth = problem.vortex_strength(batch.x_true)
    for offset in (-0.5, 0.5):
        v = batch.x_true + offset * S.project(problem.vortex_pattern()[None], 2.0)
        dw = problem.vortex_correction(v, batch)
        assert (torch.sign(dw) == -math.copysign(1, offset)).all()
        assert ((dw.abs() > 0.2 * abs(offset)) & (dw.abs() < 2 * abs(offset))).all()
    assert torch.isfinite(truth).all()


def test_iterating_the_sip_update_is_an_inverse_solver(problem, batch):
    """x <- x + U(x) from x = 0: the paper's iterative inverse solver reaches its quality in about 7 iterations."""
    x = torch.zeros_like(batch.x_true)
    start = problem.x_error(x, batch).mean()
    errors = []
    for _ in range(6):
        x = x + problem.inverse_update(x, batch)
        errors.append(problem.x_error(x, batch).mean())
    assert errors[-1] < start / 30
    assert all(b < a for a, b in zip(errors, errors[1:]))


def test_the_papers_flow_stays_below_the_cfl_warning(problem, batch):
    cfl = S.check_cfl(batch.x_true, problem.config.dt, problem.config.dx)
    assert 1 < cfl < problem.config.max_cfl


def test_bad_configs_and_velocities_get_clear_errors(problem, batch):
    with pytest.raises(ValueError, match="divisible"):
        get_problem("navier-stokes", resolution=40)
    with pytest.raises(ValueError, match="dt must be"):
        get_problem("navier-stokes", dt=0.0)
    with pytest.raises(ProblemError, match="prediction has shape"):
        problem.inverse_update(torch.zeros(4, 2, 32, 32, dtype=F64), batch)
    with pytest.raises(ValueError, match="resolution=32"):
        problem.simulate(torch.zeros(4, 2, 32, 32, dtype=F64), batch.inputs[:, 0])
    fast = batch.x_true * 20
    with pytest.raises(ValueError, match="half the domain"):
        problem.forward(fast, batch)
