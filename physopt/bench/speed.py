"""Speed table (``physopt speed``): time per training iteration and peak extra memory of every optimizer on each
problem, as ratios to Adam measured in the same run.

Per problem and optimizer: the default network from seed 0, one batch of the optimizer's batch size (the paper's,
or the preset's), one warm-up step, then the median of ``repeats`` steps (:func:`hig_timing.warm_median`). Each
(problem, optimizer) is measured in a fresh Python process by default: the CPU peak (VmHWM) of a process that has
already allocated and freed memory under-reports, because freed heap is reused. The optimizers' batch sizes may
differ (the HIG paper's do); the table shows them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .hig_timing import warm_median
from .methods import Diverged, get_method, optimizer_arguments, resolve_hyperparameters
from .results import dash_or, write_benchmark


def time_optimizers(problem: Any, optimizers: Sequence[str], repeats: int = 3,
                    batch_size: int | None = None) -> list[dict[str, Any]]:
    """One row per optimizer: batch size, median seconds per iteration, peak extra bytes."""
    rows = [time_one(problem, name, repeats, batch_size) for name in optimizers]
    return add_ratios(rows)


def time_one(problem: Any, name: str, repeats: int, batch_size: int | None = None) -> dict[str, Any]:
    """Median seconds per training iteration and peak extra bytes of optimizer ``name`` on ``problem``."""
    method = get_method(name)
    hp = resolve_hyperparameters(method, problem, {"batch_size": batch_size} if batch_size else None)
    batch = problem.sample(hp["batch_size"], torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    step = method.build(problem.default_network(), problem, optimizer_arguments(hp))
    row = {"problem": problem.name, "optimizer": name, "batch": hp["batch_size"], "repeats": repeats}
    try:
        t = warm_median(lambda: step(batch), problem.device, repeats)
        row.update(step_s=t["step_s"], peak_bytes=t["peak_bytes"], note=None)
    except Diverged as err:
        row.update(step_s=None, peak_bytes=None, note=f"diverged: {err}")
    return row


def time_one_isolated(problem: str, preset: str, name: str, repeats: int, device: torch.device) -> dict[str, Any]:
    """:func:`time_one` in a fresh Python process with this process's torch thread count."""
    spec = json.dumps({"problem": problem, "preset": preset, "optimizer": name, "repeats": repeats,
                       "device": str(device), "threads": torch.get_num_threads()})
    proc = subprocess.run([sys.executable, "-m", "physopt.bench.speed", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"problem": problem, "optimizer": name, "batch": None, "repeats": repeats, "step_s": None,
                "peak_bytes": None, "note": f"process failed ({proc.returncode}): {proc.stderr.strip()[-200:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _main(spec_json: str) -> None:
    from problems import get_problem
    from problems.presets import get_preset
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    preset = get_preset(spec["problem"], spec["preset"])
    problem = get_problem(spec["problem"], device=spec["device"], **preset.config)
    print(json.dumps(time_one(problem, spec["optimizer"], spec["repeats"], preset.batch_size)))


def add_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """time_vs_adam and memory_vs_adam per row, against the Adam row of the same problem."""
    for r in rows:
        adam = next((a for a in rows if a["problem"] == r["problem"] and a["optimizer"] == "adam" and a["step_s"]),
                    None)
        r["time_vs_adam"] = r["step_s"] / adam["step_s"] if adam and r["step_s"] else None
        r["memory_vs_adam"] = (r["peak_bytes"] / adam["peak_bytes"]
                               if adam and r["peak_bytes"] and adam["peak_bytes"] else None)
    return rows


def format_speed(rows: list[dict[str, Any]]) -> str:
    head = (f"{'problem':<15} {'optimizer':<9} {'batch':>5} {'ms / it':>10} {'vs adam':>8} {'peak MiB':>9} "
            f"{'vs adam':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['problem']:<15} {r['optimizer']:<9} {r['batch']:>5} {dash_or(r['step_s'], 1e3):>10} "
                     f"{dash_or(r['time_vs_adam'], fmt='{:.3g}x'):>8} "
                     f"{dash_or(r['peak_bytes'], 2 ** -20, '{:.1f}'):>9} "
                     f"{dash_or(r['memory_vs_adam'], fmt='{:.3g}x'):>8}" + (f"  {r['note']}" if r["note"] else ""))
    return "\n".join(lines)


def run_speed(problems: Sequence[str] | None = None, preset: str = "standard", repeats: int = 3,
              device: torch.device = torch.device("cpu"), out: str | Path | None = None,
              command: str | None = None, progress: Callable[[str], None] | None = None,
              isolated: bool = True) -> list[dict[str, Any]]:
    """The speed table over ``problems`` (default: all) with each problem's canonical optimizers, at the problem
    sizes of ``preset``; written to ``out/speed.json`` and ``out/speed.txt`` after each problem."""
    from problems import get_problem, list_problems
    from problems.presets import get_preset
    names = list(problems) if problems else list_problems()
    plans = [(name, get_preset(name, preset)) for name in names]
    rows: list[dict[str, Any]] = []
    for name, p in plans:
        if progress:
            progress(f"speed: {name} ({preset} sizes)")
        problem = get_problem(name, device=device, **p.config)
        if isolated:
            rows += add_ratios([time_one_isolated(name, preset, o, repeats, device)
                                for o in problem.default_optimizers])
        else:
            rows += time_optimizers(problem, problem.default_optimizers, repeats, p.batch_size)
        if out is not None:
            write_benchmark(out, "speed", command, device, format_speed(rows),
                            {"preset": preset, "rows": rows})
    return rows


if __name__ == "__main__":  # pragma: no cover - the fresh process of time_one_isolated
    _main(sys.argv[1])
