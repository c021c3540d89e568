"""lr_schedule: a run's learning rate follows its progress (cosine annealing from lr to lr_min over the run's
iterations or seconds); the schedule is a setting of the run, never an argument of the optimizer."""
import math

import pytest
import torch

from physopt.bench.lr_schedule import LearningRateSchedule, validate_schedule
from physopt.bench.methods import METHODS, check_settings, get_method, optimizer_arguments, resolve_hyperparameters
from physopt.bench.train import evaluate, train_run


def test_cosine_goes_from_lr_to_lr_min_through_the_midpoint_and_constant_leaves_lr_alone():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s = LearningRateSchedule(opt, "cosine", lr_min=0.01)
    for progress, expected in [(0.0, 0.1), (0.5, 0.055), (1.0, 0.01), (0.25, 0.01 + 0.09 * (1 + math.cos(
            math.pi / 4)) / 2), (-1.0, 0.1), (2.0, 0.01)]:
        s.apply(progress)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12), progress
    constant = LearningRateSchedule(opt, "constant")
    constant.apply(0.7)
    assert opt.param_groups[0]["lr"] == 0.01 and not constant.active


def test_the_starting_rates_are_read_once_so_a_restored_optimizer_state_does_not_shift_them():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s = LearningRateSchedule(opt, "cosine")
    s.apply(0.5)
    opt.load_state_dict(opt.state_dict())      # a checkpoint holds the decayed rate
    s.apply(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


def test_a_cosine_run_is_the_method_stepped_with_torchs_cosine_annealing(exp, held_out):
    """Reference: the same run by hand, its rate set by torch.optim.lr_scheduler.CosineAnnealingLR(T_max = iterations)."""
    hp = {"lr": 0.05, "lr_schedule": "cosine", "lr_min": 1e-3}
    result = train_run(exp, "adam", 3, iterations=6, batch_size=8, evaluations=3, held_out=held_out,
                       hyperparameters=hp)
    torch.manual_seed(3)
    net = exp.default_network()
    step = METHODS["adam"].build(net, exp, {"lr": 0.05})
    annealing = torch.optim.lr_scheduler.CosineAnnealingLR(step.optimizer, T_max=6, eta_min=1e-3)
    data = torch.Generator().manual_seed(3)
    for _ in range(6):
        step(exp.sample(8, data))
        annealing.step()
    assert result.final == pytest.approx(evaluate(exp, net, held_out), rel=1e-6)
    assert result.hyperparameters == {"batch_size": 8, **hp}
    constant = train_run(exp, "adam", 3, iterations=6, batch_size=8, evaluations=3, held_out=held_out,
                         hyperparameters={"lr": 0.05})
    assert constant.final["loss"] != result.final["loss"]


@pytest.mark.parametrize("optimizer", ["sgd", "sip", "hig", "gn"])
def test_every_builtin_method_takes_a_schedule_through_its_step_optimizer(exp, held_out, optimizer):
    hp = {"lr_schedule": "cosine"}
    result = train_run(exp, optimizer, 0, iterations=4, batch_size=8, evaluations=2, held_out=held_out,
                       hyperparameters=hp)
    assert result.status == "ok" and result.hyperparameters["lr_schedule"] == "cosine"
    plain = train_run(exp, optimizer, 0, iterations=4, batch_size=8, evaluations=2, held_out=held_out)
    assert plain.final["loss"] != result.final["loss"]


def test_a_time_budget_run_anneals_over_its_seconds(exp, held_out):
    result = train_run(exp, "adam", 0, time_budget=0.3, batch_size=8, evaluations=2, held_out=held_out,
                       hyperparameters={"lr_schedule": "cosine"})
    assert result.status == "ok" and result.iterations > 0


def test_the_schedule_is_a_setting_of_the_run_not_of_the_optimizer(exp):
    hp = resolve_hyperparameters(get_method("adam"), exp, {"lr_schedule": "cosine", "lr_min": 1e-5})
    assert optimizer_arguments(hp) == {"lr": hp["lr"]}
    check_settings(get_method("adam"), exp, hp)        # torch.optim.Adam is never handed lr_schedule


@pytest.mark.parametrize("hparams, message", [
    ({"lr_schedule": "linear"}, "Invalid lr_schedule: 'linear'; choose one of constant, cosine"),
    ({"lr_min": 1e-4}, "lr_min is the end of a decaying schedule: give lr_schedule=cosine with it"),
    ({"lr_schedule": "cosine", "lr_min": -1}, "Invalid lr_min: -1"),
    ({"lr_schedule": "cosine", "lr": 1e-3, "lr_min": 1e-3}, "Invalid lr_min: 0.001; it must be below lr = 0.001"),
])
def test_bad_schedules_are_refused_with_the_method_named(exp, hparams, message):
    with pytest.raises(ValueError, match=message):
        validate_schedule(hparams)
    with pytest.raises(ValueError, match=f"adam: {message}"):
        train_run(exp, "adam", 0, iterations=1, hyperparameters=hparams)


def test_an_optimizer_schedule_refuses_a_learning_rate_schedule_in_a_phase(exp):
    phases = resolve_hyperparameters(get_method("adam>sgd@2"), exp)["phases"]
    phases[0]["lr_schedule"] = "cosine"
    with pytest.raises(ValueError, match="a phase cannot have a learning-rate schedule"):
        train_run(exp, "adam>sgd@2", 0, iterations=3, hyperparameters={"phases": phases})
