"""executors: --executor local:N trains the runs of a comparison in N worker processes, with the same results as
one process at the same torch threads, each run file written by the worker that trained it."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from physopt.bench.executors import LocalExecutor, cpu_cores, parse_executor


def test_executor_names_are_parsed_and_bad_ones_named():
    assert parse_executor("local").workers == 1 and parse_executor("local:3").workers == 3
    assert parse_executor("local:2", threads=1).worker_threads() == 1
    assert LocalExecutor(2).worker_threads() == max(1, cpu_cores() // 2)
    for bad in ("slurm:x", "pool", "local:two", "local:"):
        with pytest.raises(ValueError, match=f"unknown executor '{bad}': use local:N"):
            parse_executor(bad)
    with pytest.raises(ValueError, match="number of workers >= 1"):
        parse_executor("local:0")


def test_bad_executor_input_is_one_line_and_exit_code_2(cli):
    code, _, err = cli("compare", "exp", "--iterations", "1", "--executor", "cluster")
    assert code == 2 and "unknown executor 'cluster'" in err and "Traceback" not in err


def test_equal_wall_clock_runs_on_shared_cores_are_refused_unless_allowed(tmp_path, cli):
    args = ["compare", "exp", "--optimizers", "adam,sgd", "--time-budget", "0.2", "--executor", "local:2",
            "--evaluations", "1", "--quiet"]
    code, _, err = cli(*args)
    assert code == 2 and "--allow-shared-cores" in err and "--executor local:1" in err
    code, _, err = cli(*args, "--allow-shared-cores", "--out", str(tmp_path))
    assert code == 0, err
    workers = [json.loads(p.read_text())["result"]["worker"] for p in sorted((tmp_path / "runs").glob("*.json"))]
    assert [w["executor"] for w in workers] == ["local:2", "local:2"]


def finals(out: Path) -> dict:
    """Every run's final metrics and curve, by problem, optimizer and seed."""
    runs = {}
    for path in out.rglob("runs/*.json"):
        result = json.loads(path.read_text())["result"]
        runs[(path.parent.parent.name, result["optimizer"], result["seed"])] = (result["final"], [
            (c["iteration"], c["loss"], c["x_error"]) for c in result["curve"]])
    return runs


def test_two_workers_give_bitwise_the_results_of_one_process_at_the_same_threads(tmp_path, cli):
    common = ["bench", "--preset", "quick", "--problems", "exp,hig-toy,poisson", "--seeds", "0", "--device", "cpu",
              "--quiet"]
    assert cli(*common, "--executor", "local:1", "--threads", "1", "--out", str(tmp_path / "one"))[0] == 0
    code, _, err = cli(*common, "--executor", "local:2", "--out", str(tmp_path / "two"))
    assert code == 0, err
    one, two = finals(tmp_path / "one"), finals(tmp_path / "two")
    assert len(one) == 3 + 7 + 3 and one == two
    for problem in ("exp", "hig-toy", "poisson"):
        summary = json.loads((tmp_path / "two" / "quick-cpu" / problem / "summary.json").read_text())
        assert len(summary["runs"]) == len(summary["optimizers"])
        assert all(r["worker"]["executor"] == "local:2" and r["worker"]["torch_threads"] == 1
                   for r in summary["runs"])
    assert (tmp_path / "two" / "README.md").exists()


def test_killing_the_submitter_loses_no_finished_run_and_the_same_command_completes(tmp_path, group_alive):
    """kill -9 of the submitting process while two workers train: the same command again keeps the finished run files
    byte for byte, retrains the rest, and writes a complete summary; no JSON file is ever truncated."""
    out = tmp_path / "res"
    argv = [sys.executable, "-m", "physopt", "compare", "poisson", "--param", "resolution=16", "--optimizers",
            "adam,sgd,sip", "--seeds", "0,1", "--iterations", "40", "--batch-size", "8", "--evaluations", "2",
            "--executor", "local:2", "--out", str(out), "--quiet"]
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / "runs").glob("*.json"))) < 1:
        time.sleep(0.2)
    assert list((out / "runs").glob("*.json")), "no run finished in time"
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    kept = {p.name: p.read_bytes() for p in (out / "runs").glob("*.json")}
    for data in kept.values():
        json.loads(data)                                                   # complete JSON, never truncated
    again = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    for name, data in kept.items():
        assert (out / "runs" / name).read_bytes() == data
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["runs"]) == 6 and {r["status"] for r in summary["runs"]} == {"ok"}
    for path in (out / "runs").glob("*.json"):
        json.loads(path.read_text())
    os.killpg(first.pid, signal.SIGKILL) if group_alive(first.pid) else None


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_every_worker_at_once_and_summarises_the_finished_runs(tmp_path):
    """A worker catches its task's KeyboardInterrupt and would go on with the next run: Ctrl-C must stop them all."""
    out = tmp_path / "res"
    argv = [sys.executable, "-m", "physopt", "compare", "exp", "--optimizers", "adam,sgd,sip", "--seeds", "0,1",
            "--iterations", "3000", "--executor", "local:2", "--out", str(out)]
    # as in a terminal: SIGINT at its default even when the tests themselves run as a background job, which
    # starts with SIGINT ignored (then Python installs no KeyboardInterrupt handler and Ctrl-C would be a no-op)
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, preexec_fn=_default_sigint)
    deadline = time.time() + 240
    while time.time() < deadline and not list((out / "runs").glob("*.json")):
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGINT)                    # what Ctrl-C does: the whole foreground group
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130 and "finished runs are saved" in err
    finished = sorted(p.name for p in (out / "runs").glob("*.json"))
    time.sleep(4)
    assert sorted(p.name for p in (out / "runs").glob("*.json")) == finished      # nobody trains on
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(f"{r['optimizer']}_seed{r['seed']}.json" for r in summary["runs"]) == finished
    assert 1 <= len(finished) < 6
