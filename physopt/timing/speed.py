"""Speed table (``physopt speed``): time per training iteration and peak extra memory of every optimizer on each
problem, as ratios to Adam measured in the same run.

Per problem and optimizer: the default network from seed 0, one batch of the optimizer's batch size (the paper's,
or the preset's), one warm-up step, then the median and IQR of at least ``repeats`` steps (:mod:`physopt.timing.kernel`). Each
(problem, optimizer) is measured in a fresh Python process by default (:func:`physopt.timing.kernel.run_isolated`):
the CPU peak (VmHWM) of a process that has already allocated and freed memory under-reports, because freed heap is
reused. The optimizers' batch sizes may
differ (the HIG paper's do); the table shows them.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from physopt.bench.methods import (Diverged, canonical_optimizers, get_method, optimizer_arguments,
                                   resolve_hyperparameters)
from physopt.bench.progress import ProgressLike, as_progress
from physopt.bench.table import Column, format_table, text_column

from .kernel import run_isolated, skipped_row, time_call, timing_row


def time_one(problem: Any, name: str, repeats: int, batch_size: int | None = None) -> dict[str, Any]:
    """Median seconds per training iteration and peak extra bytes of optimizer ``name`` on ``problem``."""
    method = get_method(name)
    hp = resolve_hyperparameters(method, problem, {"batch_size": batch_size} if batch_size else None)
    batch = problem.sample(hp["batch_size"], torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    step = method.build(problem.default_network(), problem, optimizer_arguments(hp))
    row = {"problem": problem.name, "optimizer": name, "batch": hp["batch_size"]}
    try:
        return {**row, **timing_row(time_call(lambda: step(batch), problem.device, min_runs=repeats)), "note": None}
    except Diverged as err:
        return skipped_row(f"diverged: {err}", **row)


def time_one_isolated(problem: str, preset: str, name: str, repeats: int, device: str) -> dict[str, Any]:
    """:func:`time_in_preset` in a fresh Python process (which first imports the modules ``--import`` named)."""
    from problems import imported
    row, why = run_isolated("physopt.timing.speed:time_in_preset", {"problem": problem, "preset": preset,
                                                                    "optimizer": name, "repeats": repeats,
                                                                    "device": str(device), "imports": imported()})
    return row if why is None else skipped_row(why, problem=problem, optimizer=name, batch=None)


def time_in_preset(problem: str, preset: str, optimizer: str, repeats: int, device: str,
                   imports: Sequence[str] = ()) -> dict[str, Any]:
    """:func:`time_one` on ``problem`` built at the sizes of ``preset``, after importing ``imports``."""
    from problems import get_preset, get_problem, import_modules
    import_modules(imports)
    p = get_preset(problem, preset)
    return time_one(get_problem(problem, device=device, **p.config), optimizer, repeats, p.batch_size)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_vs_adam and memory_vs_adam per row, against the Adam row of the same problem."""
    for r in rows:
        adam = next((a for a in rows if a["problem"] == r["problem"] and a["optimizer"] == "adam" and a["step_s"]),
                    None)
        r["time_vs_adam"] = r["step_s"] / adam["step_s"] if adam and r["step_s"] else None
        r["memory_vs_adam"] = (r["peak_bytes"] / adam["peak_bytes"]
                               if adam and r["peak_bytes"] and adam["peak_bytes"] else None)
    return rows


COLUMNS = [text_column("problem", "problem"), text_column("optimizer", "optimizer"), Column("batch", "batch", "{}"),
           Column("ms / it", "step_s", "{:.3g}", 1e3), Column("IQR ms", "iqr_s", "{:.2g}", 1e3),
           Column("vs adam", "time_vs_adam", "{:.3g}x"), Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20),
           Column("vs adam", "memory_vs_adam", "{:.3g}x"), text_column("note", "note")]


def format_speed(rows: list[dict[str, Any]]) -> str:
    return format_table(rows, COLUMNS)


def run_speed(problems: Sequence[str] | None = None, preset: str = "standard", repeats: int = 3,
              device: torch.device | str = "cpu", isolated: bool = True, progress: ProgressLike = None,
              checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """The speed table over ``problems`` (default: all) with each problem's canonical optimizers, at the problem
    sizes of ``preset``; ``checkpoint(rows)`` after each problem, ``progress`` after each optimizer."""
    from problems import get_preset, get_problem, list_problems, problem_class
    names = list(problems) if problems else list_problems()
    plans = [(name, get_preset(name, preset), canonical_optimizers(problem_class(name))) for name in names]
    report = as_progress(progress)
    report.start(f"speed ({preset} sizes)", sum(len(optimizers) for *_, optimizers in plans), None)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for name, p, optimizers in plans:
        problem = None if isolated else get_problem(name, device=device, **p.config)
        measured = []
        for o in optimizers:
            measured.append(time_one_isolated(name, preset, o, repeats, str(device)) if isolated
                            else time_one(problem, o, repeats, p.batch_size))
            report.update(len(rows) + len(measured), time.perf_counter() - start, f"{name} {o}")
        rows += add_ratios(measured)
        if checkpoint:
            checkpoint(rows)
    report.finish()
    return rows
