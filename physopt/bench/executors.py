"""Where the runs of a comparison train: ``--executor local:N`` (here) or ``--executor slurm`` (:mod:`.slurm`).

An executor has a ``name`` (recorded in every run file), ``in_process``, ``worker_threads()``, ``check(device,
time_budget)`` (ValueError before anything trains) and ``run(tasks, report, local)``, which yields an
:class:`~physopt.bench.tasks.Outcome` per task as it is done.

``local:1`` (the default) trains every run in the submitting process, one after the other, with a progress bar.
``local:N`` hands the runs to a pool of N worker processes (``concurrent.futures.ProcessPoolExecutor``, started with
``spawn``): each worker gets ``cores // N`` torch threads (or ``threads``) so workers do not oversubscribe the cores,
and, when the problem is on CUDA and the machine has at least N GPUs, one GPU of its own through
``CUDA_VISIBLE_DEVICES``. Each task writes its own run file atomically (:func:`physopt.bench.tasks.run_task`); the
submitting process summarises. A run's result depends on its torch thread count on the CPU (reductions are split
per thread), so ``local:2`` reproduces ``local:1 --threads 1`` bitwise, not ``local:1`` with two threads.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import multiprocessing
import os
import re
from typing import Any, Iterable, Iterator, Protocol

import torch

from .progress import NoProgress, Progress, WorkerProgress
from .stop import guard_worker
from .tasks import Outcome, RunTask, run_task
from .train import torch_threads


class Executor(Protocol):
    """What ``compare`` and ``bench`` need of an executor (:class:`LocalExecutor`, ``slurm.SlurmExecutor``)."""
    name: str
    in_process: bool

    def worker_threads(self) -> int: ...
    def check(self, device: torch.device, time_budget: float | None) -> None: ...
    def run(self, tasks: Iterable[RunTask], report: Progress,
            local: dict[tuple, tuple[Any, Any]] | None = None) -> Iterator[Outcome]: ...


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a Slurm allocation), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class LocalExecutor:
    """``local:N``: N worker processes on this machine (N = 1: this process).

    Args:
        workers: number of runs that train at once.
        threads: torch threads per run (default: this process's setting for one worker, ``cores // workers`` for
            several).
        allow_shared_cores: permit several CPU workers for equal-wall-clock runs (``time_budget``), which are
            unfair when runs share cores; refused without it.
    """

    def __init__(self, workers: int = 1, threads: int | None = None, allow_shared_cores: bool = False):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"the local executor takes a number of workers >= 1, got {workers!r}")
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads takes an integer >= 1 (torch threads per run), got {threads!r}")
        self.workers, self.threads, self.allow_shared_cores = workers, threads, allow_shared_cores

    @property
    def name(self) -> str:
        return f"local:{self.workers}"

    @property
    def in_process(self) -> bool:
        """Whether the runs train in the submitting process (then it hands them its problems and held-out sets)."""
        return self.workers == 1

    def worker_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return torch.get_num_threads() if self.workers == 1 else max(1, cpu_cores() // self.workers)

    def gpus_for(self, device: torch.device) -> int:
        """How many GPUs the workers are spread over (0: none of their own, the device is shared or a CPU)."""
        if self.workers == 1 or device.type != "cuda":
            return 0
        count = torch.cuda.device_count()
        return count if count >= self.workers else 0

    def check(self, device: torch.device, time_budget: float | None) -> None:
        """ValueError when runs with a time budget would share cores (or one GPU) without ``allow_shared_cores``."""
        if time_budget and self.workers > 1 and not self.gpus_for(device) and not self.allow_shared_cores:
            where = "one GPU" if device.type == "cuda" else f"{cpu_cores()} CPU cores"
            raise ValueError(f"equal-wall-clock runs (--time-budget) on {self.workers} local workers would share "
                             f"{where}, so each run gets an unknown share of the time: use --executor local:1, one "
                             f"GPU per worker, or --allow-shared-cores to accept it")

    def run(self, tasks: Iterable[RunTask], report: Progress,
            local: dict[tuple, tuple[Any, Any]] | None = None) -> Iterator[Outcome]:
        """Execute ``tasks``; yield each outcome as it is done. Runs another command is training are waited for
        last. ``local`` maps a recipe key to (problem, held-out batch) for the runs this process trains itself."""
        tasks = list(tasks)
        if not tasks:
            return
        if self.workers == 1:
            yield from self._in_process(tasks, report, local or {})
        else:
            yield from self._pool(tasks, report)

    def _in_process(self, tasks: list[RunTask], report: Progress, local: dict) -> Iterator[Outcome]:
        with torch_threads(self.worker_threads()):
            title = None
            for blocking in (False, True):
                waiting = []
                for task in tasks:
                    if task.title and task.title != title:
                        title = task.title
                        report.log(title)
                    outcome = run_task(task, blocking=blocking, progress=report, local=local.get(task.recipe.key))
                    if outcome.status == "busy":
                        waiting.append(task)
                    else:
                        yield outcome
                tasks = waiting

    def _pool(self, tasks: list[RunTask], report: Progress) -> Iterator[Outcome]:
        context = multiprocessing.get_context("spawn")
        device = torch.device(tasks[0].recipe.device)
        gpus = self.gpus_for(device)
        slots = context.Queue()
        for i in range(self.workers):
            slots.put(i % gpus if gpus else None)
        if gpus:                                        # each worker sees its own GPU as its only one
            tasks = [dataclasses.replace(t, recipe=dataclasses.replace(t.recipe, device="cuda")) for t in tasks]
        threads = self.worker_threads()
        report.log(f"  {len(tasks)} runs on {self.workers} worker processes, {threads} torch threads each"
                   + (f", one GPU each of {gpus}" if gpus else ""))
        pool = futures.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_start_worker,
                                           initargs=(threads, slots))
        try:
            quiet = type(report) is NoProgress          # --quiet: the workers say nothing either

            def submit(task: RunTask, blocking: bool) -> futures.Future:
                progress = None if quiet else WorkerProgress(task.spec["problem"])
                return pool.submit(run_task, task, blocking=blocking, progress=progress)

            pending = {submit(task, False): task for task in tasks}
            while pending:
                done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    task = pending.pop(future)
                    outcome = future.result()           # a run that raised stops the command, as in one process
                    if outcome.status == "busy":        # another command trains it: wait for that one
                        pending[submit(task, True)] = task
                        continue
                    if outcome.status == "trained":
                        report.log(f"  {task.spec['problem']}: {task.optimizer} seed {task.seed} trained, "
                                   f"{_final(outcome)}")
                    yield outcome
        except BaseException:                          # Ctrl-C or a run that raised: stop every worker now
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def stop_pool(pool: futures.ProcessPoolExecutor) -> None:
    """Cancel what has not started and terminate the workers (SIGTERM): each saves its run's checkpoint at the end of
    its current step and exits (:func:`physopt.bench.stop.guard_worker`), releasing the run's lock; the same command
    continues those runs."""
    terminate = getattr(pool, "terminate_workers", None)        # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())   # shutdown() forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


def _final(outcome: Outcome) -> str:
    r = outcome.result
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in r.final.items() if v is not None and k in ("loss", "x_error"))
    return f"{r.iterations} iterations in {r.wall_time_s:.1f} s, {metrics} ({r.status.split(':')[0]})"


def _start_worker(threads: int, slots: Any) -> None:
    """A worker's setup, before any run: how it stops (:func:`~physopt.bench.stop.guard_worker`), its torch threads
    and, when GPUs are spread over workers, its GPU."""
    guard_worker()
    gpu = slots.get()
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    torch.set_num_threads(threads)


def parse_executor(text: str, threads: int | None = None, allow_shared_cores: bool = False,
                   slurm: dict[str, Any] | None = None):
    """``local`` / ``local:N`` -> a :class:`LocalExecutor`; ``slurm`` -> a :class:`physopt.bench.slurm.SlurmExecutor`
    built from ``slurm`` (its keyword arguments, e.g. ``folder``, ``partition``); ValueError naming the accepted forms
    otherwise."""
    text = text.strip()
    if text == "slurm":
        from .slurm import SlurmExecutor
        if not slurm or "folder" not in slurm:
            raise ValueError("--executor slurm writes every run into --out, which the compute nodes must share: give "
                             "--out DIR")
        return SlurmExecutor(**slurm)
    match = re.fullmatch(r"local(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"unknown executor '{text}': use local:N (N worker processes on this machine, e.g. "
                         f"local:2; local:1 trains in this process) or slurm (a Slurm job array)")
    return LocalExecutor(int(match.group(1) or 1), threads=threads, allow_shared_cores=allow_shared_cores)
