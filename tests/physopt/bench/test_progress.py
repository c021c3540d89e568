"""Progress of long commands: plain lines for logs, a tqdm bar on a terminal, silence when asked."""
import sys
import time

import pytest

from physopt.bench.progress import (BarProgress, LineProgress, NoProgress, WorkerProgress, as_progress,
                                   terminal_progress)


def test_plain_lines_name_the_run_its_iteration_time_and_metrics():
    lines = []
    p = LineProgress(lines.append)
    p.start("adam      seed 0", 300, None)
    p.update(30, 1.25, "loss 0.5")
    p.log("skipped")
    assert lines == ["  adam      seed 0  it     30/300      1.2s  loss 0.5", "skipped"]


def test_a_callable_becomes_plain_lines_and_none_silence():
    lines = []
    as_progress(lines.append).log("x")
    assert lines == ["x"] and isinstance(as_progress(None), NoProgress)
    with pytest.raises(TypeError, match="progress"):
        as_progress(42)


def test_the_bar_counts_iterations_or_seconds(capsys):
    pytest.importorskip("tqdm")
    bar = BarProgress()
    bar.start("hig seed 0", None, 10.0)       # a time budget: the bar counts training seconds
    bar.update(5, 4.0, "loss 1")
    assert bar.bar.n == 4.0 and bar.bar.total == 10.0
    bar.start("adam seed 0", 100, None)
    bar.update(20, 1.0, "loss 2")
    assert bar.bar.n == 20 and bar.bar.total == 100
    bar.finish()
    assert "adam seed 0" in capsys.readouterr().err


def test_off_a_terminal_the_cli_writes_plain_lines_and_quiet_writes_nothing():
    assert isinstance(terminal_progress(quiet=True), NoProgress)
    assert isinstance(terminal_progress(), LineProgress)      # pytest captures stderr: not a terminal


def test_a_worker_names_its_problem_says_when_a_run_starts_and_reports_at_most_every_few_seconds(capsys):
    import pickle

    from physopt.bench.progress import WorkerProgress
    progress = pickle.loads(pickle.dumps(WorkerProgress("heat", every_s=3600)))   # it travels to a worker process
    progress.start("adam      seed 1", 100, None)
    for it in range(1, 5):
        progress.update(it, 0.1 * it, "loss 1")
    progress.last = time.monotonic() - 3600     # an hour later (not 0.0: monotonic() counts from boot, which may
                                                # be less than an hour ago)
    progress.update(5, 0.5, "loss 0.5")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["  heat: adam seed 1 started", "  heat: adam seed 1  it 5/100  0.5s  loss 0.5"]


def test_a_worker_writes_each_line_whole_so_two_workers_on_one_stderr_never_share_a_line(monkeypatch):
    """print() writes a line's text and its newline separately; two workers' lines then interleaved."""
    writes = []

    class Recorder:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Recorder())
    WorkerProgress("exp").start("adam seed 0", None, 8.0)
    assert writes == ["  exp: adam seed 0 started\n"]
