"""stop: a run asked to stop (SIGTERM, or its submitting process gone) stops between two steps with its checkpoint
saved, and the same command continues it; a pool's workers never train on alone after their submitter died."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from physopt.bench.stop import STOP, Stopped
from physopt.bench.storage import checkpoint_path
from physopt.bench.train import train_run


@pytest.fixture(autouse=True)
def no_request_left():
    STOP.clear()
    yield
    STOP.clear()


def test_a_run_asked_to_stop_saves_at_a_step_boundary_and_continues_bitwise_the_same(tmp_path):
    from problems import get_problem
    p = get_problem("exp")
    common = dict(iterations=8, batch_size=8, evaluations=8, held_out=p.sample(16, torch.Generator().manual_seed(5)))
    whole = train_run(p, "adam", 1, **common)
    ckpt = tmp_path / "run.partial.pt"

    def ask_at_5(it, metrics):                     # as a signal handler would: mid-run, from outside the loop
        if it == 5:
            STOP.ask()

    with pytest.raises(Stopped, match="adam seed 1 stopped at iteration 5"):
        train_run(p, "adam", 1, **common, checkpoint=ckpt, checkpoint_every_s=3600.0, on_evaluation=ask_at_5)
    assert STOP.handled.is_set() and STOP.training == 0
    assert torch.load(ckpt, weights_only=False)["iteration"] == 5      # saved on the stop, not on the hour
    assert issubclass(Stopped, KeyboardInterrupt)           # handled like Ctrl-C: summaries, exit code
    STOP.clear()
    resumed = train_run(p, "adam", 1, **common, checkpoint=ckpt)
    assert resumed.final == whole.final
    assert [(c.iteration, c.loss, c.x_error) for c in resumed.curve] == [(c.iteration, c.loss, c.x_error)
                                                                         for c in whole.curve]


def test_a_run_without_a_checkpoint_stops_too_and_does_not_claim_one():
    from problems import get_problem
    p, lines = get_problem("exp"), []
    STOP.ask()
    with pytest.raises(Stopped, match="stopped at iteration 0"):
        train_run(p, "sgd", 0, iterations=5, batch_size=4, evaluations=1, progress=lines.append)
    assert STOP.training == 0
    assert any("sgd seed 0: stopped at iteration 0" in line for line in lines)
    assert not any("checkpoint" in line for line in lines)


def _physopt(argv, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "physopt", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)


def _wait_for_lines(stream, text, count, timeout=240.0) -> list[str]:
    seen, deadline = [], time.time() + timeout
    while time.time() < deadline and sum(text in line for line in seen) < count:
        line = stream.readline()
        if not line:
            break
        seen.append(line)
    assert sum(text in line for line in seen) >= count, "".join(seen)
    return seen


def test_workers_stop_with_their_checkpoints_when_the_submitter_is_killed_and_the_command_continues(
        tmp_path, group_alive):
    """kill -9 of the submitting process: its two workers notice within a second or two, save their runs'
    checkpoints at a step boundary and exit (they used to train on alone until their runs ended)."""
    out = tmp_path / "res"
    argv = ["compare", "exp", "--optimizers", "adam,sgd", "--seeds", "0", "--time-budget", "8",
            "--allow-shared-cores", "--batch-size", "8", "--evaluations", "2", "--executor", "local:2",
            "--out", str(out)]
    first = _physopt(argv)
    _wait_for_lines(first.stderr, "started", 2)
    time.sleep(1.0)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    deadline = time.time() + 30
    while time.time() < deadline and group_alive(first.pid):
        time.sleep(0.2)
    alive = group_alive(first.pid)
    if alive:
        os.killpg(first.pid, signal.SIGKILL)
    assert not alive, "the workers trained on after their submitting process died"
    log = first.stderr.read()
    assert log.count("checkpoint saved") == 2, log
    for optimizer in ("adam", "sgd"):
        assert checkpoint_path(out, optimizer, 0).exists()
        assert not (out / "runs" / f"{optimizer}_seed0.json").exists()
    again = subprocess.run([sys.executable, "-m", "physopt", *argv], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("continued from its checkpoint") == 2, again.stderr
    assert (out / "runs" / "adam_seed0.json").exists() and (out / "runs" / "sgd_seed0.json").exists()


def test_sigterm_stops_a_run_in_this_process_at_a_step_boundary_with_its_checkpoint_and_exit_code_143(tmp_path):
    out = tmp_path / "res"
    first = _physopt(["compare", "exp", "--optimizers", "adam", "--seeds", "0", "--iterations", "100000000",
                      "--batch-size", "8", "--evaluations", "100000", "--out", str(out)])
    time.sleep(0.5)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("*")) and first.poll() is None:
        time.sleep(0.2)
    time.sleep(3.0)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143, err
    assert "stopped at iteration" in err and "terminated; finished runs are saved" in err
    saved = torch.load(checkpoint_path(out, "adam", 0), weights_only=False)
    assert saved["iteration"] > 0


def test_the_cli_puts_the_previous_sigterm_handler_back(cli):
    before = signal.getsignal(signal.SIGTERM)
    assert cli("list")[0] == 0
    assert signal.getsignal(signal.SIGTERM) is before
