"""Time n-TangentProp against nested autograd (``physopt tangentprop-bench``).

The n-TangentProp paper's timing figure (Kyro Chi et al.): a tanh MLP with scalar input and output, the jets
u, u', ..., u^(n) at a batch of points, the loss sum_k mean((u^(k))^2), and its backward pass to the weights; per
order n one warm-up step, then the median of ``repeats`` timed steps. Every method starts from the same weights and
points, and the ratios autograd / n-TangentProp compare rows of the same run. Time and peak memory:
:mod:`physopt.timing.kernel` (in this process, so CPU peaks are only indicative). Autograd's cost grows
exponentially with n: orders above one whose warm-up step took longer than ``max_step_s`` are skipped for it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from physopt.bench.table import Column, format_table, text_column
from physopt.derivatives import TANGENTPROP_METHODS as NTP_METHODS
from physopt.derivatives import nested_autograd_derivatives, ntangentprop

from .kernel import SkipLarger, time_call, timing_row

METHODS = (*NTP_METHODS, "autograd")
QUICK = {"orders": (1, 2, 3), "width": 16, "depth": 2, "batch": 32, "repeats": 1}


def jets_function(method: str) -> Callable[[nn.Sequential, Tensor, int], Tensor]:
    """``fn(net, x, n) -> (n+1, B, 1)`` jets for one of :data:`METHODS`."""
    if method == "autograd":
        return nested_autograd_derivatives
    if method in NTP_METHODS:
        return lambda net, x, n: ntangentprop(net, x, n, method=method)
    raise ValueError(f"unknown method '{method}'; choose from {list(METHODS)}")


def time_order(method: str, net: nn.Sequential, x: Tensor, n: int, repeats: int) -> dict[str, Any]:
    """One warm-up step (jets to order n, loss, backward to the weights), then at least ``repeats`` timed steps."""
    jets_of = jets_function(method)

    def step() -> float:
        for p in net.parameters():
            p.grad = None
        jets = jets_of(net, x, n)
        loss = (jets ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        return float(loss.detach())

    t = time_call(step, x.device, min_runs=repeats)
    return {"method": method, "order": n, **timing_row(t), "loss": t.first, "note": None}


def run(orders: Sequence[int] = tuple(range(1, 10)), width: int = 64, depth: int = 3, batch: int = 256,
        methods: Sequence[str] = METHODS, repeats: int = 5, device: str = "cpu", dtype: str = "float32",
        max_step_s: float = 60.0, seed: int = 0, log: Callable[[str], None] | None = None,
        checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Rows per (order, method) on the MLP 1 -> width^depth -> 1 (tanh) at ``batch`` points in [-1, 1]."""
    from problems.networks import mlp
    if repeats < 1 or width < 1 or depth < 1 or batch < 1 or not orders or min(orders) < 0:
        raise ValueError(f"need repeats, width, depth, batch >= 1 and orders >= 0, got repeats={repeats}, "
                         f"width={width}, depth={depth}, batch={batch}, orders={list(orders)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got '{dtype}'")
    for method in methods:
        jets_function(method)
    dev, dt = torch.device(device), getattr(torch, dtype)
    torch.manual_seed(seed)
    net = mlp([1, *[width] * depth, 1], "tanh").to(dev, dt)
    x = (2 * torch.rand(batch, 1, generator=torch.Generator().manual_seed(seed), dtype=dt) - 1).to(dev)
    setting = {"width": width, "depth": depth, "batch": batch, "dtype": dtype}
    rows: list[dict[str, Any]] = []
    guard = SkipLarger(max_step_s)
    for n in sorted(orders):
        for method in methods:
            row = guard.measure(method, (n,), lambda: time_order(method, net, x, n, repeats),
                                dict(method=method, order=n, loss=None), log, f"n={n}")
            rows.append({**row, **setting})
        if checkpoint:                                # written as each order finishes
            checkpoint(rows)
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per order: autograd's step time over each n-TangentProp route's (same run)."""
    by_order: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["step_s"] is not None:
            by_order.setdefault(r["order"], {})[r["method"]] = r["step_s"]
    return [{"order": n, "baseline": "autograd", "method": m, "speedup": t["autograd"] / t[m]}
            for n, t in by_order.items() for m in NTP_METHODS if "autograd" in t and m in t]


COLUMNS = [text_column("method", "method"), Column("n", "order", "{}"), Column("step ms", "step_s", "{:.3g}", 1e3),
           Column("IQR ms", "iqr_s", "{:.3g}", 1e3), Column("warm-up ms", "warmup_s", "{:.3g}", 1e3),
           Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20), Column("loss", "loss", "{:.5g}"),
           text_column("note", "note")]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of step times (median, IQR) and peak memory per order and method, then the speed-ups."""
    lines = [format_table(rows, COLUMNS)]
    if rows:
        r = rows[0]
        lines += ["", f"MLP width {r['width']}, depth {r['depth']}, batch {r['batch']}, {r['dtype']}; "
                      "speed-up = autograd step time / n-TangentProp step time (same run):"]
    for q in ratios(rows):
        lines.append(f"  n={q['order']:<2} autograd/{q['method']:<13} {q['speedup']:.3g}x")
    return "\n".join(lines)
