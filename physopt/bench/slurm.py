"""``--executor slurm``: the runs of a comparison as one Slurm job array, submitted through submitit
(``pip install 'physopt[slurm]'``).

Each array task trains one run with :func:`physopt.bench.tasks.run_task` and writes its run file into the output
directory, which must be on a file system the compute nodes share; submitit's pickles and each task's stdout/stderr
go to ``OUT/slurm/``. The submitting command waits for the array and writes the summaries; if it is stopped, the
jobs go on, and the same command run again takes the runs they finished (and waits, through the runs' file locks,
for those still training) instead of training them twice.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from .progress import Progress
from .tasks import Outcome, RunTask, run_task

#: what to install when submitit is missing
EXTRA = "pip install 'physopt[slurm]'  (or: pip install submitit)"


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ValueError(f"--executor slurm needs submitit, which is not installed: {EXTRA}") from None
    return submitit


class SlurmExecutor:
    """Runs as a Slurm job array.

    Args:
        folder: where submitit writes its pickles and the tasks' logs (``OUT/slurm``).
        partition: the Slurm partition (``--slurm-partition``; default: the cluster's).
        time_min: time limit of each task in minutes (``--slurm-time``).
        gpus_per_task: GPUs per task (``--slurm-gpus-per-task``).
        cpus_per_task: CPU cores per task (``--slurm-cpus-per-task``); the run's torch threads.
        dry_run: print the submission (the sbatch script and the runs) instead of submitting.
        cluster: submitit's executor; None = Slurm (refused where ``sbatch`` is missing). The tests pass ``"local"``
            (each task a subprocess) or ``"debug"`` (in this process): the same code path without a cluster.
    """

    in_process = False
    workers = None

    def __init__(self, folder: str | Path, *, partition: str | None = None, time_min: int = 60,
                 gpus_per_task: int | None = None, cpus_per_task: int | None = None, dry_run: bool = False,
                 cluster: str | None = None, array_parallelism: int = 256):
        for name, value in (("time_min", time_min), ("array_parallelism", array_parallelism)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"slurm {name} takes an integer >= 1, got {value!r}")
        for name, value in (("gpus_per_task", gpus_per_task), ("cpus_per_task", cpus_per_task)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"slurm {name} takes an integer >= 0, got {value!r}")
        self.folder = Path(folder)
        self.partition, self.time_min = partition, time_min
        self.gpus_per_task, self.cpus_per_task = gpus_per_task, cpus_per_task
        self.dry_run, self.cluster, self.array_parallelism = dry_run, cluster, array_parallelism

    @property
    def name(self) -> str:
        return "slurm" if self.cluster is None else f"slurm ({self.cluster})"

    def worker_threads(self) -> int:
        return self.cpus_per_task or torch.get_num_threads()

    def check(self, device: torch.device, time_budget: float | None) -> None:
        """ValueError when submitit is missing or, unless this is a dry run or a test cluster, Slurm is."""
        if self.dry_run:
            return
        _submitit()
        if self.cluster is None and shutil.which("sbatch") is None:
            raise ValueError("--executor slurm: no Slurm on this machine (sbatch not found); --slurm-dry-run prints "
                             "the submission without submitting, --executor local:N trains here")

    def parameters(self) -> dict[str, Any]:
        """submitit's AutoExecutor parameters."""
        params: dict[str, Any] = {"name": "physopt", "timeout_min": self.time_min,
                                  "slurm_array_parallelism": self.array_parallelism}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.cpus_per_task:
            params["cpus_per_task"] = self.cpus_per_task
        if self.gpus_per_task:
            params["slurm_gpus_per_task"] = self.gpus_per_task
        return params

    def submission(self, tasks: list[RunTask]) -> str:
        """The sbatch script of the job array and the runs it trains (what ``--slurm-dry-run`` prints)."""
        return self.script([f"{t.spec['problem']} {t.optimizer} seed {t.seed} -> {t.out}" for t in tasks], "runs")

    def script(self, items: list[str], what: str) -> str:
        """The sbatch script of a job array whose task i does ``items[i]`` (submitit's own script, as it would
        submit it), headed by the list."""
        lines = [f"# {len(items)} {what} as one Slurm job array (task i does item i); logs and pickles in "
                 f"{self.folder}"]
        lines += [f"#   {i}: {item}" for i, item in enumerate(items)]
        try:
            from submitit.slurm.slurm import _make_sbatch_string
            script = _make_sbatch_string(
                command=f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(self.folder))}",
                folder=self.folder, job_name="physopt",
                partition=self.partition, time=self.time_min, cpus_per_task=self.cpus_per_task,
                gpus_per_task=self.gpus_per_task, map_count=len(items), array_parallelism=self.array_parallelism)
        except ImportError:
            script = (f"#SBATCH --array=0-{len(items) - 1}%{self.array_parallelism}\n#SBATCH --time={self.time_min}"
                      + (f"\n#SBATCH --partition={self.partition}" if self.partition else "")
                      + (f"\n#SBATCH --cpus-per-task={self.cpus_per_task}" if self.cpus_per_task else "")
                      + (f"\n#SBATCH --gpus-per-task={self.gpus_per_task}" if self.gpus_per_task else "")
                      + f"\n# (install submitit for the full script: {EXTRA})")
        return "\n".join(lines) + "\n" + script

    def submit(self, fn: Any, items: list[Any], report: Progress, what: str) -> Iterator[Any]:
        """Submit ``fn(item)`` for every item as one job array; yield each result as its task finishes."""
        submitit = _submitit()
        self.folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(folder=self.folder, cluster=self.cluster or "slurm")
        executor.update_parameters(**self.parameters())
        jobs = executor.map_array(fn, items)
        array = jobs[0].job_id.split("_")[0]
        report.log(f"  submitted {len(jobs)} {what} as job array {array} ({self.name}); logs in {self.folder}")
        try:
            for job in submitit.helpers.as_completed(jobs):
                yield job.result()          # a task that raised raises here, with the task's traceback
        except KeyboardInterrupt:
            report.log(f"  stopped waiting: the submitted jobs go on (scancel {array} stops them); the same command "
                       f"again collects what they finish")
            raise

    def run(self, tasks: Iterable[RunTask], report: Progress,
            local: dict[tuple, tuple[Any, Any]] | None = None) -> Iterator[Outcome]:
        tasks = list(tasks)
        if not tasks:
            return
        if self.dry_run:
            print(self.submission(tasks))
            report.log(f"  --slurm-dry-run: nothing submitted ({len(tasks)} runs)")
            return
        for outcome in self.submit(train_on_node, tasks, report, "runs"):
            if outcome.status == "trained":
                report.log(f"  {outcome.task.spec['problem']}: {outcome.task.optimizer} seed {outcome.task.seed} "
                           f"trained on {(outcome.result.worker or {}).get('host')}")
            yield outcome


def train_on_node(task: RunTask) -> Outcome:
    """One array task: torch threads = the cores Slurm gave it, then the run (waiting for its lock if another
    command holds it)."""
    cores = os.environ.get("SLURM_CPUS_PER_TASK")
    if cores and cores.isdigit():
        torch.set_num_threads(int(cores))
    return run_task(task, blocking=True)
