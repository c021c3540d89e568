"""train: one run of one optimizer from seeded weights on a seeded batch stream, evaluated on the fixed held-out
set; stops after its iterations or training seconds, and records a run that turns NaN/inf as diverged."""
import json
import math

import pytest
import torch

from physopt.bench.methods import METHODS
from physopt.bench.train import (HELD_OUT_SEED, CurvePoint, RunResult, evaluate, held_out_set, train_run,
                                 weights_checksum)
from problems import ExpProblem, SimulationError, get_problem


def network(problem, seed=0):
    torch.manual_seed(seed)
    return problem.default_network()


def test_a_run_is_the_method_on_the_seeded_weights_and_batch_stream_evaluated_on_the_held_out_set(exp, held_out):
    result = train_run(exp, "sgd", 3, iterations=6, batch_size=8, evaluations=3, held_out=held_out)
    # the same run by hand: weights from torch.manual_seed(seed), batches from a CPU generator seeded with seed
    net = network(exp, 3)
    assert result.init_checksum == weights_checksum(net)
    step = METHODS["sgd"].build(net, exp, {"lr": 1e-2})
    data = torch.Generator().manual_seed(3)
    for _ in range(6):
        step(exp.sample(8, data))
    assert result.final == pytest.approx(evaluate(exp, net, held_out), rel=1e-6)
    assert result.status == "ok" and result.iterations == 6 and result.optimizer == "sgd" and result.seed == 3
    assert result.hyperparameters == {"batch_size": 8, "lr": 1e-2}
    assert [c.iteration for c in result.curve] == [0, 2, 4, 6]
    assert result.curve[0].train_loss is None and result.curve[-1].train_loss is not None
    assert result.wall_time_s > 0 and result.curve[-1].time_s == result.wall_time_s


def test_every_evaluation_is_handed_to_on_evaluation_and_an_exception_there_stops_the_run(exp, held_out):
    seen = []
    result = train_run(exp, "sgd", 0, iterations=6, batch_size=8, evaluations=3, held_out=held_out,
                       on_evaluation=lambda it, metrics: seen.append((it, metrics["loss"])))
    assert seen == [(c.iteration, c.loss) for c in result.curve]

    class Stop(Exception):
        pass

    def stop_at_2(it, metrics):
        if it == 2:
            raise Stop

    with pytest.raises(Stop):
        train_run(exp, "sgd", 0, iterations=6, batch_size=8, evaluations=3, held_out=held_out, on_evaluation=stop_at_2)


def test_a_time_budget_stops_the_run_after_that_many_training_seconds(exp, held_out):
    result = train_run(exp, "adam", 0, time_budget=0.2, evaluations=2, held_out=held_out)
    assert result.iterations > 0 and result.wall_time_s >= 0.2
    capped = train_run(exp, "adam", 0, iterations=3, time_budget=60.0, evaluations=1, held_out=held_out)
    assert capped.iterations == 3 and capped.wall_time_s < 60.0


class NaNExp(ExpProblem):
    def forward(self, x, batch):
        return torch.exp(x) * float("nan")


class UnsteppableExp(ExpProblem):
    def forward(self, x, batch):
        if batch is not None and x.requires_grad:         # data can be made; a training step cannot be simulated
            raise SimulationError("the state leaves the domain")
        return torch.exp(x)


@pytest.mark.parametrize("problem, status", [(NaNExp, "diverged: step 1: the loss is nan"),
                                             (UnsteppableExp, "diverged: the state leaves the domain")])
def test_a_run_that_cannot_continue_is_recorded_as_diverged(problem, status):
    p = problem()
    result = train_run(p, "adam", 0, iterations=5, evaluations=1, held_out=ExpProblem().sample(4))
    assert result.status.startswith(status) and result.iterations == 0 and len(result.curve) == 1


def test_evaluate_gives_the_mean_held_out_metrics_in_any_chunk_size_and_keeps_the_training_mode(exp, held_out):
    net = network(exp)
    reference = exp.metrics(exp.predict(net, held_out), held_out)
    assert evaluate(exp, net, held_out, chunk=5) == pytest.approx(reference, rel=1e-6)
    assert evaluate(exp, net, held_out, chunk=64) == pytest.approx(reference, rel=1e-6)
    assert net.training
    net.eval()
    evaluate(exp, net, held_out)
    assert not net.training


def test_evaluate_averages_the_component_losses_and_an_unsimulatable_prediction_scores_infinity(held_out):
    class WithParts(ExpProblem):
        def component_losses(self, y, batch):
            return {"half": 0.5 * self.loss(y, batch)}

    class Unsimulatable(ExpProblem):
        def forward(self, x, batch):
            raise SimulationError("no")

    m = evaluate(WithParts(), network(WithParts()), held_out, chunk=7)
    assert m["half"] == pytest.approx(0.5 * m["loss"], rel=1e-6)
    assert evaluate(Unsimulatable(), network(ExpProblem()), held_out) == {"loss": math.inf, "x_error": math.inf}


def test_the_held_out_set_is_the_same_seeded_sample_for_every_run(exp):
    a, b = held_out_set(exp, 10), exp.sample(10, torch.Generator().manual_seed(HELD_OUT_SEED))
    assert all(torch.equal(s, t) for s, t in zip(a, b))
    assert held_out_set(exp).batch_size == exp.benchmark.held_out_size


def test_weights_checksum_tells_initial_weights_and_buffers_apart():
    p = get_problem("poisson", resolution=8, unet_levels=2, unet_filters=2)
    a, b = network(p, 0), network(p, 0)
    assert weights_checksum(a) == weights_checksum(b) != weights_checksum(network(p, 1))
    assert len(weights_checksum(a)) == 16
    buffer = next(name for name, _ in b.named_buffers() if name.endswith("running_mean"))
    b.get_buffer(buffer).add_(1.0)
    assert weights_checksum(a) != weights_checksum(b)


def test_a_run_result_survives_json():
    result = RunResult("sip", 2, 10, 1.5, {"loss": 0.25, "x_error": None}, {"lr": 1e-3, "batch_size": 8}, "ok",
                       "0123456789abcdef", [CurvePoint(0, 0.0, 1.0, None, None), CurvePoint(10, 1.5, 0.25, None, 0.3,
                                                                                           {"le_loss": 0.1})],
                       machine="CPU, 2 torch threads")
    assert RunResult.from_json(json.loads(json.dumps(result.to_json()))) == result


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give iterations or time_budget"),
    ({"iterations": -1}, "Invalid iterations: -1; it must be an integer >= 0"),
    ({"time_budget": 0}, "Invalid time_budget: 0; it must be a finite number > 0"),
    ({"time_budget": float("inf")}, "Invalid time_budget: inf"),
    ({"iterations": 1, "batch_size": -1}, "Invalid batch_size: -1; it must be an integer >= 1"),
    ({"iterations": 1, "batch_size": 0}, "Invalid batch_size: 0"),
    ({"iterations": 1, "hyperparameters": {"lr": 0}}, "adam: Invalid lr: 0"),
])
def test_bad_run_settings_are_refused(exp, kwargs, message):
    with pytest.raises(ValueError, match=message):
        train_run(exp, "adam", 0, **kwargs)


def test_sip_needs_a_problem_with_an_inverse_update():
    with pytest.raises(ValueError, match="optimizer 'sip' needs an inverse update, which problem 'hig-toy' does not"):
        train_run(get_problem("hig-toy"), "sip", 0, iterations=1)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("optimizer, hparams", [("adam", {}), ("sip", {}), ("hig", {}),
                                               ("hig", {"lr_schedule": "cosine", "lr_min": 0.01})])
def test_a_run_interrupted_mid_way_continues_from_its_checkpoint_and_ends_bitwise_the_same(optimizer, hparams,
                                                                                          tmp_path):
    from problems import get_problem
    p = get_problem("exp")
    held_out = p.sample(16, torch.Generator().manual_seed(5))
    common = dict(iterations=8, batch_size=8, evaluations=8, held_out=held_out, hyperparameters=hparams)
    whole = train_run(p, optimizer, 1, **common)
    ckpt = tmp_path / "run.partial.pt"

    def stop_at_5(it, metrics):
        if it == 5:
            raise _Stop

    with pytest.raises(_Stop):
        train_run(p, optimizer, 1, **common, checkpoint=ckpt, checkpoint_every_s=0.0, on_evaluation=stop_at_5)
    assert torch.load(ckpt, weights_only=False)["iteration"] == 4
    resumed = train_run(p, optimizer, 1, **common, checkpoint=ckpt, checkpoint_every_s=0.0)
    assert resumed.final == whole.final
    assert [(c.iteration, c.loss, c.x_error) for c in resumed.curve] == [(c.iteration, c.loss, c.x_error)
                                                                         for c in whole.curve]
    # a checkpoint of another run (another seed) is not taken: that run starts over
    other = train_run(p, optimizer, 2, **common, checkpoint=ckpt, checkpoint_every_s=3600.0)
    assert other.curve[0].iteration == 0 and other.final == train_run(p, optimizer, 2, **common).final


def test_a_run_trains_with_its_own_thread_count_and_restores_the_callers(exp, held_out):
    """``threads`` is a setting of the run (an equal-wall-clock comparison can give each optimizer its fastest
    count): every step and evaluation runs with it, the caller's count comes back, and it never reaches the
    optimizer's constructor."""
    before = torch.get_num_threads()
    seen = []
    result = train_run(exp, "adam", 0, iterations=4, batch_size=8, evaluations=2, held_out=held_out,
                       hyperparameters={"threads": before + 1},
                       on_evaluation=lambda it, m: seen.append(torch.get_num_threads()))
    assert seen == [before + 1] * len(result.curve) and torch.get_num_threads() == before
    assert result.hyperparameters["threads"] == before + 1 and result.status == "ok"
    with pytest.raises(RuntimeError, match="boom"):      # restored when the run fails too
        train_run(exp, "adam", 0, iterations=4, held_out=held_out, hyperparameters={"threads": before + 1},
                  on_evaluation=lambda it, m: (_ for _ in ()).throw(RuntimeError("boom")))
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "two"])
def test_a_thread_count_that_is_not_a_positive_integer_is_refused(exp, threads):
    with pytest.raises(ValueError, match="Invalid threads"):
        train_run(exp, "adam", 0, iterations=1, hyperparameters={"threads": threads})
