"""Time per training step and peak memory of ZCS vs FuncLoop vs DataVect (``physopt zcs-bench``).

The ZCS paper's scaling benchmark (Leng & Thiyagalingam 2023, Sec. 4.1, Fig. 2): the PDE
sum_{k=0}^P (d/dx + d/dy)^k u = 0 on the unit square, DeepONet branch [50, 128, 128, 128], trunk [2, 128, 128, 128],
tanh, Adam. One step = forward + derivative fields + loss + backward + Adam update. M, N and P are varied one at a
time around a centre setting; every engine starts from the same weights and data, and ratios FuncLoop/ZCS and
DataVect/ZCS compare rows measured in the same run. Peak memory as in :func:`physopt.bench.hig_timing.measure_peak`;
by default every (engine, setting) runs in a fresh process, so on the CPU the resident-set growth is not hidden by
heap memory a previous measurement left behind.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..derivatives.zcs import ENGINES
from .hig_timing import warm_median
from .results import dash_or, write_benchmark

ENGINE_NAMES = tuple(ENGINES)
QUICK = {"ms": (2, 4), "ns": (50, 100), "ps": (1, 2), "center": (4, 100, 2), "repeats": 1}


def settings(ms: Sequence[int], ns: Sequence[int], ps: Sequence[int],
             center: tuple[int, int, int]) -> list[tuple[int, int, int]]:
    """(M, N, P) settings varying one of them at a time around ``center``, without duplicates."""
    m0, n0, p0 = center
    rows = [(m, n0, p0) for m in ms] + [(m0, n, p0) for n in ns] + [(m0, n0, p) for p in ps]
    return list(dict.fromkeys(rows))


def time_step(engine: str, m: int, n: int, order: int, repeats: int, device: torch.device,
              dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, Any]:
    """One warm-up step, then ``repeats`` timed steps (median); the largest peak extra memory of all of them."""
    from problems.operators import ScalingPDE, training_step
    problem = ScalingPDE(order, dtype=dtype, device=device)
    batch = problem.sample(m, n, torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)
    net = problem.default_network()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> float:
        loss = training_step(problem, net, optimizer, batch, engine)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return loss

    t = warm_median(step, device, repeats)
    return {"engine": engine, "m": m, "n": n, "order": order, "repeats": repeats, "warmup_s": t["warmup_s"],
            "step_s": t["step_s"], "times_s": t["times_s"], "peak_bytes": t["peak_bytes"], "first_loss": t["first"],
            "note": None}


def time_step_isolated(engine: str, m: int, n: int, order: int, repeats: int, device: torch.device,
                       dtype: torch.dtype = torch.float32, seed: int = 0) -> dict[str, Any]:
    """:func:`time_step` in a fresh Python process with this process's torch thread count; a process that fails
    (e.g. killed for memory) gives a row with a note."""
    spec = {"engine": engine, "m": m, "n": n, "order": order, "repeats": repeats, "device": str(device),
            "dtype": str(dtype).replace("torch.", ""), "seed": seed, "threads": torch.get_num_threads()}
    code = "from physopt.bench.zcs_bench import _child; _child()"
    proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(spec), capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return _skipped(engine, m, n, order, f"failed in its process: {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child() -> None:
    """Entry point of :func:`time_step_isolated`'s process: a JSON spec on stdin, the JSON row on stdout."""
    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec.pop("threads"))
    spec["device"], spec["dtype"] = torch.device(spec["device"]), getattr(torch, spec["dtype"])
    print(json.dumps(time_step(**spec)))


def _skipped(engine: str, m: int, n: int, order: int, why: str) -> dict[str, Any]:
    return {"engine": engine, "m": m, "n": n, "order": order, "repeats": 0, "warmup_s": None, "step_s": None,
            "times_s": [], "peak_bytes": None, "first_loss": None, "note": why}


def run(ms: Sequence[int] = (5, 10, 20, 40), ns: Sequence[int] = (250, 500, 1000, 2000),
        ps: Sequence[int] = (1, 2, 3, 4), center: tuple[int, int, int] = (20, 1000, 3),
        engines: Sequence[str] = ENGINE_NAMES, repeats: int = 3, device: str = "cpu", max_step_s: float = 60.0,
        isolate: bool = True, out: str | Path | None = None, command: str | None = None,
        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Rows per (engine, M, N, P), each measured in a fresh process unless ``isolate`` is False. A setting at least
    as large in M, N and P as one whose warm-up step took longer than ``max_step_s`` (or failed) is skipped for
    that engine (noted in the row) rather than run."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {list(ENGINES)}")
    dev = torch.device(device)
    rows: list[dict[str, Any]] = []
    too_slow: dict[str, list[tuple[int, int, int]]] = {e: [] for e in engines}
    for m, n, order in settings(ms, ns, ps, center):
        for engine in engines:
            slow = [s for s in too_slow[engine] if s[0] <= m and s[1] <= n and s[2] <= order]
            if slow:
                row = _skipped(engine, m, n, order, f"skipped: M, N, P >= {slow[0]}, which took > {max_step_s} s "
                               "or failed")
            else:
                if progress:
                    progress(f"{engine}: M={m} N={n} P={order} ...")
                row = (time_step_isolated if isolate else time_step)(engine, m, n, order, repeats, dev)
                if row["warmup_s"] is None or row["warmup_s"] > max_step_s:
                    too_slow[engine].append((m, n, order))
            rows.append(row)
        if out is not None:                           # written as each setting finishes
            write_benchmark(out, "timing", command, dev, format_rows(rows),
                            {"rows": rows, "ratios": ratios(rows)})
    return rows


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (M, N, P): FuncLoop/ZCS and DataVect/ZCS ratios of step time and peak memory (same run)."""
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
            mem = (b["peak_bytes"] / zcs["peak_bytes"]
                   if b["peak_bytes"] is not None and zcs["peak_bytes"] else None)
            out.append({"m": m, "n": n, "order": order, "baseline": base, "time": b["step_s"] / zcs["step_s"],
                        "memory": mem})
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A table of step times and peak memory, then the ratios to ZCS."""
    f = dash_or
    head = f"{'engine':<9} {'M':>4} {'N':>5} {'P':>2} {'step s':>8} {'warm-up s':>9} {'peak MiB':>9} {'loss':>10}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['engine']:<9} {r['m']:>4} {r['n']:>5} {r['order']:>2} {f(r['step_s']):>8} "
                     f"{f(r['warmup_s']):>9} {f(r['peak_bytes'], 2 ** -20, '{:.1f}'):>9} "
                     f"{f(r['first_loss'], 1, '{:.4g}'):>10}  {r['note'] or ''}")
    lines += ["", "ratios to ZCS (same run): time, peak memory"]
    for q in ratios(rows):
        lines.append(f"  M={q['m']:<3} N={q['n']:<5} P={q['order']}  {q['baseline']:<8}/zcs: time {q['time']:.3g}x, "
                     f"memory {f(q['memory'], 1, '{:.3g}x')}")
    return "\n".join(lines)


def _ints(text: str, what: str, minimum: int = 1) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got '{text}'") from None
    if not values or min(values) < minimum:
        raise ValueError(f"{what} needs integers >= {minimum}, got '{text}'")
    return values


def cmd(args: argparse.Namespace) -> int:
    """``physopt zcs-bench``: run, print the table, write timing.json / timing.txt to --out."""
    from .compare import default_progress, resolve_device
    if args.quick:
        ms, ns, ps, center, repeats = QUICK["ms"], QUICK["ns"], QUICK["ps"], QUICK["center"], QUICK["repeats"]
    else:
        ms, ns, ps = _ints(args.ms, "--ms"), _ints(args.ns, "--ns"), _ints(args.ps, "--ps", minimum=0)
        center, repeats = tuple(_ints(args.center, "--center")), args.repeats
        if len(center) != 3:
            raise ValueError(f"--center is M,N,P, got '{args.center}'")
    engines = [e.strip().lower() for e in args.engines.split(",") if e.strip()]
    argv = getattr(args, "argv", None)
    command = "physopt " + " ".join(shlex.quote(a) for a in argv) if argv is not None else None
    rows = run(ms, ns, ps, center, engines, repeats, str(resolve_device(args.device)), args.max_step_s,
               isolate=not (args.quick or args.in_process), out=args.out, command=command,
               progress=default_progress)
    print(format_rows(rows))
    if args.out:
        print(f"wrote {args.out}/timing.json, timing.txt")
    return 0


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``zcs-bench`` subcommand to the ``physopt`` parser."""
    z = subparsers.add_parser("zcs-bench", help="time training steps of ZCS vs FuncLoop vs DataVect (scaling PDE)")
    z.add_argument("--ms", default="5,10,20,40", help="numbers of functions M (varied at the centre N, P)")
    z.add_argument("--ns", default="250,500,1000,2000", help="numbers of points N (varied at the centre M, P)")
    z.add_argument("--ps", default="1,2,3,4", help="maximum PDE orders P (varied at the centre M, N)")
    z.add_argument("--center", default="20,1000,3", help="centre setting M,N,P (the acceptance point)")
    z.add_argument("--engines", default=",".join(ENGINE_NAMES), help="comma-separated: zcs, funcloop, datavect")
    z.add_argument("--repeats", type=int, default=3, help="timed steps after one warm-up (median reported)")
    z.add_argument("--max-step-s", type=float, default=60.0,
                   help="skip baseline settings at least as large as one whose warm-up step took longer")
    z.add_argument("--in-process", action="store_true",
                   help="measure in this process instead of a fresh one per engine and setting (CPU peaks less exact)")
    z.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    z.add_argument("--out", default=None, help="directory for timing.json and timing.txt")
    z.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, in-process: a smoke test")
    z.set_defaults(func=cmd)
    return z
