"""Inference timing of the PDE-control table: one time per row, per task, from the shared timing kernel."""
import pytest
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


def test_the_models_are_timed_on_the_requested_device_without_moving_the_originals(monkeypatch):
    """The timing copies the models to its device; the caller's models stay where they are."""
    from physopt.timing import pde_control as timing
    seen = []
    monkeypatch.setattr(timing, "time_call", lambda fn, device, min_runs: (seen.append(torch.device(device)), fn(),
                                                                          _Timing())[2])
    setup = ControlSetup()
    _, test = split_scenes(0, 2, setup)
    cfe = ControlForceEstimator(setup)
    times = time_inference(test, setup, {"cfe-chain/supervised": ("cfe-chain", cfe)}, PLANS["quick"], device="cpu")
    assert seen and all(d == torch.device("cpu") for d in seen) and set(times) >= {"cfe-chain/supervised"}
    assert next(cfe.parameters()).device == torch.device("cpu")


class _Timing:
    median_s = 1e-3


@pytest.mark.gpu
def test_inference_is_timed_on_cuda():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    times = time_inference(test, setup, {"cfe-chain/supervised": ("cfe-chain", ControlForceEstimator(setup))},
                           PLANS["quick"], device="cuda")
    assert all(t > 0 for t in times.values())
