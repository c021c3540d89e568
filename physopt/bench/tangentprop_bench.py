"""Time n-TangentProp against nested autograd (``physopt tangentprop-bench``).

The n-TangentProp paper's timing figure (Kyro Chi et al.): a tanh MLP with scalar input and output, the jets
u, u', ..., u^(n) at a batch of points, the loss sum_k mean((u^(k))^2), and its backward pass to the weights; per
order n one warm-up step, then the median of ``repeats`` timed steps. Every method starts from the same weights and
points, and the ratios autograd / n-TangentProp compare rows of the same run. Peak memory as in
:func:`physopt.bench.hig_timing.measure_peak` (in this process, so on the CPU only indicative). Autograd's cost grows
exponentially with n: orders above one whose warm-up step took longer than ``max_step_s`` are skipped for it.
"""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from ..derivatives.tangentprop import METHODS as NTP_METHODS
from ..derivatives.tangentprop import nested_autograd_derivatives, ntangentprop
from .hig_timing import warm_median
from .results import dash_or, write_benchmark

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
    """One warm-up step (jets to order n, loss, backward to the weights), then ``repeats`` timed steps (median)."""
    jets_of = jets_function(method)
    device = x.device

    def step() -> float:
        for p in net.parameters():
            p.grad = None
        jets = jets_of(net, x, n)
        loss = (jets ** 2).mean(dim=(1, 2)).sum()
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return float(loss.detach())

    t = warm_median(step, device, repeats)
    return {"method": method, "order": n, "repeats": repeats, "warmup_s": t["warmup_s"], "step_s": t["step_s"],
            "times_s": t["times_s"], "peak_bytes": t["peak_bytes"], "loss": t["first"], "note": None}


def run(orders: Sequence[int] = tuple(range(1, 10)), width: int = 64, depth: int = 3, batch: int = 256,
        methods: Sequence[str] = METHODS, repeats: int = 5, device: str = "cpu", dtype: str = "float32",
        max_step_s: float = 60.0, seed: int = 0, out: str | Path | None = None, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
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
    too_slow: dict[str, int] = {}
    for n in sorted(orders):
        for method in methods:
            if method in too_slow:
                row = {"method": method, "order": n, "repeats": 0, "warmup_s": None, "step_s": None, "times_s": [],
                       "peak_bytes": None, "loss": None,
                       "note": f"skipped: order {too_slow[method]} took > {max_step_s} s"}
            else:
                if progress:
                    progress(f"{method}: n={n} ...")
                row = time_order(method, net, x, n, repeats)
                if row["warmup_s"] > max_step_s:
                    too_slow[method] = n
            rows.append({**row, **setting})
        if out is not None:                           # written as each order finishes
            write_benchmark(out, "timing", command, dev, format_rows(rows),
                            {"rows": rows, "ratios": ratios(rows)})
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per order: autograd's step time over each n-TangentProp route's (same run)."""
    by_order: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["step_s"] is not None:
            by_order.setdefault(r["order"], {})[r["method"]] = r["step_s"]
    return [{"order": n, "baseline": "autograd", "method": m, "speedup": t["autograd"] / t[m]}
            for n, t in by_order.items() for m in NTP_METHODS if "autograd" in t and m in t]


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of step times and peak memory per order and method, then the speed-ups over autograd."""
    f = dash_or
    head = f"{'method':<13} {'n':>2} {'step ms':>9} {'warm-up ms':>10} {'peak MiB':>9} {'loss':>11}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<13} {r['order']:>2} {f(r['step_s'], 1e3):>9} {f(r['warmup_s'], 1e3):>10} "
                     f"{f(r['peak_bytes'], 2 ** -20, '{:.1f}'):>9} {f(r['loss'], 1, '{:.5g}'):>11}  {r['note'] or ''}")
    if rows:
        r = rows[0]
        lines += ["", f"MLP width {r['width']}, depth {r['depth']}, batch {r['batch']}, {r['dtype']}; "
                      "speed-up = autograd step time / n-TangentProp step time (same run):"]
    for q in ratios(rows):
        lines.append(f"  n={q['order']:<2} autograd/{q['method']:<13} {q['speedup']:.3g}x")
    return "\n".join(lines)


def parse_orders(text: str) -> list[int]:
    """'1-9' or '1,2,6,9' (or a mix, '1-3,6') -> the orders, each >= 0."""
    orders: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            lo, _, hi = part.partition("-")
            orders += range(int(lo), int(hi or lo) + 1)
    except ValueError:
        raise ValueError(f"--orders must look like 1-9 or 1,2,6,9, got '{text}'") from None
    if not orders:
        raise ValueError(f"--orders is empty, got '{text}'")
    return sorted(set(orders))


def cmd(args: argparse.Namespace) -> int:
    """``physopt tangentprop-bench``: run, print the table, write timing.json / timing.txt to --out."""
    from .compare import default_progress, resolve_device
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    size = dict(QUICK) if args.quick else {"orders": parse_orders(args.orders), "width": args.width,
                                           "depth": args.depth, "batch": args.batch, "repeats": args.repeats}
    methods = [m.strip().lower() for m in args.methods.split(",") if m.strip()]
    argv = getattr(args, "argv", None)
    command = "physopt " + " ".join(shlex.quote(a) for a in argv) if argv is not None else None
    rows = run(**size, methods=methods, device=str(resolve_device(args.device)), dtype=args.dtype,
               max_step_s=args.max_step_s, out=args.out, command=command, progress=default_progress)
    print(format_rows(rows))
    if args.out:
        print(f"wrote {args.out}/timing.json, timing.txt")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``tangentprop-bench`` subcommand to the ``physopt`` parser."""
    t = subparsers.add_parser("tangentprop-bench",
                              help="time jets u..u^(n) + backward: n-TangentProp routes vs nested autograd")
    t.add_argument("--orders", default="1-9", help="derivative orders n, e.g. 1-9 or 1,3,6,9")
    t.add_argument("--width", type=int, default=64, help="hidden units per layer")
    t.add_argument("--depth", type=int, default=3, help="hidden layers")
    t.add_argument("--batch", type=int, default=256, help="points per step")
    t.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    t.add_argument("--repeats", type=int, default=5, help="timed steps after one warm-up (median reported)")
    t.add_argument("--max-step-s", type=float, default=60.0,
                   help="skip a method's higher orders once its warm-up step took longer than this")
    t.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    t.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's); 1 avoids slow-downs on a busy machine")
    t.add_argument("--out", default=None, help="directory for timing.json and timing.txt")
    t.add_argument("--quick", action="store_true", help="tiny network, orders 1-3, one repeat: a smoke test")
    t.set_defaults(func=cmd)
    return t
