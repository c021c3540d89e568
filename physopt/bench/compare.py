"""Compare optimizers on one problem: same initial weights and data per seed, results written as runs finish."""
from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from physopt.validation import check_integer

from .executors import Executor, LocalExecutor
from .methods import check_settings, get_method, resolve_hyperparameters, settings_by_method
from .plots import plot_curves
from .progress import Progress, ProgressLike, as_progress
from .provenance import physopt_version, provenance, same_version, version_of
from .storage import (difference, file_stem, load_run, machine_info, machine_label, run_path, same_run, setting,
                      stored_runs, summary_lock, write_summary)
from .tasks import Outcome, ProblemRecipe, RunTask
from .train import RunResult, check_batch_memory, check_seed, held_out_set


def compare(problem, optimizers: Sequence[str], *, seeds: Sequence[int] = (0,), iterations: int | None = None,
            time_budget: float | None = None, batch_size: int | None = None,
            hyperparameters: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
            resume: bool = True, evaluations: int = 30, held_out_size: int | None = None, command: str | None = None,
            progress: ProgressLike = None, force: bool = False, check_only: bool = False,
            keep_stale: bool = False, executor: Executor | None = None, nproc: int = 1) -> dict[str, Any] | None:
    """Train every optimizer for every seed and return the summary (also written to ``out`` when given).

    With ``resume`` a run already in ``out/runs/`` with identical settings is loaded instead of retrained, if this
    physopt version made it (its file's ``provenance``); a run made by another version, or before versions were
    recorded, is retrained (said in the log) unless ``keep_stale`` keeps it (also said). Every run is evaluated on one
    held-out set of ``held_out_size`` examples (default: the problem's benchmark settings).

    Nothing finished is lost or silently replaced: the summary describes every finished run in ``out`` (runs of other
    optimizers or seeds made with the same setting join it), and a run file made with other settings (or one that
    cannot be read) stops the command before anything trains, unless ``force`` says to replace it; runs of other
    optimizers or seeds made by another physopt version stay out of the summary unless ``keep_stale``. When nothing new
    was trained and ``out/summary.json`` already describes these runs, no file is rewritten. ``check_only`` stops
    after these checks (returns None): a suite checks every problem's directory before the first run trains.

    The runs train on ``executor`` (default: this process, one after the other; ``LocalExecutor(2)``: two worker
    processes), each writing its own run file; this process writes the summary. ``nproc`` > 1 trains every run
    data-parallel on that many processes (torch.distributed; ``batch_size`` per process, see
    :func:`physopt.bench.train.train_run`).
    """
    comparison = prepare(problem, optimizers, seeds=seeds, iterations=iterations, time_budget=time_budget,
                         batch_size=batch_size, hyperparameters=hyperparameters, out=out, resume=resume,
                         evaluations=evaluations, held_out_size=held_out_size, command=command, force=force,
                         keep_stale=keep_stale, executor=executor, nproc=nproc)
    if check_only:
        return None
    return run_comparisons([comparison], progress)[0]


def prepare(problem, optimizers: Sequence[str], *, seeds: Sequence[int] = (0,), iterations: int | None = None,
            time_budget: float | None = None, batch_size: int | None = None,
            hyperparameters: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
            resume: bool = True, evaluations: int = 30, held_out_size: int | None = None, command: str | None = None,
            force: bool = False, keep_stale: bool = False,
            executor: Executor | None = None, nproc: int = 1) -> "Comparison":
    """Every check of :func:`compare` (same arguments), before anything trains; the comparison to run."""
    executor = executor or LocalExecutor()
    if not optimizers:
        raise ValueError("give at least one optimizer")
    methods = [get_method(o) for o in optimizers]
    check_integer("nproc", nproc, low=1)
    if nproc > 1 and time_budget is not None:
        raise ValueError("--nproc trains for --iterations, not a --time-budget (the processes could stop at "
                         "different iterations)")
    if nproc > 1 and any(m.resolve is not None for m in methods):
        raise ValueError("a schedule (adam>hig@...) is not spread over processes; drop --nproc for it")
    for m in methods:
        if m.needs_inverse and not problem.has_inverse:
            raise ValueError(f"optimizer '{m.name}' needs an inverse update, which problem '{problem.name}' does "
                             f"not define")
    names = [m.name for m in methods]
    for seed in seeds:
        check_seed(seed)
    for what, values in (("optimizer", names), ("seed", list(seeds))):
        repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
        if repeated:
            raise ValueError(f"{what}s must be distinct, got {repeated} more than once (a repeat would be counted as "
                             f"an independent run)")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        _distinct_files(names)
    hyperparameters = settings_by_method(methods, hyperparameters or {})
    resolved = {m.name: resolve_hyperparameters(m, problem, hyperparameters.get(m.name), batch_size) for m in methods}
    for m in methods:
        check_settings(m, problem, resolved[m.name])                     # an unknown setting fails here, not later
    batch_sizes = {name: hp["batch_size"] for name, hp in resolved.items()}
    check_batch_memory(problem, max(batch_sizes.values()))
    header = {
        "problem": problem.name,
        "config": dataclasses.asdict(problem.config),
        "device": str(problem.device),
        "dtype": str(problem.dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "machine": machine_info(problem.device),
        "provenance": provenance(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "batch_size": batch_sizes,
        "iterations": iterations,
        "time_budget_s": time_budget,
        "seeds": list(seeds),
        "held_out_size": held_out_size or problem.benchmark.held_out_size,
        "optimizers": [m.name for m in methods],
        "hyperparameters": resolved,
        "x_error_name": problem.x_error_name,
        "fairness": "per seed: same initial weights (init_checksum) and the same batch stream for every optimizer; "
                    "one fixed held-out set for all runs; evaluation time excluded from wall_time_s",
    }
    specs = {(m.name, seed): {"problem": problem.name, "config": header["config"], "optimizer": m.name,
                              "seed": seed, "iterations": iterations, "time_budget_s": time_budget,
                              "batch_size": batch_sizes[m.name], "hyperparameters": resolved[m.name],
                              "device": header["device"], "dtype": header["dtype"], "evaluations": evaluations,
                              "held_out_size": header["held_out_size"], **({"nproc": nproc} if nproc > 1 else {})}
             for seed in seeds for m in methods}
    plan = plan_runs(out_dir, specs, resume=resume, force=force, keep_stale=keep_stale)  # refuses before training
    executor.check(problem.device, time_budget)
    if nproc > 1:
        header["nproc"] = nproc
    portable = not executor.in_process or nproc > 1      # a data-parallel run rebuilds the problem in each process
    return Comparison(problem, ProblemRecipe.of(problem, portable=portable), header, specs, plan,
                      out_dir, list(seeds), resume, keep_stale, executor)


@dataclasses.dataclass
class Comparison:
    """One prepared comparison (:func:`prepare`): its runs as tasks for an executor, then its summary."""
    problem: Any
    recipe: ProblemRecipe
    header: dict[str, Any]
    specs: dict[tuple[str, int], dict[str, Any]]
    plan: "RunPlan"
    out_dir: Path | None
    seeds: list[int]
    resume: bool
    keep_stale: bool
    executor: Executor
    title: str | None = None
    runs: dict[tuple[str, int], RunResult] = dataclasses.field(default_factory=dict)

    def start(self, report: Progress, group: int) -> list[RunTask]:
        """Say which finished runs are reused (and which are stale); the tasks of the runs still to train."""
        out_dir, time_budget = self.out_dir, self.header["time_budget_s"]
        for (name, seed), made_by in self.plan.stale.items():
            report.log(f"  {name:<9} seed {seed}  {'kept' if self.keep_stale else 'retrained'}: its run file in "
                       f"{out_dir} was made by {made_by}, this is physopt {physopt_version()}"
                       + ("" if self.keep_stale else " (--keep-stale keeps such runs)"))
        for (name, seed), cached in self.plan.cached.items():
            report.log(f"  {name:<9} seed {seed}  already finished in {out_dir}, skipped")
            threads = self.specs[(name, seed)]["hyperparameters"].get("threads") or self.executor.worker_threads()
            here = machine_label({**self.header["machine"], "torch_threads": threads})
            if time_budget and cached.machine and cached.machine != here:
                report.log(f"  warning: that run had its {time_budget:g} s on {cached.machine}, not on this "
                           f"machine; delete {run_path(out_dir, name, seed)} to rerun it here")
            self.runs[(name, seed)] = cached
        return [RunTask(self.recipe, name, seed, self.specs[(name, seed)], out_dir, self.resume, self.keep_stale,
                        self.header["provenance"], self.executor.name, group, self.title)
                for name, seed in self.specs if (name, seed) not in self.runs]

    def record(self, outcome: Outcome, report: Progress) -> None:
        name, seed = outcome.task.optimizer, outcome.task.seed
        if outcome.status == "finished":
            report.log(f"  {name:<9} seed {seed}  finished by another command in {self.out_dir}, skipped")
        self.runs[(name, seed)] = outcome.result

    def finish(self, report: Progress, interrupted: bool = False) -> dict[str, Any] | None:
        """The summary of the finished runs (written to ``out`` when given; after an interruption only if any)."""
        if self.out_dir is None:
            return dict(self.header, runs=[{k: v for k, v in r.to_json().items() if k != "curve"}
                                           for r in self.runs.values()])
        if interrupted:   # a worker may have saved its run after the last outcome this process received
            for (name, seed), spec in self.specs.items():
                saved = None if (name, seed) in self.runs else load_run(self.out_dir, name, seed, spec)
                if saved is not None and same_version(saved.provenance):
                    self.runs[(name, seed)] = saved
            if not self.runs:
                return None
        trained = interrupted or any(key not in self.plan.cached for key in self.specs)
        with summary_lock(self.out_dir):
            return _write(self.out_dir, self.problem, self.header, self.specs, self.runs, self.plan, self.seeds,
                          trained=trained, report=report, keep_stale=self.keep_stale)


def run_comparisons(comparisons: Sequence[Comparison], progress: ProgressLike = None,
                    on_summary: Callable[[Comparison, dict[str, Any] | None], None] | None = None) -> list:
    """Train the runs of every comparison on the executor they were prepared for (one for all) and write each
    comparison's summary as soon as its last run is done (then ``on_summary(comparison, summary)``, e.g. to
    regenerate a report). On Ctrl-C every comparison with finished runs gets its summary before the interruption is
    raised again."""
    if not comparisons:
        return []
    executor = comparisons[0].executor
    if any(c.executor is not executor for c in comparisons):
        raise ValueError("run_comparisons runs comparisons prepared for one executor (prepare(..., executor=...))")
    report = as_progress(progress)
    summaries: list[dict[str, Any] | None] = [None] * len(comparisons)
    finished = [False] * len(comparisons)
    left = []
    tasks = []
    for i, comparison in enumerate(comparisons):
        todo = comparison.start(report, i)
        left.append(len(todo))
        tasks += todo

    def finish(i: int, interrupted: bool = False) -> None:
        finished[i] = True
        summaries[i] = comparisons[i].finish(report, interrupted)
        if on_summary is not None and not interrupted:
            on_summary(comparisons[i], summaries[i])

    local = {}
    if executor.in_process:                     # the runs train here: the problems and held-out sets at hand
        local = {c.recipe.key: (c.problem, held_out_set(c.problem, c.header["held_out_size"])) for c in comparisons}
    outcomes = executor.run(tasks, report, local)
    try:
        for i, n in enumerate(left):
            if n == 0:
                finish(i)
        for outcome in outcomes:
            i = outcome.task.group
            comparisons[i].record(outcome, report)
            left[i] -= 1
            if left[i] == 0:
                finish(i)
    except KeyboardInterrupt:                  # the runs finished so far get their summary before the exit
        outcomes.close()                       # stops the executor's workers now, not at the interpreter's exit
        for i, comparison in enumerate(comparisons):
            if not finished[i]:
                comparison.finish(report, interrupted=True)
        raise
    finally:
        outcomes.close()
    return summaries


def _distinct_files(names: Sequence[str]) -> None:
    """Refuse two optimizers whose runs would be saved to one file (names that differ only in characters a file name
    cannot hold, e.g. mod:Öpt and mod:Äpt): the second run would overwrite the first."""
    seen: dict[str, str] = {}
    for name in names:
        stem = file_stem(name)
        if stem in seen and seen[stem] != name:
            raise ValueError(f"optimizers '{seen[stem]}' and '{name}' would save their runs to the same file "
                             f"({stem}_seed*.json); name one of them by another import path (e.g. an ASCII alias)")
        seen[stem] = name


def _write(out_dir: Path, problem, header: dict[str, Any], specs: dict, runs: dict[tuple[str, int], RunResult],
           plan: "RunPlan", seeds: Sequence[int], trained: bool, report, keep_stale: bool) -> dict[str, Any]:
    """The summary of every finished run of this setting in ``out_dir`` (runs other commands finished meanwhile
    included; those made by another physopt version only with ``keep_stale``), written unless it is already there."""
    rewritten = {run_path(out_dir, name, seed) for name, seed in specs}
    for path in plan.replace:                       # --force: files of other settings that this summary replaces
        if path not in rewritten:
            path.unlink(missing_ok=True)
    shared = setting(next(iter(specs.values())))
    stored, _ = stored_runs(out_dir)
    for (name, seed), run in stored.items():
        if (name, seed) in runs or setting(run.spec) != shared:
            continue
        if not (keep_stale or same_version(run.result.provenance)):
            report.log(f"  {name:<9} seed {seed}  left out of the summary: its run file was made by "
                       f"{version_of(run.result.provenance)} (rerun it with --optimizers {name} --seeds {seed}, or "
                       f"keep it with --keep-stale)")
            continue
        runs[(name, seed)] = run.result
        if name not in header["optimizers"]:
            header["optimizers"].append(name)
            header["hyperparameters"][name] = run.spec.get("hyperparameters")
            header["batch_size"][name] = run.spec.get("batch_size")
    asked = list(seeds)
    header["seeds"] = sorted({seed for _, seed in runs}, key=lambda s: (0, asked.index(s)) if s in asked else (1, s))
    ordered = [runs[(name, seed)] for seed in header["seeds"] for name in header["optimizers"] if (name, seed) in runs]
    unchanged = None if trained else _summary_describing(out_dir, ordered)
    if unchanged is not None:
        report.log(f"  {out_dir}/summary.json already describes these {len(ordered)} runs: nothing rewritten")
        return unchanged
    summary = write_summary(out_dir, header, ordered)
    plot_curves(out_dir / "curves.csv", out_dir / "curves.png",
                title=f"{problem.name} ({header['device']})", x_error_name=problem.x_error_name,
                switches={(r.optimizer, r.seed): r.switches for r in ordered if r.switches})
    return summary


@dataclasses.dataclass
class RunPlan:
    """What ``compare`` does with what ``out/runs/`` holds: runs to reuse, files to replace (only with ``force``) and
    the asked-for runs made by another physopt version (``stale``: the version they name; retrained, or reused with
    ``keep_stale``). Runs of the same setting that were not asked for join the summary when it is written
    (:func:`_write`)."""
    cached: dict[tuple[str, int], RunResult]
    replace: list[Path]
    stale: dict[tuple[str, int], str] = dataclasses.field(default_factory=dict)


def plan_runs(out: Path | None, specs: dict[tuple[str, int], dict[str, Any]], *, resume: bool,
              force: bool, keep_stale: bool = False) -> RunPlan:
    """Match the requested runs against ``out/runs/``; ValueError naming the files when finished runs would be
    replaced by other settings or left out of the summary (unless ``force``)."""
    plan = RunPlan({}, [])
    if out is None:
        return plan
    stored, broken = stored_runs(out)
    if broken and not force:
        raise broken[0]
    plan.replace += [err.path for err in broken]
    shared = setting(next(iter(specs.values())))
    conflicts = []
    for key, run in stored.items():
        if key in specs:
            if same_run(run.spec, specs[key]):
                if not resume:
                    continue
                current = same_version(run.result.provenance)
                if not current:
                    plan.stale[key] = version_of(run.result.provenance)
                if current or keep_stale:
                    plan.cached[key] = run.result
            elif force:
                plan.replace.append(run.path)
            else:
                conflicts.append(f"{run.path.name}: {difference(run.spec, specs[key])}")
        elif setting(run.spec) == shared:
            continue                                # joins the summary
        elif force:
            plan.replace.append(run.path)
        else:
            conflicts.append(f"{run.path.name} (not asked for here): {difference(setting(run.spec), shared)}")
    if conflicts:
        more = f"; and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise ValueError(f"{out} holds finished runs made with other settings, which this command would replace "
                         f"or leave out of its summary: {'; '.join(conflicts[:3])}{more}. Use another --out, or "
                         f"--force to replace them")
    return plan


def _summary_describing(out: Path, runs: list[RunResult]) -> dict[str, Any] | None:
    """The summary in ``out`` if it describes exactly ``runs`` (and its curves file exists), else None."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    def known(run: dict[str, Any]) -> dict[str, Any]:   # fields added since a summary was written are None there
        return {k: v for k, v in run.items() if v is not None and k != "curve"}

    wanted = json.loads(json.dumps([known(r.to_json()) for r in runs]))
    if [known(r) for r in summary.get("runs", [])] != wanted or not (out / "curves.csv").exists():
        return None
    return summary
