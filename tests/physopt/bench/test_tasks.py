"""tasks: one run as a task any process can execute: the problem found again by reference, the run file written
under the run's lock, a run another command finished meanwhile taken as it is."""
import json
import sys

import pytest
import torch

import problems
from physopt.bench.provenance import provenance
from physopt.bench.tasks import ProblemRecipe, RunTask, class_reference, run_task
from problems import from_functions, get_problem

MODULE = '''
import torch
from problems import from_functions

problem = from_functions("tasks-test-ramp", sample=lambda n, g: torch.rand(n, 2, generator=g),
                         physics=lambda x: torch.cumsum(x, dim=1), network=lambda: torch.nn.Linear(2, 2),
                         register_name=False)
'''


def test_a_class_is_found_by_module_attribute_or_registered_name(tmp_path, monkeypatch):
    assert class_reference(type(get_problem("poisson"))) == "problems.poisson:PoissonProblem"
    (tmp_path / "tasks_user_mod.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import tasks_user_mod
    assert class_reference(tasks_user_mod.problem) == "tasks_user_mod:problem"   # made by from_functions
    registered = from_functions("tasks-test-registered", sample=lambda n, g: torch.rand(n, 2, generator=g),
                                physics=lambda x: 2 * x, network=lambda: torch.nn.Linear(2, 2))
    try:
        assert class_reference(registered) == "tasks-test-registered"
    finally:
        problems.PROBLEMS.pop("tasks-test-registered")
    monkeypatch.delitem(sys.modules, "tasks_user_mod")


def test_a_class_no_other_process_can_find_is_refused_with_what_to_do():
    local = from_functions("tasks-test-local", sample=lambda n, g: torch.rand(n, 2, generator=g),
                           physics=lambda x: 2 * x, network=lambda: torch.nn.Linear(2, 2),
                           register_name=False)
    with pytest.raises(ValueError, match=r"cannot be found from another process.*--executor local:1"):
        ProblemRecipe.of(local())
    assert "this process only" in ProblemRecipe.of(local(), portable=False).reference


def test_a_recipe_rebuilds_an_equal_problem():
    problem = get_problem("poisson", resolution=8, dtype=torch.float64)
    recipe = ProblemRecipe.of(problem)
    rebuilt = recipe.build()
    assert rebuilt is not problem and type(rebuilt) is type(problem) and rebuilt.config == problem.config
    assert rebuilt.dtype == torch.float64 and recipe.build() is rebuilt                  # built once per process


def task_for(tmp_path, **kw):
    problem = get_problem("exp")
    spec = {"problem": "exp", "optimizer": "adam", "seed": 0, "iterations": 3, "time_budget_s": None,
            "hyperparameters": {"lr": 1e-3, "batch_size": 8}, "evaluations": 1, "held_out_size": 16}
    return RunTask(ProblemRecipe.of(problem), "adam", 0, spec, tmp_path, True, False, provenance(), **kw)


def test_a_task_trains_writes_its_run_file_and_records_where(tmp_path):
    outcome = run_task(task_for(tmp_path, executor="local:2"))
    assert outcome.status == "trained" and outcome.result.iterations == 3
    stored = json.loads((tmp_path / "runs" / "adam_seed0.json").read_text())
    assert stored["spec"] == task_for(tmp_path).spec
    worker = stored["result"]["worker"]
    assert worker["executor"] == "local:2" and worker["device"] == "cpu" and worker["host"]
    assert worker["torch_threads"] == torch.get_num_threads()
    again = run_task(task_for(tmp_path))                      # finished meanwhile: taken as it is, not retrained
    assert again.status == "finished" and again.result == outcome.result


def test_a_task_whose_run_another_command_holds_is_busy_unless_it_waits(tmp_path):
    from physopt.bench.storage import run_lock
    with run_lock(tmp_path, "adam", 0):
        assert run_task(task_for(tmp_path), blocking=False).status == "busy"
    assert run_task(task_for(tmp_path), blocking=False).status == "trained"
