"""Statistics of a comparison summary: per optimizer the final held-out metrics over seeds, ratios to Adam, seeds
below Adam, and the plain-text table ``physopt compare`` prints."""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable

from .table import Column, format_table, text_column


def mean_std(values: Iterable[float | None], sep: str = " +- ") -> str:
    """'mean<sep>std' over the finite values ('-' if none; the value alone if one)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.4g}"
    return f"{statistics.mean(vals):.4g}{sep}{statistics.stdev(vals):.2g}"


def runs_by_optimizer(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for r in summary["runs"]:
        grouped.setdefault(r["optimizer"], []).append(r)
    return grouped


def default_metric(summary: dict[str, Any]) -> str:
    """``x_error`` where the problem has a ground truth (any run recorded one), else ``loss``."""
    return "x_error" if any(r["final"].get("x_error") is not None for r in summary["runs"]) else "loss"


def final_values(summary: dict[str, Any], metric: str) -> dict[str, dict[int, float]]:
    """Final held-out ``metric`` per optimizer and seed (finite values only)."""
    values: dict[str, dict[int, float]] = {}
    for opt, rs in runs_by_optimizer(summary).items():
        values[opt] = {r["seed"]: r["final"][metric] for r in rs
                       if r["final"].get(metric) is not None and math.isfinite(r["final"][metric])}
    return values


def ratios_to_adam(summary: dict[str, Any], metric: str | None = None) -> tuple[str, dict[str, float]]:
    """Adam's mean final ``metric`` divided by each other optimizer's (> 1: lower than Adam).

    ``metric`` defaults to :func:`default_metric`. Returns (metric, ratios).
    """
    metric = metric or default_metric(summary)
    means = {o: statistics.mean(v.values()) for o, v in final_values(summary, metric).items() if v}
    if "adam" not in means:
        return metric, {}
    return metric, {o: means["adam"] / v for o, v in means.items() if o != "adam" and v > 0}


def seeds_below_adam(summary: dict[str, Any], metric: str | None = None) -> dict[str, tuple[int, int]]:
    """Per optimizer (not Adam): in how many of the seeds both ran its final ``metric`` is below Adam's with the
    same seed (same initial weights and data), as (count, seeds compared)."""
    values = final_values(summary, metric or default_metric(summary))
    adam = values.get("adam", {})
    out = {}
    for opt, v in values.items():
        shared = sorted(set(v) & set(adam))
        if opt != "adam" and shared:
            out[opt] = (sum(v[s] < adam[s] for s in shared), len(shared))
    return out


def component_names(summary: dict[str, Any]) -> list[str]:
    """Names of the problem's component losses recorded in the runs' final metrics (besides loss and x_error)."""
    return sorted({k for r in summary["runs"] for k in r["final"] if k not in ("loss", "x_error")})


def format_batch(batch_size: Any) -> str:
    """One batch size for all optimizers, or 'opt b, ...' where the paper used different ones."""
    if isinstance(batch_size, dict):
        sizes = set(batch_size.values())
        return str(sizes.pop()) if len(sizes) == 1 else ", ".join(f"{o} {b}" for o, b in batch_size.items())
    return str(batch_size)


def optimizer_rows(summary: dict[str, Any], sep: str = " +- ") -> list[dict[str, Any]]:
    """Per optimizer: its runs' mean (+- std over seeds) of iterations, training seconds, final held-out loss,
    x-space error and component losses (as strings), its hyperparameters and the statuses of its runs."""
    rows = []
    for opt, rs in runs_by_optimizer(summary).items():
        failed = sorted({r["status"].split(":")[0] for r in rs} - {"ok"})
        rows.append({"optimizer": opt, "runs": len(rs),
                     "failed": "".join(f" ({sum(r['status'].split(':')[0] == f for r in rs)} of {len(rs)} {f})"
                                       for f in failed),
                     "status": ", ".join(sorted({r["status"].split(":")[0] for r in rs})),
                     "hyperparameters": ", ".join(f"{k}={v}" for k, v in rs[0]["hyperparameters"].items()),
                     "iterations": mean_std((r["iterations"] for r in rs), sep),
                     "wall_time_s": mean_std((r["wall_time_s"] for r in rs), sep),
                     "loss": mean_std((r["final"]["loss"] for r in rs), sep),
                     "x_error": mean_std((r["final"]["x_error"] for r in rs), sep),
                     **{c: mean_std((r["final"].get(c) for r in rs), sep) for c in component_names(summary)}})
    return rows


def ratio_sentence(summary: dict[str, Any]) -> tuple[str, str] | None:
    """(the metric's name, 'opt: 3.1x, ...'): Adam's mean final metric over each optimizer's, or None without Adam."""
    metric, ratios = ratios_to_adam(summary)
    if not ratios:
        return None
    name = summary.get("x_error_name", "x_error") if metric == "x_error" else "held-out loss"
    return name, ratios


def format_summary(summary: dict[str, Any]) -> str:
    """The plain-text table ``physopt compare`` prints: per optimizer the mean (+- std over seeds) of the final
    held-out metrics, then the component losses and the ratios to Adam."""
    err_name = summary.get("x_error_name", "x_error")
    rows = optimizer_rows(summary)
    columns = [text_column("optimizer", "optimizer"), Column("iterations", "iterations"),
               Column("time [s]", "wall_time_s"), text_column("held-out loss", "loss"),
               text_column(err_name, "x_error"), text_column("status", "status")]
    lines = [f"problem {summary['problem']}  device {summary['device']}  batch {format_batch(summary['batch_size'])}  "
             f"seeds {summary['seeds']}  torch {summary['torch']}"
             + (f"  physopt {summary['provenance'].get('physopt')}" if isinstance(summary.get("provenance"), dict)
                else ""), format_table(rows, columns)]
    for name in component_names(summary):
        lines.append(f"  {name}: " + ", ".join(f"{r['optimizer']} {r[name]}" for r in rows))
    ratios = ratio_sentence(summary)
    if ratios:
        name, values = ratios
        lines.append(f"{name} of adam / {name} of optimizer (> 1: better than adam): "
                     + ", ".join(f"{o}: {v:.3g}x" for o, v in values.items()))
    return "\n".join(lines)
