"""Time one HIG update and its parts (Jacobian, decomposition, apply) and its peak memory, per half-inversion route,
on the HIG paper's setups (``physopt hig-timing``), with one Adam step at Adam's batch size for scale.

Every route starts each timed update from the same weights (a fresh copy of the network); ratios compare routes
measured in the same run. Time and memory: :mod:`physopt.timing.kernel`.
"""
from __future__ import annotations

import copy
import statistics
from typing import Any, Callable, Sequence

import torch

from physopt import HIG
from physopt.bench.methods import get_method, optimizer_arguments, resolve_hyperparameters
from physopt.bench.table import Column, format_table, text_column

from .kernel import time_call

SETUPS = ("oscillators", "quantum-dipole", "poisson-hig")
ROUTES = ("factored", "gram", "svd")
PARTS = ("jacobian", "decomposition", "apply")

COLUMNS = [text_column("setup", "setup"), text_column("route", "route"), text_column("dtype", "dtype"),
           Column("batch", "batch", "{}"), Column("rows", "rows", "{}"), Column("weights", "weights", "{}"),
           Column("kept", "kept", "{}"), Column("total s", "total_s"), Column("IQR s", "total_iqr_s"),
           Column("jacobian", "jacobian_s"), Column("decomp", "decomposition_s"), Column("apply", "apply_s"),
           Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20)]


def time_setup(name: str, routes: Sequence[str], repeats: int, device: torch.device,
               dtypes: Sequence[torch.dtype]) -> list[dict[str, Any]]:
    """One HIG update per (route, decomposition dtype) on the problem's paper setup (its HIG batch size)."""
    from problems import get_problem
    problem = get_problem(name, device=device)
    hp = resolve_hyperparameters(get_method("hig"), problem)
    b = hp["batch_size"]
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    rows = []
    for dtype in dtypes:
        for route in routes:
            stats: list[Any] = []

            def update() -> None:
                opt = HIG(copy.deepcopy(net), problem.forward, problem.loss, lr=hp["lr"],
                          truncation=hp["truncation"], route=route, decomposition_dtype=dtype)
                opt.step(batch.inputs, batch)
                stats.append(opt.last_stats)

            t = time_call(update, device, min_runs=repeats)
            timed = stats[1:]                     # the warm-up's parts are not counted
            s = timed[-1]
            rows.append({"setup": name, "route": route, "dtype": str(dtype).replace("torch.", ""), "batch": b,
                         "rows": s.rows, "weights": s.cols, "kept": s.kept, "repeats": len(t.times_s),
                         "total_s": t.median_s, "total_iqr_s": t.iqr_s,
                         **{f"{k}_s": statistics.median(getattr(x, f"{k}_s") for x in timed) for k in PARTS},
                         "peak_bytes": t.peak_bytes})
    rows.append(_adam_row(problem, net, device, repeats))
    return rows


def _adam_row(problem, net, device: torch.device, repeats: int) -> dict[str, Any]:
    """One Adam step (forward, backward through the physics, update) at the paper's Adam batch size, for scale."""
    hp = resolve_hyperparameters(get_method("adam"), problem)
    b = hp["batch_size"]
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    model = copy.deepcopy(net)
    opt = torch.optim.Adam(model.parameters(), **optimizer_arguments(hp))

    def step():
        opt.zero_grad()
        problem.loss(problem.forward(model(batch.inputs), batch), batch).mean().backward()
        opt.step()

    t = time_call(step, device, min_runs=repeats)
    return {"setup": problem.name, "route": "adam", "dtype": str(problem.dtype).replace("torch.", ""), "batch": b,
            "rows": None, "weights": sum(p.numel() for p in net.parameters()), "kept": None,
            "repeats": len(t.times_s), "total_s": t.median_s, "total_iqr_s": t.iqr_s, "jacobian_s": None,
            "decomposition_s": None, "apply_s": None, "peak_bytes": t.peak_bytes}


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setup and decomposition dtype: total and decomposition time of the slower route over the faster."""
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["route"] != "adam":
            groups.setdefault((r["setup"], r["dtype"]), {})[r["route"]] = r
    out = []
    for (setup, dtype), by_route in groups.items():
        for slow, fast in (("svd", "gram"), ("svd", "factored"), ("gram", "factored")):
            if slow in by_route and fast in by_route:
                a, b = by_route[slow], by_route[fast]
                out.append({"setup": setup, "dtype": dtype, "slow": slow, "fast": fast,
                            "total": a["total_s"] / b["total_s"],
                            "decomposition": a["decomposition_s"] / b["decomposition_s"]})
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The table (median and IQR over the timed updates), then each route's time relative to the faster ones."""
    lines = [format_table(rows, COLUMNS), "", "ratios (same setup and decomposition dtype, same run):"]
    lines += [f"  {q['setup']} ({q['dtype']}): {q['slow']}/{q['fast']}: total {q['total']:.3g}x, decomposition "
              f"{q['decomposition']:.3g}x" for q in ratios(rows)]
    return "\n".join(lines)


def run(setups: Sequence[str] = SETUPS, routes: Sequence[str] = ROUTES, repeats: int = 3,
        device: torch.device | str = "cpu", dtypes: Sequence[str] = ("float64",),
        log: Callable[[str], None] | None = None,
        checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Rows per (setup, route, dtype) plus an Adam row per setup; ``checkpoint(rows)`` after each setup."""
    dev = torch.device(device)
    dts = [getattr(torch, d) for d in dtypes]
    rows: list[dict[str, Any]] = []
    for name in setups:
        if log:
            log(f"timing {name} ...")
        rows += time_setup(name, routes, repeats, dev, dts)
        if checkpoint:
            checkpoint(rows)
    return rows
