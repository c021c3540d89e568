"""The `physopt` command: list, compare (files, fairness, resume) and clear errors for bad input."""
import csv
import json

import pytest

from physopt.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_names_problems_and_optimizers(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    for name in ("poisson", "heat", "exp", "rotated-sine", "adam", "sgd", "sip"):
        assert name in out


def test_compare_writes_summary_curves_and_plot(tmp_path, capsys):
    out_dir = tmp_path / "res"
    code, out, err = run(capsys, "compare", "exp", "--optimizers", "adam,sgd,sip", "--iterations", "12",
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


def test_compare_resumes_finished_runs(tmp_path, capsys):
    args = ["compare", "exp", "--optimizers", "adam", "--iterations", "5", "--batch-size", "8", "--device", "cpu",
            "--evaluations", "2", "--out", str(tmp_path)]
    assert run(capsys, *args)[0] == 0
    first = json.loads((tmp_path / "summary.json").read_text())["runs"][0]
    code, _, err = run(capsys, *args)
    assert code == 0 and "skipped" in err
    assert json.loads((tmp_path / "summary.json").read_text())["runs"][0] == first
    # other settings: not reused
    code, _, err = run(capsys, *args[:-2], "--hparam", "adam.lr=2e-3", "--out", str(tmp_path))
    assert code == 0 and "skipped" not in err


def test_time_budget_and_problem_parameters(tmp_path, capsys):
    code, out, err = run(capsys, "compare", "rotated-sine", "--optimizers", "adam", "--time-budget", "0.5",
                         "--param", "xi=32", "--device", "cpu", "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["xi"] == 32 and summary["runs"][0]["iterations"] > 0
    assert "preimage_distance" in out


@pytest.mark.parametrize("argv, message", [
    (["compare", "poison", "--iterations", "1"], "unknown problem 'poison'. Did you mean 'poisson'?"),
    (["compare", "exp", "--optimizers", "adamw", "--iterations", "1"], "unknown optimizer 'adamw'"),
    (["compare", "exp", "--optimizers", "adam", "--iterations", "1", "--hparam", "adam.lr=-1"],
     "learning rate must be a finite number > 0"),
    (["compare", "exp", "--optimizers", "sip", "--iterations", "1", "--hparam", "sip.lr=0"],
     "learning rate must be a finite number > 0"),
    (["compare", "exp", "--optimizers", "adam"], "--iterations"),
    (["compare", "exp", "--iterations", "0"], "--iterations must be >= 1"),
    (["compare", "exp", "--iterations", "1", "--param", "nope=1"], "unknown config field"),
    (["compare", "exp", "--iterations", "1", "--seeds", "a"], "--seeds"),
])
def test_bad_input_gets_a_clear_error(capsys, argv, message):
    code, _, err = run(capsys, *argv, "--device", "cpu", "--quiet")
    assert code == 2
    assert message in err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(capsys):
    code, _, err = run(capsys, "compare", "exp", "--iterations", "1", "--device", "cuda", "--quiet")
    assert code == 2 and "no CUDA device" in err and "--device cpu" in err


def test_compare_hig_and_gn_with_the_papers_batch_size_per_optimizer(tmp_path, capsys):
    code, out, err = run(capsys, "compare", "oscillators", "--optimizers", "adam,gn,hig", "--iterations", "3",
                         "--device", "cpu", "--evaluations", "1", "--param", "steps=8", "--param", "test_size=32",
                         "--out", str(tmp_path))
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["batch_size"] == {"adam": 512, "gn": 128, "hig": 128}          # HIG paper, Table 2
    hp = summary["hyperparameters"]
    assert hp["hig"]["lr"] == 1.0 and hp["hig"]["truncation"] == 1e-6 and hp["adam"]["lr"] == 3e-4
    runs = {r["optimizer"]: r for r in summary["runs"]}
    assert runs["adam"]["status"] == runs["hig"]["status"] == "ok" and runs["hig"]["iterations"] == 3
    # GN may blow up on this short horizon (the paper calls it unstable); then the run says so, weights stay finite
    assert runs["gn"]["status"] == "ok" or runs["gn"]["status"].startswith("diverged: step")
    assert "held-out loss of adam / held-out loss of optimizer" in out    # no ground truth: loss ratios
    # --batch-size overrides every optimizer's
    code, _, err = run(capsys, "compare", "oscillators", "--optimizers", "hig", "--iterations", "1", "--device",
                       "cpu", "--evaluations", "1", "--param", "steps=8", "--param", "test_size=8",
                       "--batch-size", "4", "--out", str(tmp_path / "b4"))
    assert code == 0, err
    assert json.loads((tmp_path / "b4" / "summary.json").read_text())["batch_size"] == {"hig": 4}


def test_hig_timing_reports_parts_and_route_ratios(tmp_path, capsys):
    code, out, err = run(capsys, "hig-timing", "--setups", "oscillators", "--routes", "factored,gram,svd",
                         "--repeats", "1", "--out", str(tmp_path))
    assert code == 0, err
    rows = json.loads((tmp_path / "timing.json").read_text())["rows"]
    assert [r["route"] for r in rows] == ["factored", "gram", "svd", "adam"]
    assert all(r["total_s"] > 0 for r in rows) and rows[0]["rows"] == 128 * 4 and rows[0]["weights"] == 2956
    assert "svd/gram: total" in out and (tmp_path / "timing.txt").exists()
    code, _, err = run(capsys, "hig-timing", "--setups", "oscilators")
    assert code == 2 and "Did you mean 'oscillators'" in err


def test_component_losses_are_recorded_beside_the_loss(tmp_path, capsys):
    """quantum-dipole reports the paper's low- and high-energy losses (Fig. 4c) in the table, summary and curves."""
    code, out, err = run(capsys, "compare", "quantum-dipole", "--optimizers", "adam,hig", "--iterations", "2",
                         "--device", "cpu", "--evaluations", "1", "--param", "steps=8", "--param", "test_size=16",
                         "--out", str(tmp_path))
    assert code == 0, err
    assert "le_loss:" in out and "he_loss:" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    for r in summary["runs"]:
        assert 0 <= r["final"]["le_loss"] <= 1 and 0 <= r["final"]["he_loss"] <= 1
    rows = list(csv.DictReader((tmp_path / "curves.csv").open()))
    assert rows[0]["le_loss"] and rows[-1]["he_loss"]


def test_report_includes_benchmark_outputs(tmp_path, capsys):
    (tmp_path / "hig-timing").mkdir()
    (tmp_path / "hig-timing" / "timing.txt").write_text("setup route\nposs gram 1.0\n")
    (tmp_path / "navier-stokes").mkdir()
    (tmp_path / "navier-stokes" / "inference.txt").write_text("solver / network 123x\n")
    (tmp_path / "navier-stokes" / "step_timing.txt").write_text("PhiFlow / physopt 45x\n")
    code, out, _ = run(capsys, "report", str(tmp_path))
    assert code == 0
    text = (tmp_path / "README.md").read_text()
    assert "## Timing: hig-timing" in text and "poss gram 1.0" in text
    assert "## Inference vs iterative solver: navier-stokes" in text and "solver / network 123x" in text
    assert "## Simulation step timing: navier-stokes" in text and "PhiFlow / physopt 45x" in text


def test_python_dash_m_physopt_runs_the_command():
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "physopt", "list"], capture_output=True, text=True)
    assert proc.returncode == 0 and "navier-stokes" in proc.stdout and "hig" in proc.stdout


def test_a_run_the_physics_cannot_step_is_recorded_as_diverged(tmp_path, capsys):
    # SGD with an absurd rate makes the U-net output velocities that cross half the domain in one step
    code, _, _ = run(capsys, "compare", "navier-stokes", "--preset", "quick", "--optimizers", "sgd",
                     "--hparam", "sgd.lr=1e6", "--out", str(tmp_path), "--quiet")
    assert code == 0
    (entry,) = json.loads((tmp_path / "summary.json").read_text())["runs"]
    assert entry["status"].startswith("diverged")


def test_report_overview_orders_optimizers_as_the_files_do(tmp_path, capsys):
    def run_entry(opt, seed, x_error, status="ok"):
        return {"optimizer": opt, "seed": seed, "iterations": 10, "wall_time_s": 1.0, "status": status,
                "hyperparameters": {"lr": 1e-3}, "final": {"loss": 1.0, "x_error": x_error}}
    summary = {"problem": "toy", "device": "cpu", "torch": "x", "batch_size": 4, "seeds": [0, 1], "iterations": 10,
               "runs": [run_entry("adam", 0, 4.0), run_entry("adam", 1, 2.0), run_entry("sip", 0, 1.0),
                        run_entry("sip", 1, 3.0), run_entry("sgd", 0, 8.0), run_entry("sgd", 1, 8.0, "diverged: step 7: NaN")]}
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "summary.json").write_text(json.dumps(summary))
    assert run(capsys, "report", str(tmp_path))[0] == 0
    row = next(line for line in (tmp_path / "README.md").read_text().splitlines() if line.startswith("| [toy]"))
    assert "sip 2 < adam 3 < sgd 8" in row                # means over seeds, best first
    assert "sip 1.5x (1/2)" in row and "sgd 0.375x (0/2)" in row  # below Adam in seed 0 only; never
    assert "| sgd (1 of 2 diverged) |" in (tmp_path / "README.md").read_text()


def test_navier_stokes_step_bench_compares_with_phiflow(tmp_path, capsys):
    pytest.importorskip("phi")
    code, out, _ = run(capsys, "ns-step-bench", "--batch", "2", "--resolution", "16", "--repeats", "1",
                       "--out", str(tmp_path))
    assert code == 0 and "PhiFlow / physopt (forward step, same run):" in out
    rows = json.loads((tmp_path / "step_timing.json").read_text())["rows"]
    assert {r["implementation"] for r in rows} == {"physopt", "phiflow"} and all(r["seconds"] > 0 for r in rows)


def test_navier_stokes_inference_against_the_iterative_solver(tmp_path, capsys):
    code, out, _ = run(capsys, "ns-inference", "--train-iterations", "1", "--batch", "2",
                       "--solver-iterations", "2", "--repeats", "1", "--out", str(tmp_path))
    assert code == 0 and "ms per problem and iteration" in out
    result = json.loads((tmp_path / "inference.json").read_text())
    assert result["network"]["problems_per_second"] > 0 and len(result["solver"]["trace"]) == 2
    errors = [t["x_error"] for t in result["solver"]["trace"]]
    assert errors[1] < errors[0]


def test_tune_picks_the_best_learning_rate_and_records_it(tmp_path, capsys):
    code, out, _ = run(capsys, "tune", "exp", "--optimizer", "adam", "--lrs", "1e-6,1e-2", "--iterations", "60",
                       "--batch-size", "16", "--device", "cpu", "--out", str(tmp_path), "--quiet")
    assert code == 0 and "best lr for adam on exp: 0.01" in out
    result = json.loads((tmp_path / "exp_adam.json").read_text())
    assert result["best_lr"] == 0.01 and [r["lr"] for r in result["rows"]] == [1e-6, 1e-2]
    assert result["rows"][1]["score"] < result["rows"][0]["score"] and result["command"].startswith("physopt tune")
    assert result["validation_seed"] != 2_147_483_647          # not the held-out set that compare reports


@pytest.mark.parametrize("argv,message", [
    (["tune", "exp", "--optimizer", "adam", "--lrs", "1e-3"], "--iterations"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "fast", "--iterations", "1"], "comma-separated numbers"),
    (["tune", "exp", "--optimizer", "adam", "--lrs", "-1", "--iterations", "1"], "finite numbers > 0"),
    (["tune", "exp", "--optimizer", "adamm", "--lrs", "1e-3", "--iterations", "1"], "adam"),
])
def test_tune_bad_input_gets_a_clear_error(capsys, argv, message):
    code, _, err = run(capsys, *argv, "--out", "")
    assert code == 2 and message in err


def test_every_problem_has_the_three_presets():
    from problems import list_problems
    from problems.presets import PRESET_NAMES, PRESETS
    assert set(PRESETS) == set(list_problems())
    assert all(set(table) == set(PRESET_NAMES) for table in PRESETS.values())


def test_compare_with_a_preset_says_what_it_runs(tmp_path, capsys):
    code, out, _ = run(capsys, "compare", "poisson", "--preset", "quick", "--optimizers", "adam", "--quiet")
    assert code == 0 and "preset 'quick': 3 iterations per run, seeds [0], batch 4" in out
    assert "'resolution': 16" in out
    code, _, err = run(capsys, "compare", "poisson", "--preset", "fast")
    assert code == 2 and "Available: paper, quick, standard" in err


def test_bench_runs_every_problem_and_an_interrupted_bench_resumes(tmp_path, capsys):
    out_dir = tmp_path / "results"
    code, out, _ = run(capsys, "bench", "--preset", "quick", "--out", str(out_dir), "--quiet")
    assert code == 0
    from problems import list_problems
    for name in list_problems():
        assert (out_dir / "quick-cpu" / name / "summary.json").exists()
        assert f"## quick-cpu/{name} (cpu)" in (out_dir / "README.md").read_text()
    runs = sorted((out_dir / "quick-cpu" / "poisson" / "runs").glob("*.json"))
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    runs[-1].unlink()                                     # as if the bench had been interrupted before this run
    code, _, err = run(capsys, "bench", "--preset", "quick", "--problems", "poisson", "--out", str(out_dir))
    assert code == 0 and err.count("already finished") == len(runs) - 1
    assert runs[-1].exists()
    assert all(p.stat().st_mtime_ns == stamps[p] for p in runs[:-1])


def test_speed_table_gives_time_and_memory_ratios_to_adam(tmp_path, capsys):
    code, out, _ = run(capsys, "speed", "--preset", "quick", "--problems", "exp", "--repeats", "1",
                       "--out", str(tmp_path), "--quiet")
    assert code == 0 and "vs adam" in out
    rows = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert [r["optimizer"] for r in rows] == ["adam", "sgd", "sip"]
    assert rows[0]["time_vs_adam"] == 1.0 and all(r["step_s"] > 0 and r["note"] is None for r in rows)
    assert all(r["time_vs_adam"] == pytest.approx(r["step_s"] / rows[0]["step_s"]) for r in rows)
    code, out, _ = run(capsys, "speed", "--preset", "quick", "--problems", "poisson", "--repeats", "1",
                       "--in-process", "--quiet")
    assert code == 0 and "poisson" in out and "sip" in out


def test_runs_saved_before_batch_size_joined_the_hyperparameters_still_resume(tmp_path, capsys):
    out_dir = tmp_path / "exp"
    args = ["compare", "exp", "--optimizers", "adam", "--iterations", "3", "--batch-size", "8", "--out",
            str(out_dir), "--quiet"]
    assert run(capsys, *args)[0] == 0
    path = out_dir / "runs" / "adam_seed0.json"
    data = json.loads(path.read_text())
    del data["spec"]["hyperparameters"]["batch_size"]         # the layout of runs saved before issue 3
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, *args[:-1])
    assert code == 0 and "already finished" in err


def test_each_run_records_its_machine_and_runs_kept_from_another_machine_are_flagged(tmp_path, capsys):
    from physopt.bench.results import machine_label
    out_dir = tmp_path / "res"
    args = ["compare", "exp", "--optimizers", "adam", "--seeds", "0,1", "--time-budget", "0.3", "--device", "cpu",
            "--evaluations", "2", "--out", str(out_dir)]
    assert run(capsys, *args)[0] == 0
    summary = json.loads((out_dir / "summary.json").read_text())
    here = machine_label(summary["machine"])
    assert [r["machine"] for r in summary["runs"]] == [here, here]
    run(capsys, "report", str(tmp_path))
    assert "Runs by machine" not in (tmp_path / "README.md").read_text()   # one machine: nothing to say
    # a run kept from another machine: resuming warns (its time budget was spent elsewhere), the report says where
    path = out_dir / "runs" / "adam_seed1.json"
    data = json.loads(path.read_text())
    data["result"]["machine"] = "Other CPU, 8 torch threads"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, *args)
    assert code == 0 and "had its 0.3 s on Other CPU, 8 torch threads" in err and "adam_seed1.json" in err
    run(capsys, "report", str(tmp_path))
    report = (tmp_path / "README.md").read_text()
    assert f"Runs by machine: {here}: seeds 0; Other CPU, 8 torch threads: seeds 1" in report
