"""Inference timing of the PDE-control table: one time per row, per task, from the shared timing kernel; and the
operations each row's call dispatches."""
import dataclasses

import pytest
import torch

from physopt.bench.pde_control import PLANS
from physopt.timing.kernel import count_ops
from physopt.timing.pde_control import count_inference_ops, cuda_graph, graphed_shooting, time_inference
from problems.pde_control import ControlForceEstimator, ObservationPredictors, split_scenes
from problems.pde_control.schemes import execute, op_evaluations, refined_op_count
from problems.pde_control.setup import ControlSetup
from problems.pde_control.training import shoot


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


def test_every_row_gets_the_operation_count_of_its_call_for_the_whole_batch():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    model = ObservationPredictors(setup)
    plan = dataclasses.replace(PLANS["quick"], shooting_iterations=(1, 2, 3))
    counts = count_inference_ops(test, setup, {"staggered/supervised": ("staggered", model),
                                               "refined/diff-physics": ("refined", model)}, plan)
    assert set(counts) == {"staggered/supervised", "refined/diff-physics", "shooting/1", "shooting/2", "shooting/3"}
    with torch.no_grad():
        staggered = count_ops(lambda: execute("staggered", model, test.initial, test.target, setup))[1]
    assert counts["staggered/supervised"] == staggered
    with torch.no_grad():
        op_call = count_ops(lambda: model(32, test.initial, test.target))[1]
    extra = refined_op_count(32) - op_evaluations("staggered", 32)     # 83 OP evaluations against 31
    assert counts["refined/diff-physics"] - counts["staggered/supervised"] == extra * op_call
    per_iteration = counts["shooting/2"] - counts["shooting/1"]
    assert per_iteration > 0 and counts["shooting/3"] - counts["shooting/2"] == per_iteration
    assert torch.is_grad_enabled()


def test_schemes_are_timed_without_autograd_and_shooting_with_it(monkeypatch):
    from physopt.timing import pde_control as timing
    grad = []
    monkeypatch.setattr(timing, "time_call", lambda fn, device, min_runs: (grad.append(torch.is_grad_enabled()),
                                                                          _Timing())[1])
    setup = ControlSetup()
    _, test = split_scenes(0, 2, setup)
    time_inference(test, setup, {"staggered/supervised": ("staggered", ObservationPredictors(setup))},
                   PLANS["quick"])
    assert grad == [False, True, True]                  # the scheme, then shooting for 2 and 4 iterations


class _Timing:
    median_s = 1e-3


@pytest.mark.gpu
def test_inference_is_timed_on_cuda():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    times = time_inference(test, setup, {"cfe-chain/supervised": ("cfe-chain", ControlForceEstimator(setup))},
                           PLANS["quick"], device="cuda")
    assert all(t > 0 for t in times.values())


def test_cuda_graphs_on_a_device_without_them_are_a_clear_error():
    setup = ControlSetup()
    _, test = split_scenes(0, 2, setup)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA timing device, got 'cpu'"):
        time_inference(test, setup, {}, PLANS["quick"], device="cpu", graphs=True)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA timing device"):
        cuda_graph(lambda: None, "cpu")
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA timing device"):
        graphed_shooting(test.initial, test.target, setup, 2)


@pytest.mark.gpu
def test_a_scheme_replayed_from_its_cuda_graph_gives_the_eager_trajectory():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    initial, target = test.initial.cuda(), test.target.cuda()
    model = ObservationPredictors(setup).cuda()
    with torch.no_grad():
        eager = execute("refined", model, initial, target, setup)
        replay = cuda_graph(lambda: execute("refined", model, initial, target, setup), "cuda")
        torch.testing.assert_close(replay(), eager)
        torch.testing.assert_close(replay(), eager)          # a second replay: the same numbers again


@pytest.mark.gpu
def test_graphed_shooting_restarts_from_zero_and_matches_eager_shooting():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    initial, target = test.initial.cuda(), test.target.cuda()
    eager = shoot(initial, target, setup, 5)
    run = graphed_shooting(initial, target, setup, 5)
    first = run().clone()
    torch.testing.assert_close(first, eager, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(run(), first)                 # forces and Adam's state zeroed per call


@pytest.mark.gpu
def test_inference_is_timed_from_cuda_graphs():
    setup = ControlSetup()
    _, test = split_scenes(0, 4, setup)
    times = time_inference(test, setup, {"staggered/supervised": ("staggered", ObservationPredictors(setup))},
                           PLANS["quick"], device="cuda", graphs=True)
    assert set(times) == {"staggered/supervised", "shooting/2", "shooting/4"} and all(t > 0 for t in times.values())
