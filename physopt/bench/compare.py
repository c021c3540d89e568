"""Compare optimizers on one problem: same initial weights and data per seed, results written as runs finish."""
from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any, Sequence

import torch

from .methods import get_method, resolve_hyperparameters
from .plots import plot_curves
from .progress import ProgressLike, as_progress
from .storage import load_run, machine_info, machine_label, run_path, save_run, write_summary
from .train import RunResult, held_out_set, train_run


def compare(problem, optimizers: Sequence[str], *, seeds: Sequence[int] = (0,), iterations: int | None = None,
            time_budget: float | None = None, batch_size: int | None = None,
            hyperparameters: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
            resume: bool = True, evaluations: int = 30, held_out_size: int | None = None, command: str | None = None,
            progress: ProgressLike = None) -> dict[str, Any]:
    """Train every optimizer for every seed and return the summary (also written to ``out`` when given).

    With ``resume`` a run already in ``out/runs/`` with identical settings is loaded instead of retrained. Every run is
    evaluated on one held-out set of ``held_out_size`` examples (default: the problem's benchmark settings).
    """
    if not optimizers:
        raise ValueError("give at least one optimizer")
    methods = [get_method(o) for o in optimizers]
    for m in methods:
        if m.needs_inverse and not problem.has_inverse:
            raise ValueError(f"optimizer '{m.name}' needs an inverse update, which problem '{problem.name}' does "
                             f"not define")
    hyperparameters = hyperparameters or {}
    for key in hyperparameters:
        get_method(key)
    overrides = {m.name: {**hyperparameters.get(m.name, {}), **({"batch_size": batch_size} if batch_size else {})}
                 for m in methods}
    resolved = {m.name: resolve_hyperparameters(m, problem, overrides[m.name]) for m in methods}
    batch_sizes = {name: hp["batch_size"] for name, hp in resolved.items()}
    out_dir = Path(out) if out is not None else None
    header = {
        "problem": problem.name,
        "config": dataclasses.asdict(problem.config),
        "device": str(problem.device),
        "dtype": str(problem.dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "machine": machine_info(problem.device),
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
    report = as_progress(progress)
    held_out = held_out_set(problem, header["held_out_size"])
    here = machine_label(header["machine"])
    runs: list[RunResult] = []
    for seed in seeds:
        for m in methods:
            spec = {"problem": problem.name, "config": header["config"], "optimizer": m.name, "seed": seed,
                    "iterations": iterations, "time_budget_s": time_budget, "batch_size": batch_sizes[m.name],
                    "hyperparameters": resolved[m.name], "device": header["device"], "dtype": header["dtype"],
                    "evaluations": evaluations, "held_out_size": header["held_out_size"]}
            cached = load_run(out_dir, m.name, seed, spec) if (out_dir is not None and resume) else None
            if cached is not None:
                report.log(f"  {m.name:<9} seed {seed}  already finished in {out_dir}, skipped")
                if time_budget and cached.machine and cached.machine != here:
                    report.log(f"  warning: that run had its {time_budget:g} s on {cached.machine}, not on this "
                               f"machine; delete {run_path(out_dir, m.name, seed)} to rerun it here")
                runs.append(cached)
                continue
            result = train_run(problem, m.name, seed, iterations=iterations, time_budget=time_budget,
                               hyperparameters=resolved[m.name], evaluations=evaluations,
                               held_out=held_out, progress=report)
            result = dataclasses.replace(result, machine=here)
            runs.append(result)
            if out_dir is not None:
                save_run(out_dir, spec, result)
    if out_dir is not None:
        summary = write_summary(out_dir, header, runs)
        plot_curves(out_dir / "curves.csv", out_dir / "curves.png",
                    title=f"{problem.name} ({header['device']})", x_error_name=problem.x_error_name)
    else:
        summary = dict(header, runs=[{k: v for k, v in r.to_json().items() if k != "curve"} for r in runs])
    return summary
