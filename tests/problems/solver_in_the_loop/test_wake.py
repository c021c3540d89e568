"""The wake-flow scenario (problems/solver_in_the_loop/wake.py): the authors' settings, T, and reference runs."""
import pytest
import torch

from problems import ProblemError
from problems.solver_in_the_loop.wake import WakeFlow, restrict_marker, restrict_velocity, simulate_wake
from problems.solvers import open_flow as of

SMALL = WakeFlow(reference_resolution=16, source_resolution=4, warmup=3, frames=4)


def test_defaults_are_the_authors_settings():
    sc = WakeFlow()
    assert (sc.grid("reference").shape, sc.grid("source").shape) == ((256, 128), (64, 32))
    assert sc.grid("source").dx == 3.125 and sc.factor == 4
    assert sc.training_re == (1.6e5, 3.2e5, 6.4e5, 1.28e6, 2.56e6, 5.12e6)
    assert sc.test_re == (2.4e5, 4.8e5, 9.6e5, 1.92e6, 3.84e6)
    # nu = alpha dx^2 / dt = 1e4 / re on both grids
    for which in ("reference", "source"):
        assert sc.alpha(1.6e5, which) * sc.grid(which).dx ** 2 == pytest.approx(1e4 / 1.6e5)
    v = sc.initial_state(1)
    assert v.shape == (1, 2, 257, 129) and int(v[0, 0].sum()) == 40
    assert torch.equal(v[0, 0, 138:148, 62:66], torch.ones(10, 4))


def test_restriction_averages_the_fine_faces_on_each_coarse_face():
    g = torch.Generator().manual_seed(0)
    v = of.pack(torch.randn(1, 8, 5, generator=g, dtype=torch.float64), torch.randn(1, 9, 4, generator=g,
                                                                                     dtype=torch.float64))
    coarse = restrict_velocity(v, 4)
    vx, vy = of.split(v)
    cx, cy = of.split(coarse)
    assert coarse.shape == (1, 2, 3, 2)
    torch.testing.assert_close(cx[0, 1, 1], vx[0, 4:8, 4].mean())
    torch.testing.assert_close(cy[0, 2, 0], vy[0, 8, 0:4].mean())
    m = torch.randn(1, 8, 4, generator=g, dtype=torch.float64)
    torch.testing.assert_close(restrict_marker(m, 4)[0, 1, 0], m[0, 4:8, 0:4].mean())


def test_reference_runs_keep_the_projected_frames_after_the_warm_up():
    sims = simulate_wake(SMALL, [1.6e5, 3.2e5])
    assert sims.velocity.shape == (2, 4, 2, 9, 5) and sims.marker.shape == (2, 4, 8, 4)
    assert torch.isfinite(sims.velocity).all() and (sims.marker >= -1e-6).all() and sims.marker.sum() > 0
    assert not torch.allclose(sims.velocity[:, 0], sims.velocity[:, -1])
    one = simulate_wake(SMALL, [3.2e5])
    torch.testing.assert_close(one.velocity[0], sims.velocity[1], atol=1e-5, rtol=0)


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ProblemError, match="power of two"):
        WakeFlow(reference_resolution=96)
    with pytest.raises(ProblemError, match="positive re"):
        simulate_wake(SMALL, [])
    with pytest.raises(ValueError, match="unknown grid"):
        SMALL.grid("fine")


def test_source_steps_errors_and_training_data_follow_the_scenario_protocol():
    sims = SMALL.simulate("train")
    assert sims.velocity.shape == (6, 4, 2, 9, 5) and sims.condition.shape == (6, 4)
    assert torch.equal(sims.condition[:, 0], torch.tensor(SMALL.training_re, dtype=torch.float32))
    nxt = SMALL.step(sims.velocity[:, 0], sims.condition[:, 0])
    assert nxt.shape == (6, 2, 9, 5) and torch.isfinite(nxt).all()
    # the error ignores the padding entries: a difference there counts nothing
    a = torch.zeros(1, 2, 9, 5)
    b = a.clone()
    b[0, 0, -1, :] = 5.0
    assert float(SMALL.mean_absolute_error(a, b)) == 0.0
    b[0, 1, 0, 0] = 1.0
    assert float(SMALL.mean_absolute_error(a, b)) == pytest.approx(1 / (8 * 5 + 9 * 4))
    from problems.solver_in_the_loop import data_statistics
    sv, sr = data_statistics(sims)
    assert sv.shape == (2,) and sr.shape == (1,) and float(sr) > 0
