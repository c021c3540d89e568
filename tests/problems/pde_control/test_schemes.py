"""Execution schemes: the OP counts of App. B, the call order of Fig. 7, every scheme ending on the target, and
trajectories that follow from simple predictors exactly."""
import pytest
import torch

from problems import ProblemError
from problems.pde_control.data import sample_scenes
from problems.pde_control.networks import ControlForceEstimator, ObservationPredictors
from problems.pde_control.schemes import CallLog, execute, op_evaluations, refined_op_count
from problems.pde_control.setup import ControlSetup


class Midpoint(ObservationPredictors):
    """An OP that predicts the average of its two observations (no weights), counting its calls per span."""

    def __init__(self, setup):
        super().__init__(setup)
        self.calls = {}

    def forward(self, span, start, end):
        self.calls[span] = self.calls.get(span, 0) + 1
        return 0.5 * (start + end)


def task(steps=32, batch=3):
    scenes = sample_scenes(batch, torch.Generator().manual_seed(0), ControlSetup(steps=steps), torch.float64)
    return scenes.initial, scenes.target


@pytest.mark.parametrize("n", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("scheme", ["staggered", "refined"])
def test_op_evaluations_follow_appendix_b(scheme, n):
    setup = ControlSetup(steps=n)
    log, predictors = CallLog(), Midpoint(setup)
    execute(scheme, predictors, *task(n), setup, log)
    assert log.op_count == op_evaluations(scheme, n) and log.step_count == n
    assert sum(predictors.calls.values()) == log.op_count           # the log records the calls actually made
    logged = {span: sum(e[1] == span for e in log.events if e[0] == "OP") for span in predictors.calls}
    assert predictors.calls == logged
    assert all(e[1] == e[3] - e[2] for e in log.events if e[0] == "OP")     # OP_n always spans n steps
    assert {n: refined_op_count(n) for n in (2, 4, 8, 16, 32)} == {2: 1, 4: 5, 8: 15, 16: 37, 32: 83}


def test_every_state_is_reached_in_order_and_each_op_reads_a_reached_state_or_a_prediction():
    setup = ControlSetup(steps=8)
    log = CallLog()
    execute("refined", Midpoint(setup), *task(8), setup, log)
    steps = [e[1] for e in log.events if e[0] == "step"]
    assert steps == list(range(8))
    lines = log.lines()
    assert lines[:4] == ["OP_8   o(4) <- [0, 8]", "OP_4   o(2) <- [0, 4]", "OP_2   o(1) <- [0, 2]",
                         "Sol    u(0) -> u(1)"]
    # after u(1) is reached, o(2) is refined from it: Algorithm 1 re-predicts o(3) = OP_2(o(2), o(4)) first
    assert lines[4:7] == ["OP_2   o(3) <- [2, 4]", "OP_2   o(2) <- [1, 3]", "Sol    u(1) -> u(2)"]


@pytest.mark.parametrize("scheme", ["staggered", "refined"])
def test_midpoint_predictors_give_the_straight_blend_from_start_to_target(scheme):
    u0, target = task()
    setup = ControlSetup()
    trajectory = execute(scheme, Midpoint(setup), u0, target, setup)
    weights = torch.linspace(0, 1, 33, dtype=torch.float64)[None, :, None]
    torch.testing.assert_close(trajectory, u0[:, None] + weights * (target - u0)[:, None])


def test_the_cfe_chain_feeds_its_own_states_back_and_ends_on_the_target():
    setup = ControlSetup(steps=4)
    u0, target = task(4)
    calls = []

    class Recorder(ControlForceEstimator):
        def forward(self, state, target, t):
            calls.append((state.clone(), t))
            return state + 1.0

    trajectory = execute("cfe-chain", Recorder(setup), u0, target, setup)
    assert [t for _, t in calls] == [0, 1, 2]
    torch.testing.assert_close(calls[2][0], u0 + 2.0)
    torch.testing.assert_close(trajectory[:, -1], target)
    torch.testing.assert_close(trajectory[:, 3], u0 + 3.0)


def test_bad_schemes_and_models_are_refused():
    setup = ControlSetup()
    u0, target = task()
    with pytest.raises(ProblemError, match="unknown execution scheme 'chain'; choose one of cfe-chain"):
        execute("chain", Midpoint(setup), u0, target, setup)
    with pytest.raises(ProblemError, match="the staggered scheme runs a ObservationPredictors"):
        execute("staggered", ControlForceEstimator(setup), u0, target, setup)
    with pytest.raises(ProblemError, match="power of two"):
        execute("staggered", Midpoint(setup), u0, target, ControlSetup(steps=12))
    with pytest.raises(ProblemError, match=r"shape \(3, 16\).*32 cells"):
        execute("refined", Midpoint(setup), u0[:, :16], target[:, :16], setup)
