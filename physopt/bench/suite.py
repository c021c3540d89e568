"""``physopt bench``: every bundled problem at one preset with its canonical optimizer set, resumable.

Per problem the results go to ``OUT/<problem>`` (standard preset on the CPU, what results/ shows) or
``OUT/<preset>-<device>/<problem>``; every finished run is saved at once (``runs/``, atomic writes), so an
interrupted bench re-run with the same command skips finished runs and trains only what is missing. The report
``OUT/README.md`` is regenerated after each problem.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .compare import prepare, run_comparisons
from .executors import Executor, LocalExecutor
from .methods import canonical_optimizers
from .progress import ProgressLike, as_progress
from .report import write_report


def results_dir(out: str | Path, problem: str, preset: str, device: torch.device) -> Path:
    """Where one problem's results go: OUT/<problem> for the standard CPU run, else OUT/<preset>-<device>/<problem>."""
    out = Path(out)
    if preset == "standard" and device.type == "cpu":
        return out / problem
    return out / f"{preset}-{device.type}" / problem


def run_bench(preset: str = "standard", problems: Sequence[str] | None = None, *, seeds: Sequence[int] | None = None,
              device: torch.device = torch.device("cpu"), out: str | Path = "runs/bench", resume: bool = True,
              command: str | None = None, progress: ProgressLike = None, force: bool = False,
              keep_stale: bool = False, executor: Executor | None = None) -> list[dict[str, Any]]:
    """Run ``compare`` for each problem (default: all registered) at ``preset`` with its default optimizers
    (``resume``, ``force``, ``keep_stale`` and ``executor`` as there). Every problem's directory is checked before the
    first run trains; all runs go to one executor, and each problem's summary and the report are written as soon as
    that problem's last run is done."""
    from problems import get_preset, get_problem, list_problems
    names = list(problems) if problems else list_problems()
    plans = [(name, get_preset(name, preset)) for name in names]            # check every name before training
    report = as_progress(progress)
    executor = executor or LocalExecutor()             # one for every problem: their runs share the workers
    comparisons = []
    for name, p in plans:
        problem = get_problem(name, device=device, **p.config)
        comparisons.append(prepare(problem, canonical_optimizers(problem), seeds=seeds or p.seeds,
                                   iterations=p.iterations, time_budget=p.time_budget, batch_size=p.batch_size,
                                   out=results_dir(out, problem.name, preset, device), resume=resume,
                                   evaluations=p.evaluations, command=command, force=force, keep_stale=keep_stale,
                                   executor=executor))
    for c in comparisons:
        c.title = f"physopt bench: {c.problem.name} ({preset} preset) on {device}: {', '.join(c.header['optimizers'])}"
    summaries = run_comparisons(comparisons, report, on_summary=lambda c, summary: write_report(out))
    return summaries
