"""Time n-TangentProp against nested autograd (``physopt tangentprop-bench``).

The n-TangentProp paper's timing figure (Kyro Chi et al.): a tanh MLP with scalar input and output, the jets
u, u', ..., u^(n) at a batch of points, the loss sum_k mean((u^(k))^2), and its backward pass to the weights; per
order n one warm-up step, then the median of ``repeats`` timed steps. Every method starts from the same weights and
points, and the ratios autograd / n-TangentProp compare rows of the same run, and only where the route's loss agrees
with autograd's (the jets are checked in the run that times them). Time and peak memory: :mod:`physopt.timing.kernel`;
by default every (method, order) runs in a fresh process, so a CPU peak is not hidden by heap memory an earlier
measurement left behind (``isolate=False``: in this process, CPU peaks only indicative). Autograd's cost grows
exponentially with n: orders above one whose warm-up step took longer than ``max_step_s`` are skipped for it.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from physopt.bench.table import Column, format_table, text_column
from physopt.derivatives import TANGENTPROP_METHODS as NTP_METHODS
from physopt.derivatives import nested_autograd_derivatives, ntangentprop

from .kernel import AGREEMENT_RTOL, SkipLarger, agrees, mark_agreement, run_isolated, skipped_row, time_call, \
    timing_row

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


def setup(width: int, depth: int, batch: int, device: str = "cpu", dtype: str = "float32",
          seed: int = 0) -> tuple[nn.Sequential, Tensor]:
    """The benchmark's MLP 1 -> width^depth -> 1 (tanh) and ``batch`` points in [-1, 1], both from ``seed``."""
    from problems.networks import mlp
    dev, dt = torch.device(device), getattr(torch, dtype)
    torch.manual_seed(seed)
    net = mlp([1, *[width] * depth, 1], "tanh").to(dev, dt)
    x = (2 * torch.rand(batch, 1, generator=torch.Generator().manual_seed(seed), dtype=dt) - 1).to(dev)
    return net, x


def time_order_isolated(method: str, n: int, width: int, depth: int, batch: int, repeats: int, device: str,
                        dtype: str, seed: int) -> dict[str, Any]:
    """:func:`time_order` on :func:`setup`'s network and points, in a fresh Python process; a process that fails
    (e.g. killed for memory) gives a row with a note."""
    kwargs = dict(method=method, n=n, width=width, depth=depth, batch=batch, repeats=repeats, device=device,
                  dtype=dtype, seed=seed)
    row, why = run_isolated("physopt.timing.tangentprop:time_order_fresh", kwargs)
    return row if why is None else skipped_row(why, method=method, order=n, loss=None)


def time_order_fresh(method: str, n: int, width: int, depth: int, batch: int, repeats: int, device: str,
                     dtype: str, seed: int) -> dict[str, Any]:
    """:func:`time_order` on a network and points built by :func:`setup` (the body of the fresh process)."""
    net, x = setup(width, depth, batch, device, dtype, seed)
    return time_order(method, net, x, n, repeats)


def run(orders: Sequence[int] = tuple(range(1, 10)), width: int = 64, depth: int = 3, batch: int = 256,
        methods: Sequence[str] = METHODS, repeats: int = 5, device: str = "cpu", dtype: str = "float32",
        max_step_s: float = 60.0, seed: int = 0, isolate: bool = True, log: Callable[[str], None] | None = None,
        checkpoint: Callable[[list[dict[str, Any]]], None] | None = None) -> list[dict[str, Any]]:
    """Rows per (order, method) on the MLP 1 -> width^depth -> 1 (tanh) at ``batch`` points in [-1, 1], each
    measured in a fresh process unless ``isolate`` is False."""
    if repeats < 1 or width < 1 or depth < 1 or batch < 1 or not orders or min(orders) < 1:
        raise ValueError(f"need repeats, width, depth, batch >= 1 and orders >= 1, got repeats={repeats}, "
                         f"width={width}, depth={depth}, batch={batch}, orders={list(orders)}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got '{dtype}'")
    for method in methods:
        jets_function(method)
    device = str(device)
    net, x = (None, None) if isolate else setup(width, depth, batch, device, dtype, seed)
    setting = {"width": width, "depth": depth, "batch": batch, "dtype": dtype}
    rows: list[dict[str, Any]] = []
    guard = SkipLarger(max_step_s)
    for n in sorted(orders):
        for method in methods:
            if isolate:
                timer = lambda: time_order_isolated(method, n, width, depth, batch, repeats, device, dtype, seed)
            else:
                timer = lambda: time_order(method, net, x, n, repeats)
            row = guard.measure(method, (n,), timer, dict(method=method, order=n, loss=None), log, f"n={n}")
            rows.append({**row, **setting})
        if checkpoint:                                # written as each order finishes
            checkpoint(rows)
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per order: autograd's step time over each n-TangentProp route's (same run), with the route's loss relative to
    autograd's (``rel_diff``); no speed-up (``agrees`` False) where they differ by more than
    :data:`~physopt.timing.kernel.AGREEMENT_RTOL`."""
    mark_agreement(rows, ("order",), "method", "autograd", "loss")
    by_order: dict[int, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["step_s"] is not None:
            by_order.setdefault(r["order"], {})[r["method"]] = r
    out = []
    for n, by_method in by_order.items():
        auto = by_method.get("autograd")
        for m in NTP_METHODS:
            if auto is None or m not in by_method:
                continue
            r = by_method[m]
            ok = agrees(r, r.get("dtype", "float32"))
            out.append({"order": n, "baseline": "autograd", "method": m, "rel_diff": r["rel_diff"], "agrees": ok,
                        "speedup": auto["step_s"] / r["step_s"] if ok else None})
    return out


COLUMNS = [text_column("method", "method"), Column("n", "order", "{}"), Column("step ms", "step_s", "{:.3g}", 1e3),
           Column("IQR ms", "iqr_s", "{:.3g}", 1e3), Column("warm-up ms", "warmup_s", "{:.3g}", 1e3),
           Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20), Column("loss", "loss", "{:.5g}"),
           Column("vs autograd", "rel_diff", "{:.1e}"), text_column("note", "note")]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of step times (median, IQR), peak memory and each method's loss relative to autograd's, then the
    speed-ups of the routes that agree with autograd."""
    qs = ratios(rows)
    lines = [format_table(rows, COLUMNS)]
    if rows:
        r = rows[0]
        tol = AGREEMENT_RTOL[r["dtype"]]
        lines += ["", f"MLP width {r['width']}, depth {r['depth']}, batch {r['batch']}, {r['dtype']}; "
                      "speed-up = autograd step time / n-TangentProp step time (same run; only where the route's "
                      f"loss agrees with autograd's to {tol:g} relative):"]
    for q in qs:
        where = f"  n={q['order']:<2} autograd/{q['method']:<13} "
        lines.append(where + (f"{q['speedup']:.3g}x" if q["agrees"] else
                              f"no speed-up: its loss differs from autograd's by {q['rel_diff']:.2g} relative"))
    return "\n".join(lines)
