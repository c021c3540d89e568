"""Control tasks: drawn as the paper's generator does, their ground truth is the forced solver run, the held-out set
is fixed and apart from the training scenes."""
import torch

from problems.pde_control.data import HELD_OUT_SEED, sample_scenes, split_scenes
from problems.pde_control.setup import ControlSetup
from problems.solvers import burgers as bu


def test_the_ground_truth_is_the_solver_run_with_the_constant_force_added_before_each_step():
    scenes = sample_scenes(5, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert scenes.trajectory.shape == (5, 33, 32) and scenes.force.shape == (5, 32)
    u = scenes.initial
    for t in range(32):
        u = bu.burgers_step(u + scenes.force)
        torch.testing.assert_close(scenes.trajectory[:, t + 1], u, rtol=0, atol=1e-12)
    torch.testing.assert_close(scenes.target, u)


def test_the_initial_states_and_forces_stay_in_the_papers_ranges():
    scenes = sample_scenes(2000, torch.Generator().manual_seed(1), dtype=torch.float64)
    u0, f = scenes.initial, scenes.force
    assert u0.max() <= 3.0 and u0.min() >= -3.0 and f.abs().max() <= 0.05
    x = torch.linspace(0, 1, 32, dtype=torch.float64)
    assert (u0[:, x < 0.1] >= -0.05).all()     # the left Gaussian is positive (the right one reaches it by < 0.05)
    assert (u0[:, x > 0.9] <= 0.05).all()
    assert u0.max(dim=1).values.mean() > 1.0 and f.abs().max(dim=1).values.mean() > 0.02


def test_the_held_out_set_is_fixed_and_apart_from_the_training_scenes():
    train_a, test_a = split_scenes(50)
    train_b, test_b = split_scenes(10)
    torch.testing.assert_close(test_a.trajectory, test_b.trajectory, rtol=0, atol=0)
    assert len(test_a) == 100 and len(train_a) == 50
    distance = torch.cdist(train_a.initial, test_a.initial)
    assert distance.min() > 1e-3
    again = sample_scenes(100, torch.Generator().manual_seed(HELD_OUT_SEED))
    torch.testing.assert_close(again.trajectory, test_a.trajectory)


def test_other_resolutions_and_lengths():
    scenes = sample_scenes(3, torch.Generator().manual_seed(0), ControlSetup(resolution=64, steps=8))
    assert scenes.trajectory.shape == (3, 9, 64) and scenes.trajectory.dtype == torch.float32
