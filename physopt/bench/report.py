"""results/README.md from the summary.json files under a results directory (``physopt report``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from filelock import FileLock

from .provenance import provenance_label, same_release, version_of
from .storage import atomic_write, machine_label
from .summary import (component_names, default_metric, final_values, format_batch, optimizer_rows, ratio_sentence,
                      ratios_to_adam, seeds_below_adam)
from .table import format_table, text_column

PM = " ± "
#: text outputs of the benchmark commands that the report shows verbatim, with their section titles
BENCHMARK_FILES = {"timing.txt": "Timing", "step_timing.txt": "Simulation step timing",
                   "inference.txt": "Inference vs iterative solver", "speed.txt": "Speed per iteration vs Adam",
                   "spread_timing.txt": "HIG spread over processes"}
#: tables written as Markdown (physopt pde-control, physopt solver-in-the-loop), included as they are, each under its
#: own first heading
MARKDOWN_FILES = ("table1.md",)


def section_title(summary: dict[str, Any], rel_dir: str) -> str:
    """A summary's section title: its directory (the problem, or PRESET-DEVICE/problem) and device."""
    return f"{rel_dir} ({summary['device']})"


def anchor(title: str) -> str:
    """The link target GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return "".join(c for c in title.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def summary_markdown(summary: dict[str, Any], rel_dir: str) -> str:
    """One section: the command, the machine, a table of final held-out metrics, the plot."""
    err_name = summary.get("x_error_name", "x_error")
    components = component_names(summary)
    m = summary.get("machine", {})
    lines = [f"## {section_title(summary, rel_dir)}", "",
             f"Command: `{summary.get('command') or '(python API)'}`  ",
             f"Machine: {machine_label(m)}, torch {summary['torch']}, "
             f"Python {m.get('python', '?')}; created {summary.get('created', '?')}  ",
             *provenance_lines(summary),
             *machines_line(summary),
             f"Batch {format_batch(summary['batch_size'])}, seeds {summary['seeds']}, "
             + (f"{summary['iterations']} iterations" if summary.get("iterations") else
                f"{summary['time_budget_s']:g} s per run"), "",
             *summary_table(summary, err_name, components).splitlines()]
    ratios = ratio_sentence(summary)
    if ratios:
        name, values = ratios
        lines += ["", f"Adam's {name} divided by each optimizer's (above 1: lower than Adam): "
                  + ", ".join(f"{o} {v:.3g}x" for o, v in values.items()) + "."]
    lines += ["", f"![{summary['problem']}]({rel_dir}/curves.png)", ""]
    return "\n".join(lines)


def summary_table(summary: dict[str, Any], err_name: str, components: list[str]) -> str:
    """The markdown table of one section: per optimizer (with its failed runs counted) its hyperparameters and the
    mean ± std over seeds of iterations, training time and the final held-out metrics."""
    rows = [dict(r, name=r["optimizer"] + r["failed"]) for r in optimizer_rows(summary, PM)]
    columns = [text_column("optimizer", "name"), text_column("hyperparameters", "hyperparameters"),
               text_column("iterations", "iterations"), text_column("train time [s]", "wall_time_s"),
               text_column("held-out loss", "loss"), text_column(f"held-out {err_name}", "x_error"),
               *(text_column(c, c) for c in components)]
    return format_table(rows, columns, style="markdown")


def machines_line(summary: dict[str, Any]) -> list[str]:
    """When the runs record where they ran and that is not simply the summary's machine (a resumed benchmark that
    kept runs made elsewhere), which seeds ran where: wall-clock budgets are comparable only within one machine."""
    seeds: dict[str, set[int]] = {}
    for r in summary["runs"]:
        seeds.setdefault(r.get("machine") or "not recorded", set()).add(r["seed"])
    if set(seeds) in ({"not recorded"}, {machine_label(summary.get("machine", {}))}):
        return []
    return ["Runs by machine: " + "; ".join(f"{m}: seeds {', '.join(map(str, sorted(s)))}"
                                           for m, s in seeds.items()) + "  "]


def provenance_lines(summary: dict[str, Any]) -> list[str]:
    """What made the runs: the summary's physopt version and commit, and which seeds of which optimizers were made by
    another version (kept with --keep-stale). Nothing for summaries written before provenance was recorded."""
    if "provenance" not in summary:
        return []
    here = provenance_label(summary["provenance"])
    others: dict[str, list[str]] = {}
    for r in summary["runs"]:
        if not same_release(r.get("provenance"), summary["provenance"]):
            others.setdefault(version_of(r.get("provenance")), []).append(f"{r['optimizer']} seed {r['seed']}")
    lines = [f"Made by {here}  "]
    lines += [f"Kept from {version}: {', '.join(runs)}  " for version, runs in others.items()]
    return lines


def run_length(summary: dict[str, Any]) -> str:
    """'300 iterations', '120 s (equal wall-clock)' or both."""
    parts = []
    if summary.get("iterations"):
        parts.append(f"{summary['iterations']} iterations")
    if summary.get("time_budget_s"):
        parts.append(f"{summary['time_budget_s']:g} s (equal wall-clock)")
    return " or ".join(parts)


def overview_markdown(summaries: list[tuple[dict[str, Any], str]]) -> str:
    """One row per summary: its optimizers ordered by their mean final held-out metric (best first) and, per
    optimizer, the ratio to Adam and the seeds in which it ended below Adam. Computed from the files, so the order
    stated here is the order in them."""
    lines = ["## Overview", "",
             "Final held-out metric per problem (x-space error where the problem has a ground truth, else the loss), "
             "optimizers ordered best first by their mean over seeds. 'vs Adam': Adam's mean divided by the "
             "optimizer's (above 1: better than Adam) and in how many seeds it ended below Adam's run with the same "
             "seed (same initial weights and data).", "",
             "| problem | device | length per run | metric | best first (mean) | vs Adam |",
             "| --- | --- | --- | --- | --- | --- |"]
    for summary, rel_dir in summaries:
        metric = default_metric(summary)
        name = summary.get("x_error_name", "x_error") if metric == "x_error" else "loss"
        means = {o: sum(v.values()) / len(v) for o, v in final_values(summary, metric).items() if v}
        order = " < ".join(f"{o} {means[o]:.3g}" for o in sorted(means, key=means.get))
        _, ratios = ratios_to_adam(summary, metric)
        wins = seeds_below_adam(summary, metric)
        vs = ", ".join(f"{o} {ratios[o]:.3g}x ({wins[o][0]}/{wins[o][1]})" for o in ratios if o in wins)
        lines.append(f"| [{rel_dir}](#{anchor(section_title(summary, rel_dir))}) | {summary['device']} | "
                     f"{run_length(summary)} | {name} | {order} | {vs or '-'} |")
    return "\n".join(lines + [""])


def write_report(results_dir: str | Path, intro: str = "") -> Path:
    """Regenerate ``results_dir/README.md`` from every ``*/summary.json`` below it, under a file lock, so that two
    commands sharing ``results_dir`` never write a README from summaries one of them has since replaced."""
    root = Path(results_dir)
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".report.lock"):
        return _write_report(root, intro)


def _write_report(root: Path, intro: str) -> Path:
    summaries, rendered = [], []
    for path in sorted(root.glob("**/summary.json")):
        try:
            summary = json.loads(path.read_text())
            rendered.append(summary_markdown(summary, path.parent.relative_to(root).as_posix()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a summary written by physopt compare ({type(err).__name__}: {err}); "
                             f"regenerate it with the command that made it, or move it out of {root}") from None
        summaries.append((summary, path.parent.relative_to(root).as_posix()))
    sections = ([overview_markdown(summaries)] if summaries else []) + rendered
    head = ["# Results", "",
            "Generated by `physopt report " + root.as_posix() + "` from the `summary.json` files below; each section "
            "names the command that produced it. Errors and losses are means over a fixed held-out set at the end "
            "of training (± standard deviation over seeds where there are several).", ""]
    if intro:
        head += [intro, ""]
    # benchmark outputs (hig-timing, zcs-bench, tangentprop-bench, ns-step-bench, ns-inference), verbatim
    for path in sorted(p for name in BENCHMARK_FILES for p in root.glob(f"**/{name}")):
        sections += [f"## {BENCHMARK_FILES[path.name]}: {path.parent.relative_to(root).as_posix()}", "", "```",
                     path.read_text().rstrip(), "```", ""]
    for path in sorted(p for name in MARKDOWN_FILES for p in root.glob(f"**/{name}")):
        body = path.read_text().rstrip().splitlines()
        title = path.name
        if body and body[0].startswith("# "):
            title, body = body[0][2:].strip(), body[1:]
        sections += [f"## {title}: {path.parent.relative_to(root).as_posix()}", *body, ""]
    out = root / "README.md"
    atomic_write(out, "\n".join(head + sections))
    return out
