"""Inference timing of the PDE-control table: one time per row, per task, from the shared timing kernel."""
import torch

from physopt.bench.pde_control import PLANS
from physopt.timing.pde_control import time_inference
from problems.pde_control import ControlForceEstimator, ObservationPredictors, split_scenes
from problems.pde_control.setup import ControlSetup


def test_every_scheme_and_shooting_count_gets_a_time_per_task():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    models = {"cfe-chain/supervised": ("cfe-chain", ControlForceEstimator(setup)),
              "refined/diff-physics": ("refined", ObservationPredictors(setup))}
    times = time_inference(test, setup, models, PLANS["quick"])
    assert set(times) == {"cfe-chain/supervised", "refined/diff-physics", "shooting/2", "shooting/4"}
    assert all(t > 0 for t in times.values())
    assert times["shooting/4"] > times["shooting/2"]       # twice the iterations
    assert torch.is_grad_enabled()
