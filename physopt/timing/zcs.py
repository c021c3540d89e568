"""Time per training step and peak memory of ZCS vs FuncLoop vs DataVect (``physopt zcs-bench``).

The ZCS paper's scaling benchmark (Leng & Thiyagalingam 2023, Sec. 4.1, Fig. 2): the PDE
sum_{k=0}^P (d/dx + d/dy)^k u = 0 on the unit square, DeepONet branch [50, 128, 128, 128], trunk [2, 128, 128, 128],
tanh, Adam. One step = forward + derivative fields + loss + backward + Adam update. M, N and P are varied one at a
time around a centre setting; every engine starts from the same weights and data, and ratios FuncLoop/ZCS and
DataVect/ZCS compare rows measured in the same run, and only where the baseline's loss on the same weights and data
agrees with ZCS's (its derivative fields are checked in the run that times it). Time and peak memory: :mod:`physopt.timing.kernel`;
by default every (engine, setting) runs in a fresh process, so on the CPU the resident-set growth is not hidden by
heap memory a previous measurement left behind.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from physopt.bench.table import Column, format_table, text_column
from physopt.derivatives import ENGINES

from .kernel import AGREEMENT_RTOL, SkipLarger, agrees, mark_agreement, run_isolated, skipped_row, time_call, timing_row

ENGINE_NAMES = tuple(ENGINES)
QUICK = {"ms": (2, 4), "ns": (50, 100), "ps": (1, 2), "center": (4, 100, 2), "repeats": 1}


def settings(ms: Sequence[int], ns: Sequence[int], ps: Sequence[int],
             center: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(M, N, P) settings varying one of them at a time around ``center``, without duplicates."""
    m0, n0, p0 = center
    rows = [(m, n0, p0) for m in ms] + [(m0, n, p0) for n in ns] + [(m0, n0, p) for p in ps]
    return list(dict.fromkeys(rows))


def time_step(engine: str, m: int, n: int, order: int, repeats: int, device: str = "cpu",
              dtype: str = "float32", seed: int = 0) -> dict[str, Any]:
    """One warm-up step, then at least ``repeats`` timed steps (median, IQR); the warm-up's peak extra memory."""
    from problems.operators import ScalingPDE, training_step
    dev = torch.device(device)
    problem = ScalingPDE(order, dtype=getattr(torch, dtype), device=dev)
    batch = problem.sample(m, n, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    net = problem.default_network()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    t = time_call(lambda: training_step(problem, net, optimizer, batch, engine), dev, min_runs=repeats)
    return {"engine": engine, "m": m, "n": n, "order": order, **timing_row(t), "first_loss": t.first, "note": None}


def time_step_isolated(engine: str, m: int, n: int, order: int, repeats: int, device: str = "cpu",
                       dtype: str = "float32", seed: int = 0) -> dict[str, Any]:
    """:func:`time_step` in a fresh Python process; a process that fails (e.g. killed for memory) gives a row with
    a note."""
    row, why = run_isolated("physopt.timing.zcs:time_step", {"engine": engine, "m": m, "n": n, "order": order,
                                                             "repeats": repeats, "device": device, "dtype": dtype,
                                                             "seed": seed})
    return row if why is None else skipped_row(why, engine=engine, m=m, n=n, order=order, first_loss=None)


def run(ms: Sequence[int] = (5, 10, 20, 40), ns: Sequence[int] = (250, 500, 1000, 2000),
        ps: Sequence[int] = (1, 2, 3, 4), center: tuple[int, int, int] = (20, 1000, 3),
        engines: Sequence[str] = ENGINE_NAMES, repeats: int = 3, device: str = "cpu", max_step_s: float = 60.0,
        isolate: bool = True, log: Callable[[str], None] | None = None,
        checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Rows per (engine, M, N, P), each measured in a fresh process unless ``isolate`` is False. A setting at least
    as large in M, N and P as one whose warm-up step took longer than ``max_step_s`` (or failed) is skipped for
    that engine (noted in the row) rather than run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    device = str(device)
    rows: list[dict[str, Any]] = []
    guard = SkipLarger(max_step_s)
    for m, n, order in settings(ms, ns, ps, center):
        for engine in engines:
            timer = time_step_isolated if isolate else time_step
            row = guard.measure(engine, (m, n, order), lambda: timer(engine, m, n, order, repeats, device),
                                dict(engine=engine, m=m, n=n, order=order, first_loss=None), log,
                                f"M={m} N={n} P={order}")
            rows.append(row)
        if checkpoint:                                # written as each setting finishes
            checkpoint(rows)
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (M, N, P): FuncLoop/ZCS and DataVect/ZCS ratios of step time and peak memory (same run), each with the
    baseline's loss relative to ZCS's (``rel_diff``); a ratio is left out (``agrees`` False) where the losses on the
    same weights and data differ by more than :data:`~physopt.timing.kernel.AGREEMENT_RTOL`."""
    mark_agreement(rows, ("m", "n", "order"), "engine", "zcs", "first_loss")
    by_setting: dict[tuple[int, int, int], dict[str, dict[str, Any]]] = {}
    for r in rows:
        by_setting.setdefault((r["m"], r["n"], r["order"]), {})[r["engine"]] = r
    out = []
    for (m, n, order), by_engine in by_setting.items():
        zcs = by_engine.get("zcs")
        for base in ("funcloop", "datavect"):
            b = by_engine.get(base)
            if zcs is None or b is None or zcs["step_s"] is None or b["step_s"] is None:
                continue
            ok = agrees(b, "float32")
            mem = (b["peak_bytes"] / zcs["peak_bytes"]
                   if ok and b["peak_bytes"] is not None and zcs["peak_bytes"] else None)
            out.append({"m": m, "n": n, "order": order, "baseline": base, "rel_diff": b["rel_diff"], "agrees": ok,
                        "time": b["step_s"] / zcs["step_s"] if ok else None, "memory": mem})
    return out


COLUMNS = [text_column("engine", "engine"), Column("M", "m", "{}"), Column("N", "n", "{}"), Column("P", "order", "{}"),
           Column("step s", "step_s"), Column("IQR s", "iqr_s"), Column("warm-up s", "warmup_s"),
           Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20), Column("loss", "first_loss", "{:.4g}"),
           Column("vs zcs", "rel_diff", "{:.1e}"), text_column("note", "note")]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of step times (median, IQR), peak memory and each engine's loss relative to ZCS's on the same weights
    and data, then the ratios to ZCS of the baselines that agree."""
    qs = ratios(rows)
    lines = [format_table(rows, COLUMNS), "", f"ratios to ZCS (same run; only where the baseline's loss agrees with "
                                              f"ZCS's to {AGREEMENT_RTOL['float32']:g} relative): time, peak memory"]
    for q in qs:
        where = f"  M={q['m']:<3} N={q['n']:<5} P={q['order']}  {q['baseline']:<8}/zcs: "
        if not q["agrees"]:
            lines.append(where + f"no ratio: its loss differs from ZCS's by {q['rel_diff']:.2g} relative")
            continue
        memory = "-" if q["memory"] is None else f"{q['memory']:.3g}x"
        lines.append(where + f"time {q['time']:.3g}x, memory {memory}")
    return "\n".join(lines)
