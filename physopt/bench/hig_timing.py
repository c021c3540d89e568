"""Time one HIG update and its parts (Jacobian, decomposition, apply) and its peak memory, per half-inversion route,
on the HIG paper's setups (``physopt hig-timing``). Ratios are taken between routes measured in the same run.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level before the step; on the CPU the growth of
the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each step).
"""
from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..hig import HIG
from .methods import get_method, optimizer_arguments, resolve_hyperparameters
from .results import dash_or, write_benchmark

SETUPS = ("oscillators", "quantum-dipole", "poisson-hig")
ROUTES = ("factored", "gram", "svd")


def _proc_status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure_peak(fn: Callable[[], Any], device: torch.device) -> tuple[Any, int | None]:
    """Run ``fn`` and return (its result, the peak extra memory in bytes it needed, or None if unmeasurable)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, torch.cuda.max_memory_allocated(device) - base
    try:
        Path("/proc/self/clear_refs").write_text("5")       # reset VmHWM to the current RSS
    except OSError:
        return fn(), None
    base = _proc_status("VmRSS")
    out = fn()
    peak = _proc_status("VmHWM")
    return out, None if (base is None or peak is None) else max(0, peak - base)


def warm_median(step: Callable[[], Any], device: torch.device, repeats: int) -> dict[str, Any]:
    """Run ``step`` once as a warm-up, then ``repeats`` times: the warm-up's result and time, the median and all
    timed runs, and the largest peak extra memory (:func:`measure_peak`)."""
    start = time.perf_counter()
    first, peak = measure_peak(step, device)
    warmup = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _, used = measure_peak(step, device)
        times.append(time.perf_counter() - start)
        peak = used if peak is None or (used is not None and used > peak) else peak
    return {"first": first, "warmup_s": warmup, "step_s": statistics.median(times), "times_s": times,
            "peak_bytes": peak}


def _repeat(make_step: Callable[[], Callable[[], Any]], device: torch.device,
            repeats: int) -> tuple[list[tuple[float, Any]], int | None]:
    """Run ``make_step()()`` ``repeats`` times (a fresh step each time): (wall time, step result) per run and the
    largest peak extra memory."""
    runs, peak = [], None
    for _ in range(repeats):
        step = make_step()
        start = time.perf_counter()
        out, used = measure_peak(step, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        runs.append((time.perf_counter() - start, out))
        peak = used if peak is None or (used is not None and used > peak) else peak
    return runs, peak


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
            def make_step():
                opt = HIG(copy.deepcopy(net), problem.forward, problem.loss, lr=hp["lr"],
                          truncation=hp["truncation"], route=route, decomposition_dtype=dtype)
                return lambda: (opt.step(batch.inputs, batch), opt.last_stats)[1]

            runs, peak = _repeat(make_step, device, repeats)
            med = {k: statistics.median(getattr(s, f"{k}_s") for _, s in runs)
                   for k in ("jacobian", "decomposition", "apply")}
            s = runs[-1][1]
            rows.append({"setup": name, "route": route, "dtype": str(dtype).replace("torch.", ""), "batch": b,
                         "rows": s.rows, "weights": s.cols, "kept": s.kept, "repeats": repeats,
                         "total_s": statistics.median(t for t, _ in runs), **{f"{k}_s": v for k, v in med.items()},
                         "peak_bytes": peak})
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

    runs, peak = _repeat(lambda: step, device, repeats)
    return {"setup": problem.name, "route": "adam", "dtype": str(problem.dtype).replace("torch.", ""), "batch": b,
            "rows": None, "weights": sum(p.numel() for p in net.parameters()), "kept": None, "repeats": repeats,
            "total_s": statistics.median(t for t, _ in runs), "jacobian_s": None, "decomposition_s": None,
            "apply_s": None, "peak_bytes": peak}


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of the timings and, per setup and dtype, each route's total time relative to the fastest."""
    f = dash_or
    head = (f"{'setup':<15} {'route':<9} {'dtype':<8} {'batch':>5} {'rows':>5} {'weights':>7} {'kept':>5} "
            f"{'total s':>8} {'jacobian':>8} {'decomp':>8} {'apply':>8} {'peak MiB':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['setup']:<15} {r['route']:<9} {r['dtype']:<8} {r['batch']:>5} {f(r['rows'], 1, '{}'):>5} "
                     f"{r['weights']:>7} {f(r['kept'], 1, '{}'):>5} {f(r['total_s']):>8} {f(r['jacobian_s']):>8} "
                     f"{f(r['decomposition_s']):>8} {f(r['apply_s']):>8} {f(r['peak_bytes'], 2 ** -20, '{:.1f}'):>9}")
    lines.append("")
    lines.append("ratios (same setup and decomposition dtype, same run):")
    groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["route"] != "adam":
            groups.setdefault((r["setup"], r["dtype"]), {})[r["route"]] = r
    for (setup, dtype), by_route in groups.items():
        parts = []
        for slow, fast in (("svd", "gram"), ("svd", "factored"), ("gram", "factored")):
            if slow in by_route and fast in by_route:
                a, b = by_route[slow], by_route[fast]
                parts.append(f"{slow}/{fast}: total {a['total_s'] / b['total_s']:.3g}x, decomposition "
                             f"{a['decomposition_s'] / b['decomposition_s']:.3g}x")
        if parts:
            lines.append(f"  {setup} ({dtype}): " + "; ".join(parts))
    return "\n".join(lines)


def run(setups: Sequence[str] = SETUPS, routes: Sequence[str] = ROUTES, repeats: int = 3, device: str = "cpu",
        dtypes: Sequence[str] = ("float64",), out: str | Path | None = None, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    dev = torch.device(device)
    dts = [getattr(torch, d) for d in dtypes]
    rows: list[dict[str, Any]] = []
    for name in setups:
        if progress:
            progress(f"timing {name} ...")
        rows += time_setup(name, routes, repeats, dev, dts)
        if out is not None:                      # written as each setup finishes
            write_benchmark(out, "timing", command, dev, format_rows(rows),
                            {"torch": torch.__version__, "device": str(dev), "rows": rows})
    return rows

