"""compare: every optimizer from the same weights and data, results written as runs finish, resumable."""
import csv
import json

import pytest

from physopt.bench import compare
from problems import get_problem


def test_compare_writes_summary_curves_and_plot(tmp_path, cli):
    out_dir = tmp_path / "res"
    code, out, err = cli("compare", "exp", "--optimizers", "adam,sgd,sip", "--iterations", "12",
                         "--batch-size", "16", "--seeds", "0,1", "--device", "cpu", "--evaluations", "3",
                         "--out", str(out_dir))
    assert code == 0, err
    assert "seed 1" in err  # progress while it runs
    assert "sip" in out and "x_error" in out  # the table
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["problem"] == "exp" and summary["device"] == "cpu" and summary["torch"]
    assert len(summary["runs"]) == 6
    for r in summary["runs"]:
        assert set(r) >= {"optimizer", "seed", "iterations", "wall_time_s", "final", "hyperparameters"}
        assert r["iterations"] == 12 and set(r["final"]) == {"loss", "x_error"}
        assert r["final"]["x_error"] is not None
    # fairness: per seed, every optimizer started from the same weights
    for seed in (0, 1):
        assert len({r["init_checksum"] for r in summary["runs"] if r["seed"] == seed}) == 1
    assert summary["hyperparameters"]["adam"]["lr"] == 1e-3 and summary["hyperparameters"]["sgd"]["lr"] == 1e-2
    rows = list(csv.DictReader((out_dir / "curves.csv").open()))
    assert {r["optimizer"] for r in rows} == {"adam", "sgd", "sip"} and "time_s" in rows[0]
    assert (out_dir / "curves.png").stat().st_size > 1000


def test_compare_resumes_finished_runs(tmp_path, cli):
    args = ["compare", "exp", "--optimizers", "adam", "--iterations", "5", "--batch-size", "8", "--device", "cpu",
            "--evaluations", "2", "--out", str(tmp_path)]
    assert cli(*args)[0] == 0
    first = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
    code, _, err = cli(*args)
    assert code == 0 and "skipped" in err
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0] == first
    # other settings: neither reused nor silently replaced; --force replaces
    code, _, err = cli(*args[:-2], "--hparam", "adam.lr=2e-3", "--out", str(tmp_path))
    assert code == 2 and "adam_seed0.json: hyperparameters" in err and "--force" in err and "Traceback" not in err
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0] == first
    code, _, err = cli(*args[:-2], "--hparam", "adam.lr=2e-3", "--out", str(tmp_path), "--force")
    assert code == 0 and "skipped" not in err
    assert json.loads((tmp_path / "summary.json").read_text())["hyperparameters"]["adam"]["lr"] == 2e-3


def test_time_budget_and_problem_parameters(tmp_path, cli):
    code, out, err = cli("compare", "rotated-sine", "--optimizers", "adam", "--time-budget", "0.5",
                         "--param", "xi=32", "--device", "cpu", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["xi"] == 32 and summary["runs"][0]["iterations"] > 0
    assert "preimage_distance" in out


def test_compare_hig_and_gn_with_the_papers_batch_size_per_optimizer(tmp_path, cli):
    code, out, err = cli("compare", "oscillators", "--optimizers", "adam,gn,hig", "--iterations", "3",
                         "--device", "cpu", "--evaluations", "1", "--param", "steps=8", "--held-out-size", "32",
                         "--out", str(tmp_path))
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["batch_size"] == {"adam": 512, "gn": 128, "hig": 128}          # HIG paper, Table 2
    hp = summary["hyperparameters"]
    assert hp["hig"]["lr"] == 8.0 and hp["hig"]["truncation"] == 1e-6 and hp["adam"]["lr"] == 1e-3  # 600 s rates
    runs = {r["optimizer"]: r for r in summary["runs"]}
    assert runs["adam"]["status"] == runs["hig"]["status"] == "ok" and runs["hig"]["iterations"] == 3
    # GN may blow up on this short horizon (the paper calls it unstable); then the run says so, weights stay finite
    assert runs["gn"]["status"] == "ok" or runs["gn"]["status"].startswith("diverged: step")
    assert "held-out loss of adam / held-out loss of optimizer" in out    # no ground truth: loss ratios
    # --batch-size overrides every optimizer's
    code, _, err = cli("compare", "oscillators", "--optimizers", "hig", "--iterations", "1", "--device",
                       "cpu", "--evaluations", "1", "--param", "steps=8", "--held-out-size", "8",
                       "--batch-size", "4", "--out", str(tmp_path / "b4"))
    assert code == 0, err
    assert json.loads((tmp_path / "b4" / "summary.json").read_text())["batch_size"] == {"hig": 4}


def test_component_losses_are_recorded_beside_the_loss(tmp_path, cli):
    """quantum-dipole reports the paper's low- and high-energy losses (Fig. 4c) in the table, summary and curves."""
    code, out, err = cli("compare", "quantum-dipole", "--optimizers", "adam,hig", "--iterations", "2",
                         "--device", "cpu", "--evaluations", "1", "--param", "steps=8", "--held-out-size", "16",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert "le_loss:" in out and "he_loss:" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    for r in summary["runs"]:
        assert 0 <= r["final"]["le_loss"] <= 1 and 0 <= r["final"]["he_loss"] <= 1
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert rows[0]["le_loss"] and rows[-1]["he_loss"]


def test_a_run_the_physics_cannot_step_is_recorded_as_diverged(tmp_path, cli):
    # SGD with an absurd rate makes the U-net output velocities that cross half the domain in one step
    code, _, _ = cli("compare", "navier-stokes", "--preset", "quick", "--optimizers", "sgd",
                     "--hparam", "sgd.lr=1e6", "--out", str(tmp_path), "--quiet")
    assert code == 0
    (entry,) = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert entry["status"].startswith("diverged")


def test_compare_with_a_preset_says_what_it_runs(tmp_path, cli):
    code, out, _ = cli("compare", "poisson", "--preset", "quick", "--optimizers", "adam", "--quiet")
    assert code == 0 and "preset 'quick': 3 iterations per run, seeds [0], batch 4" in out
    assert "'resolution': 16" in out
    code, _, err = cli("compare", "poisson", "--preset", "fast")
    assert code == 2 and "Available: paper, quick, standard" in err


def test_runs_saved_before_batch_size_joined_the_hyperparameters_still_resume(tmp_path, cli):
    out_dir = tmp_path / "exp"
    args = ["compare", "exp", "--optimizers", "adam", "--iterations", "3", "--batch-size", "8", "--out",
            str(out_dir), "--quiet"]
    assert cli(*args)[0] == 0
    path = out_dir / "runs" / "adam_seed0.json"
    data = json.loads(path.read_text())
    del data["spec"]["hyperparameters"]["batch_size"]         # the layout of runs saved before issue 3
    path.write_text(json.dumps(data))
    code, _, err = cli(*args[:-1])
    assert code == 0 and "already finished" in err


def test_each_run_records_its_machine_and_runs_kept_from_another_machine_are_flagged(tmp_path, cli):
    from physopt.bench.storage import machine_label
    out_dir = tmp_path / "res"
    args = ["compare", "exp", "--optimizers", "adam", "--seeds", "0,1", "--time-budget", "0.3", "--device", "cpu",
            "--evaluations", "2", "--out", str(out_dir)]
    assert cli(*args)[0] == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    here = machine_label(summary["machine"])
    assert [r["machine"] for r in summary["runs"]] == [here, here]
    cli("report", str(tmp_path))
    assert "Runs by machine" not in (tmp_path / "README.md").read_text()   # one machine: nothing to say
    # a run kept from another machine: resuming warns (its time budget was spent elsewhere), the report says where
    path = out_dir / "runs" / "adam_seed1.json"
    data = json.loads(path.read_text())
    data["result"]["machine"] = "Other CPU, 8 torch threads"
    path.write_text(json.dumps(data))
    code, _, err = cli(*args)
    assert code == 0 and "had its 0.3 s on Other CPU, 8 torch threads" in err and "adam_seed1.json" in err
    cli("report", str(tmp_path))
    report = (tmp_path / "README.md").read_text()
    assert f"Runs by machine: {here}: seeds 0; Other CPU, 8 torch threads: seeds 1" in report


# SIP against Adam on the bundled SIP problems, from the same weights and data (scaled down; -m slow: full size)

def x_errors(name, config, iterations, batch_size=None, seed=0, device="cpu"):
    problem = get_problem(name, device=device, **config)
    summary = compare(problem, ["adam", "sip"], seeds=[seed], iterations=iterations, batch_size=batch_size,
                      evaluations=2)
    runs = {r["optimizer"]: r for r in summary["runs"]}
    assert runs["adam"]["init_checksum"] == runs["sip"]["init_checksum"]
    assert all(r["status"] == "ok" and r["iterations"] == iterations for r in runs.values())
    return runs["adam"]["final"]["x_error"], runs["sip"]["final"]["x_error"]


@pytest.mark.parametrize("name, config, iterations, batch_size, min_ratio", [
    ("poisson", {"resolution": 32}, 80, 16, 1.5),
    ("heat", {"resolution": 32, "max_half_size": 5.0}, 80, 16, 1.1),
    ("rotated-sine", {"xi": 32.0, "phi": 45.0}, 600, None, 5.0),
    ("exp", {}, 1500, None, 1.5),
])
def test_sip_beats_adam_small(name, config, iterations, batch_size, min_ratio, device):
    adam, sip = x_errors(name, config, iterations, batch_size, device=device)
    assert adam / sip >= min_ratio, f"{name}: adam {adam:.4g} vs sip {sip:.4g}"


@pytest.mark.slow
def test_poisson_acceptance_sip_3x_below_adam():
    adam, sip = x_errors("poisson", {}, 300, 32)
    assert adam / sip >= 3.0, f"adam {adam:.4g} vs sip {sip:.4g}"


@pytest.mark.slow
def test_heat_acceptance_sip_below_adam():
    adam, sip = x_errors("heat", {}, 300, 32)
    assert sip < adam


@pytest.mark.slow
def test_rotated_sine_acceptance_at_xi_32_phi_45():
    adam, sip = x_errors("rotated-sine", {"xi": 32.0, "phi": 45.0}, 3000)
    assert sip < adam


def _quick(tmp_path, *extra):
    return ["compare", "exp", "--optimizers", "adam", "--iterations", "4", "--batch-size", "8", "--device", "cpu",
            "--evaluations", "1", "--out", str(tmp_path), "--quiet", *extra]


def test_a_partial_command_after_a_full_one_keeps_the_full_summary_byte_for_byte(tmp_path, cli):
    assert cli(*_quick(tmp_path, "--seeds", "0,1"))[0] == 0
    files = {name: (tmp_path / name).read_bytes() for name in ("summary.json", "curves.csv", "curves.png")}
    code, out, _ = cli(*_quick(tmp_path, "--seeds", "0"))              # every asked run already finished
    assert code == 0
    assert {name: (tmp_path / name).read_bytes() for name in files} == files
    assert len(json.loads(files["summary.json"])["runs"]) == 2


def test_runs_of_the_same_setting_join_the_summary(tmp_path, cli):
    assert cli(*_quick(tmp_path, "--seeds", "0"))[0] == 0
    assert cli(*_quick(tmp_path, "--seeds", "1"))[0] == 0                # another seed, same setting
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["seeds"] == [1, 0] and sorted(r["seed"] for r in summary["runs"]) == [0, 1]
    assert {int(row["seed"]) for row in csv.DictReader(open(tmp_path / "curves.csv"))} == {0, 1}


def test_a_shorter_run_never_replaces_a_longer_one_without_force(tmp_path, cli):
    assert cli(*_quick(tmp_path))[0] == 0
    before = (tmp_path / "runs" / "adam_seed0.json").read_bytes()
    code, _, err = cli(*[a if a != "4" else "2" for a in _quick(tmp_path)])
    assert code == 2 and "adam_seed0.json: iterations 4 (here 2)" in err and "Traceback" not in err
    assert (tmp_path / "runs" / "adam_seed0.json").read_bytes() == before
    assert cli(*[a if a != "4" else "2" for a in _quick(tmp_path)], "--force")[0] == 0
    assert json.loads((tmp_path / "summary.json").read_text())["iterations"] == 2


def test_a_truncated_run_file_is_named_not_silently_retrained(tmp_path, cli):
    assert cli(*_quick(tmp_path))[0] == 0
    run = tmp_path / "runs" / "adam_seed0.json"
    run.write_text(run.read_text()[:100])
    code, _, err = cli(*_quick(tmp_path))
    assert code == 2 and f"{run} is not a complete run file" in err and "--force" in err
    assert cli(*_quick(tmp_path, "--force"))[0] == 0
    assert json.loads(run.read_text())["result"]["optimizer"] == "adam"


def test_an_update_that_leaves_nan_weights_is_undone_and_the_run_recorded_as_diverged(tmp_path, cli):
    code, _, _ = cli("compare", "exp", "--iterations", "3", "--optimizers", "rmsprop", "--hparam", "rmsprop.alpha=5",
                     "--device", "cpu", "--evaluations", "1", "--out", str(tmp_path), "--quiet")
    run = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
    assert code == 0 and run["status"].startswith("diverged: step 1: the update made weights NaN/inf")
    assert all(v is None or v == v for v in run["final"].values())          # the held-out metrics are not NaN


def test_a_run_file_edited_with_wrong_types_is_named_before_anything_trains(tmp_path, cli):
    assert cli(*_quick(tmp_path))[0] == 0
    run = tmp_path / "runs" / "adam_seed0.json"
    data = json.loads(run.read_text())
    data["result"]["status"] = None
    run.write_text(json.dumps(data))
    summary = (tmp_path / "summary.json").read_bytes()
    code, _, err = cli(*_quick(tmp_path))
    assert code == 2 and "result.status has the wrong type" in err and "Traceback" not in err
    assert (tmp_path / "summary.json").read_bytes() == summary


def test_an_interrupted_comparison_leaves_a_summary_of_the_runs_it_finished(tmp_path, monkeypatch):
    import importlib
    tasks_module = importlib.import_module("physopt.bench.tasks")
    real, calls = tasks_module.train_run, []

    def interrupted_on_the_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks_module, "train_run", interrupted_on_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        compare(get_problem("exp"), ["adam", "sgd"], iterations=2, batch_size=4, evaluations=1, out=tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["optimizer"], r["seed"]) for r in summary["runs"]] == [("adam", 0)]


def _set_version(path, version):
    data = json.loads(path.read_text())
    if version is None:
        data["result"].pop("provenance")
    else:
        data["result"]["provenance"]["physopt"] = version
    path.write_text(json.dumps(data))


def test_every_run_file_and_the_summary_record_what_made_them(tmp_path, cli):
    import physopt
    from physopt.bench.provenance import provenance
    assert cli("compare", "exp", "--optimizers", "adam", "--iterations", "2", "--batch-size", "8", "--evaluations",
               "2", "--out", str(tmp_path), "--quiet")[0] == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    run = json.loads((tmp_path / "runs" / "adam_seed0.json").read_text())["result"]
    assert summary["provenance"] == provenance() == run["provenance"] == summary["runs"][0]["provenance"]
    assert run["provenance"]["physopt"] == physopt.__version__


def test_a_run_made_by_another_physopt_version_is_retrained_unless_kept(tmp_path, cli):
    args = ["compare", "exp", "--optimizers", "adam,sgd", "--iterations", "3", "--batch-size", "8", "--evaluations",
            "2", "--out", str(tmp_path)]
    assert cli(*args)[0] == 0
    adam, sgd = tmp_path / "runs" / "adam_seed0.json", tmp_path / "runs" / "sgd_seed0.json"
    _set_version(adam, "0.0.1")
    _set_version(sgd, None)                                # a file from before versions were recorded
    code, _, err = cli(*args[:-2], "--keep-stale", "--out", str(tmp_path))
    assert code == 0 and err.count("kept: its run file") == 2
    assert "made by physopt 0.0.1" in err and "made by an unrecorded physopt version" in err
    kept = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert [r.get("provenance", {}).get("physopt") if r.get("provenance") else None for r in kept] == ["0.0.1", None]
    cli("report", str(tmp_path.parent))
    assert "Kept from physopt 0.0.1: adam seed 0" in (tmp_path.parent / "README.md").read_text()
    # without --keep-stale: said and retrained, the file now records this version
    code, _, err = cli(*args)
    assert code == 0 and err.count("retrained: its run file") == 2 and "--keep-stale keeps" in err
    assert "already finished" not in err
    assert all(json.loads(p.read_text())["result"]["provenance"]["physopt"] != "0.0.1" for p in (adam, sgd))
    code, _, err = cli(*args)
    assert code == 0 and err.count("already finished") == 2          # current runs are reused as before
    code, _, err = cli(*args, "--keep-stale", "--fresh")
    assert code == 2 and "not allowed with" in err


def test_a_stale_run_not_asked_for_stays_out_of_the_summary_unless_kept(tmp_path, cli):
    base = ["compare", "exp", "--iterations", "3", "--batch-size", "8", "--evaluations", "2", "--out", str(tmp_path)]
    assert cli(*base, "--optimizers", "adam,sgd")[0] == 0
    _set_version(tmp_path / "runs" / "sgd_seed0.json", "0.0.1")
    code, _, err = cli(*base, "--optimizers", "adam")
    assert code == 0 and "sgd       seed 0  left out of the summary" in err and "physopt 0.0.1" in err
    assert [r["optimizer"] for r in json.loads((tmp_path / "summary.json").read_text())["runs"]] == ["adam"]
    assert (tmp_path / "runs" / "sgd_seed0.json").exists()                # left out, never deleted
    assert cli(*base, "--optimizers", "adam", "--keep-stale")[0] == 0
    assert [r["optimizer"] for r in json.loads((tmp_path / "summary.json").read_text())["runs"]] == ["adam", "sgd"]


def test_two_optimizers_whose_run_files_would_collide_are_refused_from_python_too(tmp_path, monkeypatch):
    import sys
    import types

    import torch
    mod = types.ModuleType("collide_opts")
    mod.Öpt = type("Öpt", (torch.optim.SGD,), {})
    mod.Äpt = type("Äpt", (torch.optim.SGD,), {})
    monkeypatch.setitem(sys.modules, "collide_opts", mod)
    with pytest.raises(ValueError, match="would save their runs to the same file"):
        compare(get_problem("exp"), ["collide_opts:Öpt", "collide_opts:Äpt"], iterations=1, out=tmp_path)
    assert not (tmp_path / "runs").exists()


def test_an_interrupted_comparison_summarises_runs_a_worker_saved_after_the_last_outcome_arrived(tmp_path):
    """Ctrl-C can land between a worker saving its run file and this process receiving the outcome: the summary
    written on the interruption still holds that run (found on disk with this spec and version)."""
    from physopt.bench.progress import as_progress
    problem = get_problem("exp")
    out = tmp_path / "cmp"
    from physopt.bench.compare import prepare
    late = prepare(problem, ["adam", "sgd"], iterations=2, out=out)
    report = as_progress(None)
    assert len(late.start(report, 0)) == 2                   # nothing finished yet
    compare(problem, ["adam"], iterations=2, out=out)          # "the worker" saves adam's run meanwhile
    (out / "summary.json").unlink()
    summary = late.finish(report, interrupted=True)
    assert [r["optimizer"] for r in summary["runs"]] == ["adam"]
    assert json.loads((out / "summary.json").read_text())["runs"][0]["optimizer"] == "adam"


def test_each_optimizer_can_run_at_its_own_thread_count_and_its_run_file_says_so(tmp_path, cli):
    code, _, err = cli("compare", "exp", "--optimizers", "adam,sgd", "--iterations", "3", "--threads", "2",
                       "--hparam", "adam.threads=1", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    runs = {o: json.loads((tmp_path / "runs" / f"{o}_seed0.json").read_text())["result"] for o in ("adam", "sgd")}
    assert runs["adam"]["worker"]["torch_threads"] == 1 and runs["adam"]["machine"].endswith("1 torch threads")
    assert runs["sgd"]["worker"]["torch_threads"] == 2 and "threads" not in runs["sgd"]["hyperparameters"]
    code, _, err = cli("compare", "exp", "--optimizers", "adam,sgd", "--iterations", "3", "--threads", "2",
                       "--out", str(tmp_path), "--quiet")
    assert code == 2 and "threads" in err and "--force" in err     # another thread count is another run
    code, _, err = cli("compare", "exp", "--optimizers", "adam", "--iterations", "3", "--hparam", "adam.threads=0")
    assert code == 2 and "adam: Invalid threads" in err
