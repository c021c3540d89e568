"""Time one HIG update and its parts (Jacobian, decomposition, apply) and its peak memory, per half-inversion route,
on the HIG paper's setups (``physopt hig-timing``). Ratios are taken between routes measured in the same run.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level before the step; on the CPU the growth of
the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before each step).
"""
from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..hig import HIG
from .results import atomic_write, machine_info

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


def time_setup(name: str, routes: Sequence[str], repeats: int, device: torch.device,
               dtypes: Sequence[torch.dtype]) -> list[dict[str, Any]]:
    """One HIG update per (route, decomposition dtype) on the problem's paper setup (its HIG batch size)."""
    from problems import get_problem
    problem = get_problem(name, device=device)
    hp = problem.hyperparameters.get("hig", {})
    b = hp.get("batch_size", problem.default_batch_size)
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    rows = []
    for dtype in dtypes:
        for route in routes:
            times: list[dict[str, float]] = []
            peak = None
            for _ in range(repeats):
                model = copy.deepcopy(net)
                opt = HIG(model, problem.forward, problem.loss, lr=hp.get("lr", 1.0),
                          truncation=hp.get("truncation", 1e-6), route=route, decomposition_dtype=dtype)
                start = time.perf_counter()
                _, used = measure_peak(lambda: opt.step(batch.inputs, batch), device)
                total = time.perf_counter() - start
                s = opt.last_stats
                times.append({"total": total, "jacobian": s.jacobian_s, "decomposition": s.decomposition_s,
                              "apply": s.apply_s})
                peak = used if peak is None or (used is not None and used > peak) else peak
            med = {k: statistics.median(t[k] for t in times) for k in times[0]}
            rows.append({"setup": name, "route": route, "dtype": str(dtype).replace("torch.", ""), "batch": b,
                         "rows": s.rows, "weights": s.cols, "kept": s.kept, "repeats": repeats,
                         **{f"{k}_s": v for k, v in med.items()}, "peak_bytes": peak})
    rows.append(_adam_row(problem, net, device, repeats))
    return rows


def _adam_row(problem, net, device: torch.device, repeats: int) -> dict[str, Any]:
    """One Adam step (forward, backward through the physics, update) at the paper's Adam batch size, for scale."""
    hp = dict(problem.hyperparameters.get("adam", {}))
    b = hp.pop("batch_size", problem.default_batch_size)
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    model = copy.deepcopy(net)
    opt = torch.optim.Adam(model.parameters(), **hp)

    def step():
        opt.zero_grad()
        problem.loss(problem.forward(model(batch.inputs), batch), batch).mean().backward()
        opt.step()

    times, peak = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        _, used = measure_peak(step, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        peak = used if peak is None or (used is not None and used > peak) else peak
    return {"setup": problem.name, "route": "adam", "dtype": str(problem.dtype).replace("torch.", ""), "batch": b,
            "rows": None, "weights": sum(p.numel() for p in net.parameters()), "kept": None, "repeats": repeats,
            "total_s": statistics.median(times), "jacobian_s": None, "decomposition_s": None, "apply_s": None,
            "peak_bytes": peak}


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of the timings and, per setup and dtype, each route's total time relative to the fastest."""
    def f(v, scale=1.0, fmt="{:.3g}"):
        return "-" if v is None else fmt.format(v * scale)
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
            _write(Path(out), rows, dev, command)
    return rows


def _write(out: Path, rows: list[dict[str, Any]], device: torch.device, command: str | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "timing.json", json.dumps({"command": command, "machine": machine_info(device),
                                                  "torch": torch.__version__, "device": str(device),
                                                  "rows": rows}, indent=2))
    atomic_write(out / "timing.txt", f"command: {command}\nmachine: {machine_info(device)}\n\n"
                 + format_rows(rows) + "\n")
