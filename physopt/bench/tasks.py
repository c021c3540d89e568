"""One (problem, optimizer, seed) run as a task that any process can execute: rebuild the problem, train, write the
run file atomically under the run's lock. ``compare`` and ``bench`` hand such tasks to an executor
(:mod:`physopt.bench.executors`) and summarise the run files when they are done.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from filelock import Timeout

from .progress import ProgressLike
from .provenance import same_version
from .storage import checkpoint_path, load_run, machine_info, machine_label, run_lock, save_run
from .train import RunResult, held_out_set, torch_threads, train_run


@dataclasses.dataclass(frozen=True)
class ProblemRecipe:
    """What rebuilds a problem in another process: its class by reference (``module:attribute``, or a registered
    name), its config, device and dtype, and the modules imported first (``--import``)."""
    reference: str
    config: Any
    device: str
    dtype: str
    imports: tuple[str, ...] = ()

    @classmethod
    def of(cls, problem: Any, portable: bool = True) -> "ProblemRecipe":
        """The recipe of ``problem``; with ``portable``, ValueError when its class cannot be found again from another
        process (without, such a class is named by its module and qualified name, for this process only)."""
        from problems import imported
        try:
            reference = class_reference(type(problem))
        except ValueError:
            if portable:
                raise
            reference = f"{type(problem).__module__}.{type(problem).__qualname__} (this process only)"
        return cls(reference, problem.config, str(problem.device), str(problem.dtype).replace("torch.", ""),
                   tuple(imported()))

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.reference, repr(self.config), self.device, self.dtype

    def build(self) -> Any:
        """The problem, built once per recipe in a worker process and reused for every run of it there."""
        if self.key not in _BUILT:
            from problems import import_modules, problem_class
            import_modules(self.imports)
            problem_cls = problem_class(self.reference)
            _BUILT[self.key] = problem_cls(self.config, device=self.device, dtype=getattr(torch, self.dtype))
        return _BUILT[self.key]


#: problems (and their held-out sets) a worker process has built, by recipe
_BUILT: dict[tuple, Any] = {}
_HELD_OUT: dict[tuple, Any] = {}


def class_reference(problem_cls: type) -> str:
    """How another process finds ``problem_cls``: ``module:attribute`` of a module attribute that is the class (its
    own name first, e.g. ``problems.poisson:PoissonProblem``, or another, e.g. ``my_physics:problem`` for a class made by
    ``problems.from_functions``), else its registered name. ValueError if neither finds it."""
    module = sys.modules.get(problem_cls.__module__)
    if module is not None:
        names = [problem_cls.__qualname__, *sorted(vars(module))]
        for attr in names:
            if "." not in attr and getattr(module, attr, None) is problem_cls:
                return f"{'__main__' if module.__name__ == '__mp_main__' else module.__name__}:{attr}"
    from problems import problem_class
    with contextlib.suppress(Exception):
        if problem_class(problem_cls.name) is problem_cls:
            return problem_cls.name
    raise ValueError(f"problem class {problem_cls.__qualname__} cannot be found from another process (it is neither "
                     f"an attribute of its module {problem_cls.__module__} nor registered): define it at the top "
                     f"level of an importable module, or train in this process (--executor local:1)")


@dataclasses.dataclass(frozen=True)
class RunTask:
    """Train one run of a comparison and write ``out/runs/OPT_seedS.json`` (when ``out`` is given).

    ``spec`` is the run's spec as ``compare`` stores it (iterations, time budget, hyperparameters, evaluations,
    held-out size); ``provenance`` the submitting command's record; ``keep_stale``: a run file another command
    finished meanwhile counts even when another physopt version made it."""
    recipe: ProblemRecipe
    optimizer: str
    seed: int
    spec: dict[str, Any]
    out: Path | None
    resume: bool
    keep_stale: bool
    provenance: dict[str, Any]
    executor: str = "local:1"
    group: int = 0          # which of the submitted comparisons it belongs to
    title: str | None = None    # that comparison's line in the log (bench: the problem and preset), if any


@dataclasses.dataclass
class Outcome:
    """What a task did: ``trained`` it, found it ``finished`` by another command meanwhile, or found the run
    ``busy`` (another command holds its lock; only when not waiting for it). ``result`` is None only when busy."""
    task: RunTask
    status: str
    result: RunResult | None = None


def run_task(task: RunTask, *, blocking: bool = True, progress: ProgressLike = None,
             local: tuple[Any, Any] | None = None) -> Outcome:
    """Execute ``task`` in this process: hold the run's lock (or return ``busy`` at once unless ``blocking``), take a
    run another command finished meanwhile, else train and save the run file atomically. ``local`` = (problem,
    held-out batch) of the submitting process, when it runs the task itself; a worker rebuilds both from the
    recipe (once per process)."""
    spec = task.spec
    with _claim(task.out, task.optimizer, task.seed, blocking) as claimed:
        if not claimed:
            return Outcome(task, "busy")
        if task.out is not None and task.resume:
            done = load_run(task.out, task.optimizer, task.seed, spec)
            if done is not None and (task.keep_stale or same_version(done.provenance)):
                return Outcome(task, "finished", done)
        if local is not None:
            problem, held_out = local
        else:
            problem = task.recipe.build()
            key = (*task.recipe.key, spec["held_out_size"])
            if key not in _HELD_OUT:
                _HELD_OUT[key] = held_out_set(problem, spec["held_out_size"])
            held_out = _HELD_OUT[key]
        if spec.get("nproc", 1) > 1:
            result = train_spread(task, spec["nproc"])
        else:
            result = train_run(problem, task.optimizer, task.seed, iterations=spec["iterations"],
                               time_budget=spec["time_budget_s"], hyperparameters=spec["hyperparameters"],
                               evaluations=spec["evaluations"], held_out=held_out, progress=progress,
                               checkpoint=None if task.out is None else checkpoint_path(task.out, task.optimizer,
                                                                                         task.seed))
        with torch_threads(spec["hyperparameters"].get("threads")):     # the run's own thread count, if it set one
            result = dataclasses.replace(result, machine=machine_label(machine_info(problem.device)),
                                         provenance=task.provenance,
                                         worker=worker_record(problem.device, task.executor))
        if task.out is not None:
            save_run(task.out, spec, result)
            checkpoint_path(task.out, task.optimizer, task.seed).unlink(missing_ok=True)
    return Outcome(task, "trained", result)


def train_spread(task: RunTask, nproc: int) -> RunResult:
    """Train ``task``'s run data-parallel on ``nproc`` fresh processes (``torch.multiprocessing.spawn``; gloo, or NCCL
    with one GPU per process where the problem is on CUDA and there are enough devices); rank 0's result."""
    import tempfile

    import torch.multiprocessing as mp
    threads = task.spec["hyperparameters"].get("threads") or max(1, torch.get_num_threads() // nproc)
    with tempfile.TemporaryDirectory(prefix="physopt-nproc-") as tmp:
        mp.spawn(_train_rank, args=(nproc, task, tmp, threads), nprocs=nproc, join=True)
        return RunResult.from_json(torch.load(Path(tmp) / "result.pt"))


def _train_rank(rank: int, world: int, task: RunTask, tmp: str, threads: int) -> None:
    import torch.distributed as dist
    torch.set_num_threads(threads)
    recipe = task.recipe
    cuda = recipe.device.startswith("cuda")
    if cuda and torch.cuda.device_count() >= world:
        recipe = dataclasses.replace(recipe, device=f"cuda:{rank}")
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank,
                            world_size=world)
    try:
        problem = recipe.build()
        spec = task.spec
        result = train_run(problem, task.optimizer, task.seed, iterations=spec["iterations"],
                           time_budget=spec["time_budget_s"], hyperparameters=spec["hyperparameters"],
                           evaluations=spec["evaluations"], held_out=held_out_set(problem, spec["held_out_size"]),
                           process_group=dist.group.WORLD)
        if rank == 0:
            torch.save(result.to_json(), Path(tmp) / "result.pt")
        gpu = [torch.device(recipe.device).index or 0] if cuda else None
        dist.barrier(device_ids=gpu)             # every message delivered before either process tears down
    finally:
        dist.destroy_process_group()


def worker_record(device: torch.device, executor: str) -> dict[str, Any]:
    """Where a run trained: host, device (with the physical GPU a worker was given), torch threads and the
    executor (e.g. ``local:2``): runs that shared cores are told apart from runs that had a machine to themselves."""
    record = {"host": platform.node(), "device": str(device),
              "torch_threads": torch.get_num_threads(), "executor": executor}
    if device.type == "cuda":
        record["gpu"] = torch.cuda.get_device_name(device)
        record["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return record


def _claim(out: Path | None, name: str, seed: int, blocking: bool):
    """A context that holds the run's lock (yields True), or yields False when another command holds it and
    ``blocking`` is off; without an output directory there is nothing to lock."""
    if out is None:
        return contextlib.nullcontext(True)
    lock = run_lock(out, name, seed)

    @contextlib.contextmanager
    def held():
        try:
            lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    return held()
