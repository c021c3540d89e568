"""Faults the bench survives: kill -9 in the middle of a comparison, and two commands writing one directory at once.

These start real `python -m physopt` processes."""
import json
import os
import signal
import subprocess
import sys
import time

COMMAND = ["compare", "exp", "--optimizers", "adam,sgd", "--seeds", "0,1", "--batch-size", "8", "--device", "cpu",
           "--evaluations", "2"]


def physopt(out, iterations, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "physopt", *COMMAND, "--iterations", str(iterations), "--out",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_kill_9_mid_run_then_the_same_command_resumes_with_finished_runs_byte_identical(tmp_path):
    proc = physopt(tmp_path, 300)
    runs = tmp_path / "runs"
    deadline = time.monotonic() + 120
    while not list(runs.glob("*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.read_bytes() for p in runs.glob("*.json")}
    assert 1 <= len(finished) < 4, "the kill came too late or too early to test a resume"
    for content in finished.values():
        json.loads(content)                                        # every file on disk is complete
    again = physopt(tmp_path, 300)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert err.count("already finished") == len(finished)
    assert {p.name: p.read_bytes() for p in runs.glob("*.json") if p.name in finished} == finished
    assert len(json.loads((tmp_path / "summary.json").read_text())["runs"]) == 4
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_two_commands_writing_one_directory_train_each_run_once_and_leave_a_complete_summary(tmp_path):
    first, second = physopt(tmp_path, 30), physopt(tmp_path, 30)
    logs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, [err for _, err in logs]
    skipped = sum(err.count("skipped") for _, err in logs)
    assert skipped == 4, "each of the 4 runs is trained by one command and skipped by the other"
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert sorted((r["optimizer"], r["seed"]) for r in summary["runs"]) == sorted(
        (o, s) for o in ("adam", "sgd") for s in (0, 1))
    for run in (tmp_path / "runs").glob("*.json"):
        json.loads(run.read_text())
