"""slurm: --executor slurm submits the runs as one job array through submitit; here through submitit's local
executor (each task a subprocess: the same code path without a cluster) and as a dry run."""
import json
import sys

import pytest

from physopt.bench import compare
from physopt.bench.slurm import SlurmExecutor
from problems import get_problem

pytest.importorskip("submitit")


def test_a_dry_run_prints_the_job_arrays_script_and_writes_nothing(tmp_path, cli):
    code, out, err = cli("compare", "exp", "--optimizers", "adam,sgd", "--seeds", "0,1", "--iterations", "3",
                         "--executor", "slurm", "--slurm-dry-run", "--slurm-partition", "gpu", "--slurm-time", "30",
                         "--slurm-gpus-per-task", "1", "--slurm-cpus-per-task", "8", "--out", str(tmp_path / "res"))
    assert code == 0, err
    for line in ("#SBATCH --array=0-3%", "#SBATCH --partition=gpu", "#SBATCH --time=30", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --job-name=physopt", "-m submitit.core._submit",
                 f"#SBATCH --output={tmp_path / 'res' / 'slurm'}/", "#   3: exp sgd seed 1 -> "):
        assert line in out, line
    assert "nothing submitted (4 runs)" in err
    assert not (tmp_path / "res" / "runs").exists() and not (tmp_path / "res" / "summary.json").exists()


def test_runs_train_as_array_tasks_and_equal_the_runs_of_one_process(tmp_path):
    problem = get_problem("exp")
    executor = SlurmExecutor(tmp_path / "array" / "slurm", cluster="local", time_min=5)
    summary = compare(problem, ["adam", "sip"], iterations=4, batch_size=8, evaluations=2, out=tmp_path / "array",
                      executor=executor)
    here = compare(problem, ["adam", "sip"], iterations=4, batch_size=8, evaluations=2, out=tmp_path / "here")
    assert [r["worker"]["executor"] for r in summary["runs"]] == ["slurm (local)"] * 2
    assert [(r["optimizer"], r["final"]) for r in summary["runs"]] == [(r["optimizer"], r["final"])
                                                                        for r in here["runs"]]
    assert list((tmp_path / "array" / "slurm").glob("*_log.out"))                # the tasks' logs, under --out
    for path in (tmp_path / "array" / "runs").glob("*.json"):
        assert json.loads(path.read_text())["result"]["worker"]["executor"] == "slurm (local)"


@pytest.mark.parametrize("argv, words", [
    (["--executor", "slurm", "--out", "OUT"], "no Slurm on this machine (sbatch not found); --slurm-dry-run"),
    (["--executor", "slurm"], "--executor slurm writes every run into --out"),
    (["--slurm-partition", "gpu"], "--slurm-partition applies to --executor slurm only"),
    (["--executor", "slurm", "--out", "OUT", "--slurm-time", "0"], "--slurm-time"),
])
def test_bad_slurm_input_is_one_line_and_exit_code_2(argv, words, cli, tmp_path, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    argv = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    code, _, err = cli("compare", "exp", "--iterations", "1", *argv)
    assert code == 2 and words in err and "Traceback" not in err


def test_without_submitit_the_slurm_executor_says_which_extra_to_install(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)                  # import submitit raises ImportError
    code, _, err = cli("compare", "exp", "--iterations", "1", "--executor", "slurm", "--out", str(tmp_path))
    assert code == 2 and "pip install 'physopt[slurm]'" in err
