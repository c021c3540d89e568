"""``physopt tune --space``: several optimizer settings at once, searched by Optuna (``pip install 'physopt[tune]'``).

Every trial trains the problem's default network from the same initial weights on the same data stream (one seed,
as :func:`physopt.bench.tune.tune` does for learning rates) with the settings the sampler suggests, and is scored on
a validation set drawn with its own seed (never the held-out set ``compare`` reports): the final validation x-space
error, or the loss where the problem has no ground truth; a diverged run scores +inf. The validation evaluations a
run makes while it trains are reported to Optuna, so a pruner (median, Hyperband) stops hopeless trials early.

A search space is one ``--space OPT.KEY=SPEC`` per setting:

- ``log:LOW:HIGH``: a float, log-uniform (learning rates); ``LOW:HIGH`` or ``float:LOW:HIGH``: a float, uniform;
- ``int:LOW:HIGH``: an integer; ``choice:A,B,...``: one of the values (numbers, true/false, none or text);
- ``KEYi`` (e.g. ``adam.betas0``) searches component i of a tuple setting, the others keep their defaults.

Studies live in a storage: in memory (default, one process), ``sqlite:///study.db`` (SQLAlchemy) or
``journal:PATH`` (a journal file, for a shared file system); the same command started on several machines, or with
``--executor local:N``, then shares one study, and ``--trials`` counts the trials of all of them together.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import dataclasses
import inspect
import math
import multiprocessing
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from .executors import LocalExecutor, stop_pool
from .methods import Method, resolve_hyperparameters, settings_by_method
from .progress import ProgressLike, as_progress
from .stop import guard_worker
from .train import check_seed, train_run
from .tune import VALIDATION_SEED, cli_value, fixed_settings, validation_set

#: what to install when Optuna is missing
EXTRA = "pip install 'physopt[tune]'  (or: pip install optuna)"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("none", "median", "hyperband")


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise ValueError(f"physopt tune --space needs Optuna, which is not installed: {EXTRA}") from None
    return optuna


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One searched setting: the trial parameter ``name`` (e.g. ``betas0``), the optimizer ``setting`` it sets
    (``betas``) and, for a tuple setting, the ``component``; ``kind`` is log, float, int or choice."""
    name: str
    setting: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    component: int | None = None


def _value(text: str) -> Any:
    text = text.strip()
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_space(items: Sequence[str], method: Method, defaults: dict[str, Any]) -> list[Dimension]:
    """``--space`` items for ``method`` -> dimensions; ValueError naming the malformed item and the accepted forms.
    ``defaults``: the run's resolved hyperparameters (a tuple component needs its tuple)."""
    if not items:
        raise ValueError("give at least one --space OPT.KEY=SPEC, e.g. --space adam.lr=log:1e-5:1e-2")
    forms = "log:LOW:HIGH, LOW:HIGH, int:LOW:HIGH or choice:A,B,..."
    dims: list[Dimension] = []
    for item in items:
        key, sep, spec = item.partition("=")
        optimizer, dot, name = key.strip().rpartition(".")
        if not sep or not dot or not name or not spec.strip():
            raise ValueError(f"--space '{item}': write OPT.KEY=SPEC with SPEC one of {forms}, e.g. "
                             f"{method.name}.lr=log:1e-5:1e-2")
        settings_by_method([method], {optimizer: {}})         # the optimizer part names the tuned optimizer
        kind, _, rest = spec.strip().partition(":")
        if kind not in ("log", "float", "int", "choice"):
            kind, rest = "float", spec.strip()
        try:
            dim = _dimension(name, kind, rest)
        except _SpecError as err:
            raise ValueError(f"--space '{item}': {err}") from None
        except ValueError:
            raise ValueError(f"--space '{item}': write SPEC as one of {forms}") from None
        component = re.fullmatch(r"(.*\D)(\d+)", name)
        if name not in defaults and component and _is_tuple(method, defaults, component.group(1)):
            dim = dataclasses.replace(dim, setting=component.group(1), component=int(component.group(2)))
        if any(d.name == dim.name for d in dims):
            raise ValueError(f"--space {method.name}.{name} is given twice")
        dims.append(dim)
    return dims


class _SpecError(ValueError):
    """A SPEC that parses but cannot be searched (its message says what to write)."""


def _dimension(name: str, kind: str, rest: str) -> Dimension:
    if kind == "choice":
        choices = tuple(_value(v) for v in rest.split(","))
        if not rest.strip() or len(set(map(repr, choices))) != len(choices):
            raise _SpecError("give distinct choices, e.g. choice:0.9,0.99")
        return Dimension(name, name, kind, choices=choices)
    low_text, high_text = rest.split(":")
    cast = int if kind == "int" else float
    low, high = cast(low_text), cast(high_text)
    if not (math.isfinite(low) and math.isfinite(high) and low < high) or (kind == "log" and low <= 0):
        raise _SpecError("give LOW < HIGH, both finite" + (" and > 0 for log" if kind == "log" else ""))
    return Dimension(name, name, kind, low, high)


def _is_tuple(method: Method, defaults: dict[str, Any], setting: str) -> bool:
    return isinstance(setting_default(method, defaults, setting), (tuple, list))


def setting_default(method: Method, defaults: dict[str, Any], setting: str) -> Any:
    """A setting's value when the search leaves it alone: the resolved hyperparameters', else the optimizer
    constructor's default (None if unknown)."""
    if setting in defaults:
        return defaults[setting]
    cls = method.optimizer_cls
    if cls is None:
        return None
    parameter = inspect.signature(cls.__init__).parameters.get(setting)
    return None if parameter is None or parameter.default is inspect.Parameter.empty else parameter.default


def suggest(trial: Any, dims: Sequence[Dimension], method: Method, defaults: dict[str, Any]) -> dict[str, Any]:
    """The settings of one trial: each dimension suggested by the trial, tuple components put into their tuple."""
    settings: dict[str, Any] = {}
    for d in dims:
        if d.kind == "choice":
            value = trial.suggest_categorical(d.name, list(d.choices))
        elif d.kind == "int":
            value = trial.suggest_int(d.name, int(d.low), int(d.high))
        else:
            value = trial.suggest_float(d.name, d.low, d.high, log=d.kind == "log")
        if d.component is None:
            settings[d.setting] = value
        else:
            base = list(settings.get(d.setting, setting_default(method, defaults, d.setting)))
            base[d.component] = value
            settings[d.setting] = tuple(base)
    return settings


def make_sampler(name: str, dims: Sequence[Dimension], seed: int):
    optuna = optuna_module()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        loose = [d.name for d in dims if d.kind != "choice"]
        if loose:
            raise ValueError(f"the grid sampler needs a finite grid: give {loose[0]} as choice:A,B,... (or use "
                             f"--sampler tpe/random)")
        return optuna.samplers.GridSampler({d.name: list(d.choices) for d in dims}, seed=seed)
    raise ValueError(f"unknown sampler '{name}': use one of {', '.join(SAMPLERS)}")


def make_pruner(name: str):
    optuna = optuna_module()
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    raise ValueError(f"unknown pruner '{name}': use one of {', '.join(PRUNERS)}")


def open_storage(url: str | None):
    """None (in memory), ``sqlite:///PATH`` / another SQLAlchemy URL, or ``journal:PATH``; ValueError when it cannot
    be opened, saying why."""
    if url is None:
        return None
    optuna = optuna_module()
    try:
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            if not path.parent.is_dir():
                raise OSError(f"directory {path.parent} does not exist")
            from optuna.storages.journal import JournalFileBackend, JournalStorage
            return JournalStorage(JournalFileBackend(str(path)))
        if "://" not in url:
            raise ValueError("write sqlite:///PATH (or another SQLAlchemy URL) or journal:PATH")
        return optuna.storages.RDBStorage(url)
    except ImportError as err:
        raise ValueError(f"storage '{url}' needs {err.name}: pip install {err.name}") from None
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's and the OS's errors, in one line
        raise ValueError(f"storage '{url}' cannot be opened: {type(err).__name__}: {str(err).splitlines()[0]}") \
            from None


class _Pruned(Exception):
    """Raised from inside a run when Optuna's pruner stops its trial."""


def objective(problem: Any, method: Method, dims: Sequence[Dimension], defaults: dict[str, Any], *,
              iterations: int | None, time_budget: float | None, seed: int, validation: Any, evaluations: int,
              progress: ProgressLike = None):
    """The function Optuna minimises: one run with the trial's settings, its validation metric reported at every
    evaluation (a pruned run stops there)."""
    optuna = optuna_module()
    report = as_progress(progress)

    def run(trial: Any) -> float:
        settings = suggest(trial, dims, method, defaults)
        trial.set_user_attr("settings", {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()})

        def on_evaluation(iteration: int, metrics: dict[str, float | None]) -> None:
            value = metrics.get("x_error") if metrics.get("x_error") is not None else metrics.get("loss")
            if iteration > 0 and value is not None and math.isfinite(value):
                trial.report(value, iteration)
                if trial.should_prune():
                    raise _Pruned(iteration)

        try:
            result = train_run(problem, method.name, seed, iterations=iterations, time_budget=time_budget,
                               hyperparameters={**defaults, **settings}, evaluations=evaluations,
                               held_out=validation, progress=report, on_evaluation=on_evaluation)
        except _Pruned as stop:
            report.log(f"  trial {trial.number}: {_short(settings)} pruned at iteration {stop.args[0]}")
            raise optuna.TrialPruned() from None
        metric = "x_error" if result.final.get("x_error") is not None else "loss"
        value = result.final[metric]
        score = value if result.status == "ok" and value is not None and math.isfinite(value) else math.inf
        trial.set_user_attr("metric", metric)
        trial.set_user_attr("status", result.status)
        trial.set_user_attr("iterations", result.iterations)
        trial.set_user_attr("wall_time_s", result.wall_time_s)
        report.log(f"  trial {trial.number}: {_short(settings)} -> {metric} {score:.4g} ({result.status.split(':')[0]})")
        return score

    return run


def _short(settings: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "(" + ", ".join(fmt(x) for x in v) + ")"
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    return ", ".join(f"{k}={fmt(v)}" for k, v in settings.items())


def study_result(study: Any, problem: Any, method: Method, space: Sequence[str], settings: dict[str, Any]) -> dict:
    """What the tuning file records: the setting, every trial (its settings, value, state) and the best settings."""
    trials = []
    for t in study.trials:
        if t.user_attrs.get("surplus"):            # started after the study was full; never trained
            continue
        trials.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                       "settings": t.user_attrs.get("settings", t.params), "status": t.user_attrs.get("status"),
                       "iterations": t.user_attrs.get("iterations"), "wall_time_s": t.user_attrs.get("wall_time_s"),
                       "last_step": t.last_step})
    finished = [t for t in trials if t["state"] == "complete" and t["value"] is not None and math.isfinite(t["value"])]
    best = min(finished, key=lambda t: t["value"]) if finished else None
    return {"problem": problem.name, "optimizer": method.name, "space": list(space), **settings,
            "study_name": study.study_name, "validation_seed": VALIDATION_SEED, "trials": trials,
            "best": None if best is None else {"trial": best["number"], "value": best["value"],
                                                "settings": best["settings"]}}



def run_study(problem: Any, method: Method, space: Sequence[str], *, trials: int, iterations: int | None = None,
              time_budget: float | None = None, seed: int = 0, batch_size: int | None = None,
              hyperparameters: dict[str, Any] | None = None, sampler: str = "tpe", pruner: str = "median",
              storage: str | None = None, study_name: str | None = None, timeout: float | None = None,
              evaluations: int = 10, executor: Any = None, progress: ProgressLike = None) -> dict[str, Any] | None:
    """Search ``space`` for ``method`` on ``problem`` with ``trials`` trials in all (shared with every other process
    on the same ``storage`` and ``study_name``) and return :func:`study_result`. ``executor`` (default: this process)
    as :class:`~physopt.bench.executors.LocalExecutor` ``local:N`` runs N processes on this machine against one
    storage (a temporary journal file when the study is in memory), each with ``executor.worker_threads()`` torch
    threads; a :class:`~physopt.bench.slurm.SlurmExecutor` submits ``trials`` array tasks that join the study
    instead (each stops when the study is full; the storage defaults to a journal file in its folder), and with its
    ``dry_run`` prints the submission and returns None."""
    optuna = optuna_module()
    check_seed(seed)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"--trials takes an integer >= 1, got {trials!r}")
    defaults = resolve_hyperparameters(method, problem, hyperparameters, batch_size)
    dims = parse_space(space, method, defaults)
    make_sampler(sampler, dims, seed)
    make_pruner(pruner)
    study_name = study_name or f"{problem.name}-{method.name}"
    setting = {"seed": seed, "iterations": iterations, "time_budget_s": time_budget, "sampler": sampler,
               "pruner": pruner, "trials": trials, "validation_size": problem.benchmark.held_out_size,
               "fixed": fixed_settings(hyperparameters)}
    with contextlib.ExitStack() as stack:
        executor = executor or LocalExecutor()
        workers = executor.workers                  # None: a Slurm job array
        if workers is None and storage is None:     # array tasks share the study through a file they all reach
            executor.folder.mkdir(parents=True, exist_ok=True)
            storage = f"journal:{executor.folder / 'study.log'}"
        if workers is not None and workers > 1 and storage is None:   # processes share a study through a storage
            tmp = stack.enter_context(tempfile.TemporaryDirectory())
            storage = f"journal:{Path(tmp) / 'study.log'}"
        open_storage(storage)                                               # refuses a bad URL before training
        job = dict(problem=problem, method=method, space=list(space), trials=trials, iterations=iterations,
                   time_budget=time_budget, seed=seed, defaults=defaults, sampler=sampler, pruner=pruner,
                   storage=storage, study_name=study_name, timeout=timeout, evaluations=evaluations)
        if workers is None:
            from .tasks import ProblemRecipe
            job["problem"], job["method"] = ProblemRecipe.of(problem), method.name
            if executor.dry_run:
                print(executor.script([f"join study '{study_name}' on {storage}"] * trials, "study processes"))
                return None
            for _ in executor.submit(_optimize_in_worker, [(job, executor.worker_threads())] * trials,
                                     as_progress(progress), "study processes"):
                pass
            study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        elif workers == 1:
            study = _optimize(job, progress)
        else:
            from .tasks import ProblemRecipe
            job["problem"] = ProblemRecipe.of(problem)
            job["method"] = method.name
            per_worker = executor.worker_threads()
            as_progress(progress).log(f"  {workers} worker processes on study '{study_name}', {per_worker} torch "
                                      f"threads each")
            context = multiprocessing.get_context("spawn")
            pool = futures.ProcessPoolExecutor(workers, mp_context=context, initializer=guard_worker)
            try:
                for done in [pool.submit(_optimize_in_worker, job, per_worker) for _ in range(workers)]:
                    done.result()
            except BaseException:
                stop_pool(pool)
                raise
            pool.shutdown(wait=True)
            study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        return study_result(study, problem, method, space, setting)


def _optimize(job: dict[str, Any], progress: ProgressLike = None):
    """Create or join the study and run trials until it holds ``trials`` of them (a trial numbered beyond that, which
    another process started meanwhile, stops without training and is left out of the result)."""
    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem, method = job["problem"], job["method"]
    dims = parse_space(job["space"], method, job["defaults"])
    # one process: the sampler's seed is the run's, so the study repeats; processes sharing a storage each draw their
    # own suggestions (the same seed everywhere would make them suggest the same settings)
    sampler_seed = job["seed"] if job["storage"] is None else hash((job["seed"], os.getpid())) % 2 ** 31
    study = optuna.create_study(storage=open_storage(job["storage"]), study_name=job["study_name"],
                                sampler=make_sampler(job["sampler"], dims, sampler_seed),
                                pruner=make_pruner(job["pruner"]), direction="minimize", load_if_exists=True)
    train = objective(problem, method, dims, job["defaults"], iterations=job["iterations"],
                      time_budget=job["time_budget"], seed=job["seed"], validation=validation_set(problem),
                      evaluations=job["evaluations"], progress=progress)
    limit = job["trials"]

    def bounded(trial: Any) -> float:
        if trial.number >= limit:                   # the study is full: stop here and in every process
            trial.set_user_attr("surplus", True)
            study.stop()
            raise optuna.TrialPruned()
        return train(trial)

    if len(study.trials) < limit:
        study.optimize(bounded, n_trials=limit, timeout=job["timeout"], gc_after_trial=False)
    return study


def _optimize_in_worker(job: dict[str, Any] | tuple, threads: int | None = None) -> None:
    if isinstance(job, tuple):                      # a Slurm array task gets (job, threads) as one item
        job, threads = job
    torch.set_num_threads(threads)
    from .methods import get_method
    job = dict(job, problem=job["problem"].build(), method=get_method(job["method"]))
    _optimize(job)


def format_study(result: dict[str, Any]) -> str:
    """The table ``physopt tune --space`` prints and records: every trial, its settings, score and state."""
    lines = [f"{'trial':>5}  {'state':<9} {'score':>11} {'its':>6} {'time [s]':>9}  settings", "-" * 78]
    best = result["best"]
    for t in result["trials"]:
        value = "-" if t["value"] is None else f"{t['value']:.4g}"
        its = t["iterations"] if t["iterations"] is not None else t["last_step"] if t["last_step"] is not None else "-"
        wall = "-" if t["wall_time_s"] is None else f"{t['wall_time_s']:.1f}"
        mark = "  <- best" if best and t["number"] == best["trial"] else ""
        lines.append(f"{t['number']:>5}  {t['state']:<9} {value:>11} {its!s:>6} {wall:>9}  "
                     f"{_short(t['settings'] or {})}{mark}")
    pruned = sum(t["state"] == "pruned" for t in result["trials"])
    lines.append(f"\n{len(result['trials'])} trials ({pruned} pruned) in study '{result['study_name']}'")
    if best is None:
        lines.append("no trial finished with a finite score: try another space")
    else:
        hparams = " ".join(f"--hparam {result['optimizer']}.{k}={cli_value(v)}"
                           for k, v in {**result.get("fixed", {}), **best["settings"]}.items())
        lines.append(f"best for {result['optimizer']} on {result['problem']}: {_short(best['settings'])} "
                     f"(use it with: physopt compare {result['problem']} --optimizers {result['optimizer']} "
                     f"{hparams}, or --hparam-file with this file)")
    return "\n".join(lines)


def settings_from_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """``--hparam-file``: the best settings a tuning file records, keyed by its optimizer: ``{"adam": {"lr": ...}}``
    from ``physopt tune --space`` (its ``best``) or ``--lrs`` (its ``best_lr``), with the settings the tuning held
    fixed (``--hparam``, recorded as ``fixed``). ValueError naming the file when it
    is not a tuning file or holds no best settings."""
    import json
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"--hparam-file {path}: cannot be read as JSON ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("optimizer"), str):
        raise ValueError(f"--hparam-file {path}: not a tuning file of physopt tune (it names no optimizer)")
    if "best" in data:
        best = data["best"]
        if not isinstance(best, dict) or not isinstance(best.get("settings"), dict):
            raise ValueError(f"--hparam-file {path}: no trial of that study finished with a finite score")
        settings = dict(best["settings"])
    elif "best_lr" in data:
        if data.get("complete") is False:
            raise ValueError(f"--hparam-file {path}: that tuning is unfinished ({len(data['rows'])} of "
                             f"{len(data['lrs'])} rates): run its command again to finish it")
        if data["best_lr"] is None:
            raise ValueError(f"--hparam-file {path}: every learning rate of that tuning diverged")
        settings = {"lr": data["best_lr"]}
    else:
        raise ValueError(f"--hparam-file {path}: not a tuning file of physopt tune (no best settings)")
    fixed = data.get("fixed") or {}
    return {data["optimizer"]: {k: tuple(v) if isinstance(v, list) else v for k, v in {**fixed, **settings}.items()}}

