"""physopt.bench.schedule: a run that switches optimizer after N iterations or S seconds (``adam>hig@30s``)."""
import json

import pytest
import torch

from physopt.bench.methods import get_method, resolve_hyperparameters
from physopt.bench.schedule import Phase, parse_schedule
from physopt.bench.train import train_run
from problems import get_problem


def test_a_schedule_is_its_phases_with_their_switch_points():
    assert parse_schedule("adam>hig@30s") == [Phase("adam"), Phase("hig", 30.0, "s")]
    assert parse_schedule(" adam > gn@500it > hig@2.5s") == [Phase("adam"), Phase("gn", 500, "it"),
                                                            Phase("hig", 2.5, "s")]
    assert parse_schedule("torch.optim.AdamW>hig@100")[1] == Phase("hig", 100, "it")


@pytest.mark.parametrize("name, match", [
    ("adam>hig", "needs a switch point"), ("adam>hig@soon", "needs a switch point"), (">hig@3", "FIRST>SECOND"),
    ("adam>hig@2.5", "whole number of iterations"), ("adam>hig@0", "after the start"),
    ("adam>gn@50>hig@20", "one after the other")])
def test_malformed_schedules_are_named(name, match):
    with pytest.raises(ValueError, match=match):
        parse_schedule(name)


def test_each_phase_takes_its_own_settings_and_batch_size_unless_one_is_given():
    problem = get_problem("oscillators")
    method = get_method("Adam>HIG@30s")
    assert method.name == "adam>hig@30s" and "then hig from 30s" in method.description
    hp = resolve_hyperparameters(method, problem)
    assert [(p["optimizer"], p["from"], p["batch_size"]) for p in hp["phases"]] == [("adam", None, 512),
                                                                                   ("hig", "30s", 128)]
    assert hp["phases"][0]["lr"] == 1e-3 and hp["phases"][1]["truncation"] == 1e-6 and hp["batch_size"] == 512
    forced = resolve_hyperparameters(method, problem, batch_size=16)
    assert [p["batch_size"] for p in forced["phases"]] == [16, 16]
    assert resolve_hyperparameters(method, problem, hp) == hp            # a run file's settings resolve to themselves
    with pytest.raises(ValueError, match="own settings"):
        resolve_hyperparameters(method, problem, {"lr": 1.0})


def test_the_run_continues_from_the_first_phases_weights_and_records_the_switch():
    """adam>hig@4: the first 4 iterations are exactly a plain Adam run's (same seed, weights, batches); then HIG."""
    problem = get_problem("poisson-hig", resolution=4)
    adam = train_run(problem, "adam", 0, iterations=4, evaluations=1)
    run = train_run(problem, "adam>hig@4", 0, iterations=8, evaluations=2)
    assert run.switches == [{"optimizer": "hig", "iteration": 4, "time_s": run.switches[0]["time_s"]}]
    at_switch = next(c for c in run.curve if c.iteration == 4)
    assert at_switch.loss == adam.final["loss"]
    assert run.iterations == 8 and run.curve[-1].loss < at_switch.loss       # HIG went on from there
    assert [p["optimizer"] for p in run.hyperparameters["phases"]] == ["adam", "hig"]
    assert adam.switches is None


def test_a_switch_after_seconds_of_training():
    problem = get_problem("poisson-hig", resolution=4)
    run = train_run(problem, "adam>sgd@0.05s", 0, iterations=100_000, time_budget=0.5, evaluations=1)
    (switch,) = run.switches
    assert switch["optimizer"] == "sgd" and switch["time_s"] >= 0.05 and 0 < switch["iteration"] < run.iterations


def test_compare_runs_a_schedule_beside_its_parts_and_marks_the_switch(tmp_path, cli):
    code, out, err = cli("compare", "poisson-hig", "--optimizers", "adam,adam>hig@3", "--iterations", "6",
                         "--param", "resolution=4", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["optimizers"] == ["adam", "adam>hig@3"]
    assert summary["runs"][1]["switches"][0]["iteration"] == 3 and summary["runs"][0]["switches"] is None
    assert (tmp_path / "runs" / "adam-hig-3_seed0.json").exists() and (tmp_path / "curves.png").exists()
    code, _, err = cli("compare", "poisson-hig", "--optimizers", "adam>hig@3", "--iterations", "2",
                       "--hparam", "adam>hig@3.lr=1")
    assert code == 2 and "own settings" in err
    code, _, err = cli("compare", "poisson-hig", "--optimizers", "adam>hig@3", "--iterations", "4",
                       "--param", "resolution=4", "--hparam", "adam>hig@3.threads=1", "--out", str(tmp_path / "t1"),
                       "--quiet")                   # the run's thread count is the schedule's own setting
    assert code == 0, err
    run = json.loads((tmp_path / "t1" / "runs" / "adam-hig-3_seed0.json").read_text())["result"]
    assert run["worker"]["torch_threads"] == 1 and run["hyperparameters"]["threads"] == 1
    code, _, err = cli("compare", "poisson-hig", "--optimizers", "adam>hig@x", "--iterations", "2")
    assert code == 2 and "switch point" in err


def test_a_schedule_trains_identically_when_rerun():
    problem = get_problem("poisson-hig", resolution=4)
    a, b = (train_run(problem, "sgd>gn@3", 1, iterations=5, evaluations=1) for _ in range(2))
    assert a.final == b.final and a.init_checksum == b.init_checksum
    torch.testing.assert_close(torch.tensor(a.final["loss"]), torch.tensor(b.final["loss"]), rtol=0, atol=0)
