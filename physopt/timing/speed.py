"""Speed table (``physopt speed``): time per training iteration and peak extra memory of every optimizer on each
problem, as ratios to Adam measured in the same run.

Per problem and optimizer: the default network from seed 0, one batch of the optimizer's batch size (the paper's,
or the preset's), one warm-up step, then the median and IQR of at least ``repeats`` steps (:mod:`physopt.timing.kernel`). Each
(problem, optimizer) is measured in a fresh Python process by default (:func:`physopt.timing.kernel.run_isolated`):
the CPU peak (VmHWM) of a process that has already allocated and freed memory under-reports, because freed heap is
reused. The optimizers' batch sizes may
differ (the HIG paper's do); the table shows them.

``threads`` (``--threads 1,2``) measures every optimizer at each torch thread count, with ratios to Adam at the same
count: on a CPU the fastest count differs between optimizers (a small first-order step gains little from a second
thread), and an equal-wall-clock comparison can give each its own (``--hparam adam.threads=1``, a run setting).
``hyperparameters`` ({optimizer: {name: value}}, ``--hparam``) set what a step costs, e.g. a batch size or
``compile_physics`` (compiled in the warm-up step, outside the timing).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import torch

from physopt.bench.methods import (Diverged, canonical_optimizers, check_settings, get_method,
                                   optimizer_arguments, resolve_hyperparameters)
from physopt.bench.progress import ProgressLike, as_progress
from physopt.bench.table import Column, format_table, text_column
from physopt.bench.train import torch_threads
from physopt.validation import check_integer

from .kernel import run_isolated, skipped_row, time_call, timing_row


def time_one(problem: Any, name: str, repeats: int, batch_size: int | None = None,
             hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Median seconds per training iteration and peak extra bytes of optimizer ``name`` on ``problem`` (with the
    ``hyperparameters`` overrides; a ``threads`` among them sets the torch threads, as in a run)."""
    method = get_method(name)
    overrides = {**({"batch_size": batch_size} if batch_size else {}), **(hyperparameters or {})}   # --hparam wins
    hp = resolve_hyperparameters(method, problem, overrides or None)
    if hyperparameters:
        check_settings(method, problem, hp)              # an unknown or ill-typed setting: one clear line
    with torch_threads(hp.get("threads")):
        batch = problem.sample(hp["batch_size"], torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        step = method.build(problem.default_network(), problem, optimizer_arguments(hp))
        row = {"problem": problem.name, "optimizer": name, "batch": hp["batch_size"],
               "threads": torch.get_num_threads()}
        try:
            return {**row, **timing_row(time_call(lambda: step(batch), problem.device, min_runs=repeats)),
                    "note": None}
        except Diverged as err:
            return skipped_row(f"diverged: {err}", **row)


def time_one_isolated(problem: str, preset: str, name: str, repeats: int, device: str,
                      hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`time_in_preset` in a fresh Python process (which first imports the modules ``--import`` named) with
    this process's torch thread count."""
    from problems import imported
    row, why = run_isolated("physopt.timing.speed:time_in_preset", {"problem": problem, "preset": preset,
                                                                    "optimizer": name, "repeats": repeats,
                                                                    "device": str(device), "imports": imported(),
                                                                    "hyperparameters": hyperparameters})
    return row if why is None else skipped_row(why, problem=problem, optimizer=name, batch=None,
                                               threads=torch.get_num_threads())


def time_in_preset(problem: str, preset: str, optimizer: str, repeats: int, device: str,
                   imports: Sequence[str] = (), hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`time_one` on ``problem`` built at the sizes of ``preset``, after importing ``imports``."""
    from problems import get_preset, get_problem, import_modules
    import_modules(imports)
    p = get_preset(problem, preset)
    return time_one(get_problem(problem, device=device, **p.config), optimizer, repeats, p.batch_size,
                    hyperparameters)


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_vs_adam and memory_vs_adam per row, against the Adam row of the same problem and thread count."""
    for r in rows:
        adam = next((a for a in rows if a["problem"] == r["problem"] and a["optimizer"] == "adam" and a["step_s"]
                     and a.get("threads") == r.get("threads")), None)
        r["time_vs_adam"] = r["step_s"] / adam["step_s"] if adam and r["step_s"] else None
        r["memory_vs_adam"] = (r["peak_bytes"] / adam["peak_bytes"]
                               if adam and r["peak_bytes"] and adam["peak_bytes"] else None)
    return rows


COLUMNS = [text_column("problem", "problem"), text_column("optimizer", "optimizer"), Column("batch", "batch", "{}"),
           Column("threads", "threads", "{}"),
           Column("ms / it", "step_s", "{:.3g}", 1e3), Column("IQR ms", "iqr_s", "{:.2g}", 1e3),
           Column("vs adam", "time_vs_adam", "{:.3g}x"), Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20),
           Column("vs adam", "memory_vs_adam", "{:.3g}x"), text_column("note", "note")]


def format_speed(rows: list[dict[str, Any]]) -> str:
    return format_table(rows, COLUMNS)


def run_speed(problems: Sequence[str] | None = None, preset: str = "standard", repeats: int = 3,
              device: torch.device | str = "cpu", isolated: bool = True, progress: ProgressLike = None,
              checkpoint: Callable[[list[dict[str, Any]]], None] | None = None,
              optimizers: Sequence[str] | None = None, threads: Sequence[int] | None = None,
              hyperparameters: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The speed table over ``problems`` (default: all) with ``optimizers`` (default: each problem's canonical ones),
    at the problem sizes of ``preset``, at each torch thread count of ``threads`` (default: this process's);
    ``hyperparameters`` = {optimizer: overrides}. ``checkpoint(rows)`` after each problem, ``progress`` after each
    optimizer."""
    from problems import get_preset, get_problem, list_problems, problem_class
    names = list(problems) if problems else list_problems()
    for name in optimizers or ():
        get_method(name)                                  # an unknown name fails before anything is timed
    counts = [check_integer("threads", t, low=1) for t in threads] if threads else [torch.get_num_threads()]
    plans = [(name, get_preset(name, preset), list(optimizers or canonical_optimizers(problem_class(name))))
             for name in names]
    settings = hyperparameters or {}
    timed = {o for *_, names_here in plans for o in names_here}
    stray = sorted(set(settings) - timed)
    if stray:
        raise ValueError(f"settings were given for {', '.join(stray)}, which this table does not time (it times "
                         f"{', '.join(sorted(timed))}); add it to the optimizers or drop its settings")
    report = as_progress(progress)
    report.start(f"speed ({preset} sizes)", len(counts) * sum(len(o) for *_, o in plans), None)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for name, p, names_here in plans:
        problem = None if isolated and not settings else get_problem(name, device=device, **p.config)
        for o in names_here:                              # bad settings fail here, before any process starts
            if settings.get(o):
                method = get_method(o)
                check_settings(method, problem, resolve_hyperparameters(method, problem, settings[o]))
        if isolated:
            problem = None
        measured = []
        for count in counts:
            with torch_threads(count):
                for o in names_here:
                    hp = settings.get(o)
                    measured.append(time_one_isolated(name, preset, o, repeats, str(device), hp) if isolated
                                    else time_one(problem, o, repeats, p.batch_size, hp))
                    report.update(len(rows) + len(measured), time.perf_counter() - start,
                                  f"{name} {o} ({count} threads)")
        rows += add_ratios(measured)
        if checkpoint:
            checkpoint(rows)
    report.finish()
    return rows
