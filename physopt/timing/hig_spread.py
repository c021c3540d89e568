"""HIG with its batch spread over processes (issue 22): one update of a global batch of P x b examples on P processes
(each with b; :mod:`physopt.hig.distributed`) against one process holding all P x b, in the same run: time per
update (median of ``repeats``, every process starting each update together) and the peak extra memory of one
update per process. gloo on the CPU; NCCL with one GPU per process on CUDA.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from physopt import HIG
from physopt.bench.methods import get_method, resolve_hyperparameters

from .kernel import measure_peak, sync
from physopt.bench.table import Column, format_table, text_column

__all__ = ["run", "format_rows"]

COLUMNS = [text_column("setup", "setup"), text_column("route", "route"), Column("processes", "processes", "{}"),
           Column("batch/process", "batch", "{}"), Column("global rows", "rows", "{}"),
           Column("update s", "update_s"), Column("IQR s", "update_iqr_s"),
           Column("peak MiB/process", "peak_bytes", "{:.1f}", 2 ** -20), Column("vs 1 process", "speedup", "{:.2f}x")]


def _measure(setup: str, route: str, batch: int, processes: int, rank: int, repeats: int, device: str,
             group: Any) -> dict[str, Any]:
    """Time one HIG update of this process's ``batch`` examples of the global batch (``processes`` x ``batch``)."""
    from problems import get_problem
    problem = get_problem(setup, device=device)
    hp = resolve_hyperparameters(get_method("hig"), problem)
    data = problem.sample(batch * processes, torch.Generator().manual_seed(0))
    share = type(data)(*(None if t is None else t[rank * batch:(rank + 1) * batch] for t in data))
    torch.manual_seed(0)
    net = problem.default_network()
    start = {k: v.clone() for k, v in net.state_dict().items()}
    opt = HIG(net, problem.forward, problem.loss, lr=hp["lr"], truncation=hp["truncation"], route=route,
              max_loss_increase=None, process_group=group)

    def update() -> None:
        net.load_state_dict(start)
        opt.step(share.inputs, share)

    def barrier() -> None:
        if group is not None:
            dist.barrier(group)

    barrier()
    _, peak = measure_peak(update, torch.device(device))
    times = []
    for _ in range(repeats):
        barrier()
        sync(device)
        t = time.perf_counter()
        update()
        sync(device)
        times.append(time.perf_counter() - t)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"setup": setup, "route": opt.last_stats.route, "processes": processes, "batch": batch,
            "rows": opt.last_stats.rows, "update_s": statistics.median(times), "update_iqr_s": quartiles[2] -
            quartiles[0], "peak_bytes": peak}


def _rank(rank: int, world: int, tmp: str, setup: str, route: str, batch: int, repeats: int, device: str,
          threads: int) -> None:
    torch.set_num_threads(threads)
    cuda = device.startswith("cuda")
    if cuda:
        device = f"cuda:{rank}"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{tmp}/rendezvous", rank=rank,
                            world_size=world)
    try:
        row = _measure(setup, route, batch, world, rank, repeats, device, dist.group.WORLD)
        torch.save(row, Path(tmp) / f"row{rank}.pt")
        dist.barrier(device_ids=[rank] if cuda else None)    # every message delivered before the teardown
    finally:
        dist.destroy_process_group()


def run(setups: Sequence[str], routes: Sequence[str], batch: int, processes: int, repeats: int, device: str,
        threads: int, log=print) -> list[dict[str, Any]]:
    """Per setup and route: one process with ``processes`` x ``batch`` examples, then ``processes`` processes with
    ``batch`` each (the slowest process's time and the largest peak), each process at ``threads`` torch threads."""
    rows = []
    for setup in setups:
        for route in routes:
            torch.set_num_threads(threads)
            single = _measure(setup, route, batch * processes, 1, 0, repeats, device, None)
            rows.append(single)
            with tempfile.TemporaryDirectory(prefix="physopt-hig-spread-") as tmp:
                mp.spawn(_rank, args=(processes, tmp, setup, route, batch, repeats, device, threads),
                         nprocs=processes, join=True)
                ranks = [torch.load(Path(tmp) / f"row{r}.pt") for r in range(processes)]
            spread = max(ranks, key=lambda r: r["update_s"])
            spread["peak_bytes"] = max((r["peak_bytes"] or 0) for r in ranks) or None
            spread["speedup"] = single["update_s"] / spread["update_s"]
            rows.append(spread)
            log(f"  {setup} {route}: 1 process {single['update_s']:.3g} s, {processes} processes "
                f"{spread['update_s']:.3g} s")
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    return format_table(rows, COLUMNS) + ("\n\nupdate s: median time of one HIG update of the global batch (the "
                                          "slowest process); peak: the largest extra memory one process needed for "
                                          "one update.")
