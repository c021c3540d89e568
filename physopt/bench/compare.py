"""Compare optimizers on one problem: same initial weights and data per seed, results written as runs finish."""
from __future__ import annotations

import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .methods import get_method, resolve_hyperparameters
from .plots import plot_curves
from .report import format_batch
from .results import (component_names, load_run, machine_info, machine_label, mean_std, ratios_to_adam,
                      run_path, runs_by_optimizer, save_run, write_summary)
from .train import RunResult, held_out_set, train_run


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device (checked to exist)."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but torch sees no CUDA device "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    return dev


def compare(problem, optimizers: Sequence[str], *, seeds: Sequence[int] = (0,), iterations: int | None = None,
            time_budget: float | None = None, batch_size: int | None = None,
            hyperparameters: dict[str, dict[str, Any]] | None = None, out: str | Path | None = None,
            resume: bool = True, evaluations: int = 30, command: str | None = None,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train every optimizer for every seed and return the summary (also written to ``out`` when given).

    With ``resume`` a run already in ``out/runs/`` with identical settings is loaded instead of retrained.
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
        "optimizers": [m.name for m in methods],
        "hyperparameters": resolved,
        "x_error_name": problem.x_error_name,
        "fairness": "per seed: same initial weights (init_checksum) and the same batch stream for every optimizer; "
                    "one fixed held-out set for all runs; evaluation time excluded from wall_time_s",
    }
    held_out = held_out_set(problem)
    here = machine_label(header["machine"])
    runs: list[RunResult] = []
    for seed in seeds:
        for m in methods:
            spec = {"problem": problem.name, "config": header["config"], "optimizer": m.name, "seed": seed,
                    "iterations": iterations, "time_budget_s": time_budget, "batch_size": batch_sizes[m.name],
                    "hyperparameters": resolved[m.name], "device": header["device"], "dtype": header["dtype"],
                    "evaluations": evaluations}
            cached = load_run(out_dir, m.name, seed, spec) if (out_dir is not None and resume) else None
            if cached is not None:
                if progress:
                    progress(f"  {m.name:<9} seed {seed}  already finished in {out_dir}, skipped")
                    if time_budget and cached.machine and cached.machine != here:
                        progress(f"  warning: that run had its {time_budget:g} s on {cached.machine}, not on this "
                                 f"machine; delete {run_path(out_dir, m.name, seed)} to rerun it here")
                runs.append(cached)
                continue
            result = train_run(problem, m.name, seed, iterations=iterations, time_budget=time_budget,
                               hyperparameters=resolved[m.name], evaluations=evaluations,
                               held_out=held_out, progress=progress)
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


def format_table(summary: dict[str, Any]) -> str:
    """A plain-text table: per optimizer the mean (+- std over seeds) of the final held-out metrics."""
    err_name = summary.get("x_error_name", "x_error")
    lines = [f"problem {summary['problem']}  device {summary['device']}  batch {format_batch(summary['batch_size'])}  "
             f"seeds {summary['seeds']}  torch {summary['torch']}"]
    head = f"{'optimizer':<10} {'iterations':>10} {'time [s]':>9}  {'held-out loss':<22} {err_name:<22} status"
    lines += [head, "-" * len(head)]
    for opt, rs in runs_by_optimizer(summary).items():
        status = ", ".join(sorted({r["status"].split(":")[0] for r in rs}))
        lines.append(f"{opt:<10} {mean_std(r['iterations'] for r in rs):>10} "
                     f"{mean_std(r['wall_time_s'] for r in rs):>9}  {mean_std(r['final']['loss'] for r in rs):<22} "
                     f"{mean_std(r['final']['x_error'] for r in rs):<22} {status}")
    for name in component_names(summary):
        lines.append(f"  {name}: " + ", ".join(f"{opt} {mean_std(r['final'].get(name) for r in rs)}"
                                             for opt, rs in runs_by_optimizer(summary).items()))
    metric, ratios = ratios_to_adam(summary)
    if ratios:
        name = err_name if metric == "x_error" else "held-out loss"
        lines.append(f"{name} of adam / {name} of optimizer (> 1: better than adam): "
                     + ", ".join(f"{o}: {v:.3g}x" for o, v in ratios.items()))
    return "\n".join(lines)


def default_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
