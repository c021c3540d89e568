"""study: physopt tune --space searches several settings at once on Optuna: same weights and data for every trial,
pruned on the validation evaluations a run makes, studies shared through a storage by several processes."""
import json
import subprocess
import sys

import pytest

optuna = pytest.importorskip("optuna")

from physopt.bench.methods import get_method, resolve_hyperparameters  # noqa: E402
from physopt.bench.study import (Dimension, make_sampler, open_storage, parse_space, run_study,  # noqa: E402
                                 settings_from_file, suggest)
from problems import get_problem  # noqa: E402


@pytest.fixture
def adam():
    method = get_method("adam")
    return method, resolve_hyperparameters(method, get_problem("exp"))


def test_a_space_is_read_per_setting_with_its_kind(adam):
    method, defaults = adam
    dims = parse_space(["adam.lr=log:1e-5:1e-2", "Adam.momentum_x=0.1:0.9", "adam.k=int:1:8",
                        "adam.amsgrad=choice:true,false", "adam.betas0=0.8:0.99"], method, defaults)
    assert dims[0] == Dimension("lr", "lr", "log", 1e-5, 1e-2)
    assert dims[1] == Dimension("momentum_x", "momentum_x", "float", 0.1, 0.9)
    assert dims[2] == Dimension("k", "k", "int", 1, 8)
    assert dims[3] == Dimension("amsgrad", "amsgrad", "choice", choices=(True, False))
    assert dims[4] == Dimension("betas0", "betas", "float", 0.8, 0.99, component=0)     # a tuple's component


def test_a_trial_sets_the_settings_and_a_tuple_component_keeps_the_other_components(adam):
    method, defaults = adam
    dims = parse_space(["adam.lr=log:1e-5:1e-2", "adam.betas1=0.9:0.9999"], method, defaults)
    trial = optuna.trial.FixedTrial({"lr": 3e-4, "betas1": 0.99})
    assert suggest(trial, dims, method, defaults) == {"lr": 3e-4, "betas": (0.9, 0.99)}     # torch's betas[0]


@pytest.mark.parametrize("item, words", [
    ("adam.lr", "write OPT.KEY=SPEC"),
    ("lr=log:1e-5:1e-2", "write OPT.KEY=SPEC"),
    ("adam.lr=log:0:1", "LOW < HIGH, both finite and > 0 for log"),
    ("adam.lr=3:1", "LOW < HIGH"),
    ("adam.lr=log:a:b", "write SPEC as one of log:LOW:HIGH"),
    ("adam.lr=choice:1,1", "distinct choices"),
    ("sgd.lr=log:1e-5:1e-2", "settings given for 'sgd', which is not among the optimizers"),
])
def test_a_malformed_space_is_named_with_the_accepted_forms(adam, item, words):
    method, defaults = adam
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_space([item], method, defaults)


def test_the_grid_sampler_needs_a_finite_grid_and_storages_that_cannot_open_are_named(tmp_path):
    with pytest.raises(ValueError, match="grid sampler needs a finite grid: give lr as choice"):
        make_sampler("grid", [Dimension("lr", "lr", "log", 1e-5, 1e-2)], 0)
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        make_sampler("cmaes", [], 0)
    with pytest.raises(ValueError, match=r"storage 'journal:.*' cannot be opened: OSError: directory .* does not"):
        open_storage(f"journal:{tmp_path / 'missing' / 'study.log'}")
    with pytest.raises(ValueError, match="storage 'nonsense' cannot be opened"):
        open_storage("nonsense")
    with pytest.raises(ValueError, match=r"storage 'sqlite:////no/such/dir/x.db' cannot be opened"):
        open_storage("sqlite:////no/such/dir/x.db")


def test_a_study_trains_every_trial_from_the_same_weights_and_records_the_best(tmp_path):
    problem = get_problem("exp")
    result = run_study(problem, get_method("adam"), ["adam.lr=log:1e-4:1e-1"], trials=5, iterations=40,
                       batch_size=16, sampler="random", pruner="none")
    trials = result["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4] and {t["state"] for t in trials} == {"complete"}
    assert len({t["settings"]["lr"] for t in trials}) == 5 and all(t["iterations"] == 40 for t in trials)
    best = min(trials, key=lambda t: t["value"])
    assert result["best"] == {"trial": best["number"], "value": best["value"], "settings": best["settings"]}


def test_the_median_pruner_stops_hopeless_trials_on_their_validation_evaluations():
    result = run_study(get_problem("exp"), get_method("adam"), ["adam.lr=log:1e-7:1e-1"], trials=10,
                       iterations=60, batch_size=16, sampler="random", pruner="median", evaluations=6)
    states = [t["state"] for t in result["trials"]]
    assert len(states) == 10 and "pruned" in states and "complete" in states
    pruned = [t for t in result["trials"] if t["state"] == "pruned"]
    assert all(0 < t["last_step"] < 60 for t in pruned)                        # stopped before the end


def test_tune_with_a_space_writes_every_trial_and_compare_takes_its_best_from_the_file(tmp_path, cli):
    code, out, err = cli("tune", "exp", "--optimizer", "adam", "--space", "adam.lr=log:1e-4:1e-1", "--space",
                         "adam.betas0=0.5:0.95", "--trials", "4", "--iterations", "30", "--batch-size", "16",
                         "--sampler", "random", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert "best for adam on exp" in out and "--hparam-file" in out
    path = tmp_path / "exp_adam.json"
    result = json.loads(path.read_text())
    assert len(result["trials"]) == 4 and result["space"] == ["adam.lr=log:1e-4:1e-1", "adam.betas0=0.5:0.95"]
    best = result["best"]["settings"]
    assert settings_from_file(path) == {"adam": {"lr": best["lr"], "betas": tuple(best["betas"])}}
    code, _, err = cli("compare", "exp", "--optimizers", "adam,sgd", "--iterations", "2", "--hparam-file", str(path),
                       "--out", str(tmp_path / "cmp"), "--quiet")
    assert code == 0, err
    used = json.loads((tmp_path / "cmp" / "summary.json").read_text())["hyperparameters"]["adam"]
    assert used["lr"] == best["lr"] and list(used["betas"]) == best["betas"]


def test_the_settings_a_study_held_fixed_travel_with_its_best_to_compare(tmp_path, cli):
    """A search run with --hparam (here a cosine rate schedule) scored that configuration: the file records the fixed
    settings, and the printed command and --hparam-file hand them on with the best searched ones."""
    code, out, err = cli("tune", "exp", "--optimizer", "adam", "--hparam", "adam.lr_schedule=cosine", "--hparam",
                         "adam.betas=0.8,0.99", "--space", "adam.lr_min=log:1e-6:1e-4", "--trials", "2",
                         "--iterations", "5", "--batch-size", "8", "--sampler", "random", "--out", str(tmp_path),
                         "--quiet")
    assert code == 0, err
    path = tmp_path / "exp_adam.json"
    result = json.loads(path.read_text())
    assert result["fixed"] == {"lr_schedule": "cosine", "betas": [0.8, 0.99]}
    lr_min = result["best"]["settings"]["lr_min"]
    assert settings_from_file(path) == {"adam": {"lr_schedule": "cosine", "betas": (0.8, 0.99), "lr_min": lr_min}}
    assert "--hparam adam.lr_schedule=cosine --hparam adam.betas=0.8,0.99 --hparam adam.lr_min=" in out
    code, _, err = cli("compare", "exp", "--optimizers", "adam", "--iterations", "2", "--hparam-file", str(path),
                       "--out", str(tmp_path / "cmp"), "--quiet")
    assert code == 0, err
    used = json.loads((tmp_path / "cmp" / "summary.json").read_text())["hyperparameters"]["adam"]
    assert used["lr_schedule"] == "cosine" and used["lr_min"] == lr_min and list(used["betas"]) == [0.8, 0.99]


def test_a_setting_in_both_hparam_and_hparam_file_is_refused_and_a_file_without_best_named(tmp_path, cli):
    path = tmp_path / "exp_adam.json"
    path.write_text(json.dumps({"optimizer": "adam", "best": {"trial": 0, "value": 1.0, "settings": {"lr": 0.01}}}))
    code, _, err = cli("compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam", "adam.lr=0.1",
                       "--hparam-file", str(path))
    assert code == 2 and "adam.lr is given twice (by --hparam or another --hparam-file, and by --hparam-file" in err
    other = tmp_path / "exp_sgd.json"                     # one file per optimizer, repeated
    other.write_text(json.dumps({"optimizer": "sgd", "best": {"trial": 0, "value": 1.0, "settings": {"lr": 0.5}}}))
    code, _, err = cli("compare", "exp", "--optimizers", "adam,sgd", "--iterations", "1", "--hparam-file", str(path),
                       "--hparam-file", str(other), "--out", str(tmp_path / "two"), "--quiet")
    assert code == 0, err
    used = json.loads((tmp_path / "two" / "summary.json").read_text())["hyperparameters"]
    assert used["adam"]["lr"] == 0.01 and used["sgd"]["lr"] == 0.5
    path.write_text(json.dumps({"optimizer": "adam", "best": None}))
    code, _, err = cli("compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam-file", str(path))
    assert code == 2 and "no trial of that study finished" in err
    path.write_text("{}")
    code, _, err = cli("compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam-file", str(path))
    assert code == 2 and "not a tuning file of physopt tune" in err
    assert settings_from_file(_lr_file(tmp_path)) == {"sgd": {"lr": 0.03}}


def _lr_file(tmp_path):
    path = tmp_path / "exp_sgd.json"
    path.write_text(json.dumps({"optimizer": "sgd", "best_lr": 0.03, "rows": []}))
    return path


def test_two_processes_on_one_journal_storage_complete_one_study_with_no_trial_twice(tmp_path):
    storage = f"journal:{tmp_path / 'study.log'}"
    argv = [sys.executable, "-m", "physopt", "tune", "exp", "--optimizer", "adam", "--space",
            "adam.lr=log:1e-4:1e-1", "--trials", "6", "--iterations", "20", "--batch-size", "16", "--storage",
            storage, "--quiet"]
    procs = [subprocess.Popen([*argv, "--out", str(tmp_path / f"p{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="exp-adam", storage=open_storage(storage))
    trained = [t for t in study.trials if not t.user_attrs.get("surplus")]
    assert sorted(t.number for t in trained) == list(range(6))
    assert len({t.params["lr"] for t in trained}) == 6
    assert {t.user_attrs.get("surplus") for t in study.trials if t.number >= 6} <= {True}


def test_several_local_workers_share_one_study(tmp_path, cli):
    code, out, err = cli("tune", "exp", "--optimizer", "adam", "--space", "adam.lr=log:1e-4:1e-1", "--trials", "4",
                         "--iterations", "20", "--batch-size", "16", "--executor", "local:2",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert "2 worker processes" in err
    assert len(json.loads((tmp_path / "exp_adam.json").read_text())["trials"]) == 4


@pytest.mark.parametrize("argv, words", [
    (["--space", "adam.lr=log:1e-4"], "--space 'adam.lr=log:1e-4'"),
    (["--space", "adam.lr=log:1e-4:1e-1", "--storage", "bogus"], "storage 'bogus' cannot be opened"),
    (["--space", "adam.lr=log:1e-4:1e-1", "--lrs", "1e-3"], "not allowed with"),
    (["--space", "adam.lr=log:1e-4:1e-1", "--sampler", "grid"], "grid sampler needs a finite grid"),
    (["--lrs", "1e-3", "--trials", "3"], "--trials, --sampler, --pruner"),
])
def test_bad_tune_input_is_one_line_and_exit_code_2(cli, argv, words):
    code, _, err = cli("tune", "exp", "--optimizer", "adam", "--iterations", "2", *argv)
    assert code == 2 and words in err and "Traceback" not in err


def test_without_optuna_tune_says_which_extra_to_install(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, _, err = cli("tune", "exp", "--optimizer", "adam", "--iterations", "2", "--space", "adam.lr=log:1e-4:1e-1")
    assert code == 2 and "pip install 'physopt[tune]'" in err


def test_on_slurm_array_tasks_join_one_study_in_a_journal_under_out(tmp_path):
    pytest.importorskip("submitit")
    from physopt.bench.slurm import SlurmExecutor
    slurm = SlurmExecutor(tmp_path / "slurm", cluster="local", time_min=5)
    result = run_study(get_problem("exp"), get_method("adam"), ["adam.lr=log:1e-4:1e-1"], trials=3, iterations=20,
                       batch_size=16, sampler="random", pruner="none", executor=slurm)
    assert sorted(t["number"] for t in result["trials"]) == [0, 1, 2]
    assert (tmp_path / "slurm" / "study.log").exists() and list((tmp_path / "slurm").glob("*_log.out"))


def test_a_slurm_dry_run_of_a_study_prints_its_array_and_trains_nothing(tmp_path, cli):
    pytest.importorskip("submitit")
    code, out, err = cli("tune", "exp", "--optimizer", "adam", "--space", "adam.lr=log:1e-4:1e-1", "--trials", "4",
                         "--iterations", "2", "--executor", "slurm", "--slurm-dry-run", "--slurm-time", "20",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert "#SBATCH --array=0-3%" in out and "#SBATCH --time=20" in out
    assert f"join study 'exp-adam' on journal:{tmp_path / 'slurm' / 'study.log'}" in out
    assert not (tmp_path / "exp_adam.json").exists()
