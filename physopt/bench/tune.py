"""Learning-rate tuning on short runs (``physopt tune``), as the papers did per optimizer.

Every candidate rate trains the problem's default network from the same initial weights on the same data stream
(:func:`physopt.bench.train.train_run`, one seed) and is scored on a validation set drawn with its own seed, so the
held-out set that ``physopt compare`` reports stays unseen. The best rate is the one with the lowest final
validation x-space error (the loss where the problem has no ground truth); a diverged run scores +inf.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from physopt.validation import check_number

from .progress import ProgressLike, as_progress
from .storage import file_stem, write_benchmark
from .train import HELD_OUT_SEED, check_seed, train_run

VALIDATION_SEED = HELD_OUT_SEED - 1


def fixed_settings(hyperparameters: dict[str, Any] | None) -> dict[str, Any]:
    """The settings a tuning held fixed (``--hparam``), as its file records them: with the best searched ones they
    are the configuration that was scored, which ``--hparam-file`` and the printed command hand on together."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in (hyperparameters or {}).items()}


def cli_value(value: Any) -> str:
    """A setting as ``--hparam`` reads it back: numbers with %g, tuples comma-separated, bools true/false."""
    if isinstance(value, (list, tuple)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


def validation_set(problem: Any, size: int | None = None):
    """The batch candidates are scored on: ``size`` examples (default: the held-out size) drawn with
    :data:`VALIDATION_SEED`, never the held-out set ``compare`` reports."""
    n = size if size is not None else problem.benchmark.held_out_size
    return problem.sample(n, torch.Generator().manual_seed(VALIDATION_SEED))


def tuning_settings(problem: Any, *, seed: int, iterations: int | None, time_budget: float | None,
                    validation_size: int | None = None) -> dict[str, Any]:
    """What a learning-rate tuning of ``problem`` is scored under, as its file records it (and as
    :func:`check_tuning_target` compares it before a recorded tuning is continued): seed, iteration and time budget,
    validation size, the problem's config and device."""
    return {"seed": seed, "iterations": iterations, "time_budget_s": time_budget,
            "validation_size": validation_size if validation_size is not None else problem.benchmark.held_out_size,
            "config": dataclasses.asdict(problem.config), "device": str(problem.device)}


def tune(problem: Any, optimizer: str, lrs: Sequence[float], *, iterations: int | None = None,
         time_budget: float | None = None, seed: int = 0, batch_size: int | None = None,
         hyperparameters: dict[str, Any] | None = None, validation_size: int | None = None,
         progress: ProgressLike = None, reuse: Sequence[dict[str, Any]] = (),
         save: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    """Train ``optimizer`` once per learning rate in ``lrs`` and return the rows and the best rate.

    ``reuse``: rows of an earlier tuning with the same settings (:func:`check_tuning_target` finds them); a rate
    among them is not trained again. ``save(result)`` is called after every candidate with the result so far
    (``complete`` False until the last), so an interrupted tuning keeps what it finished."""
    if not lrs:
        raise ValueError("give at least one learning rate")
    for lr in lrs:
        check_number("lr", lr, low=0, low_inclusive=False)
    repeated = sorted({lr for lr in lrs if list(lrs).count(lr) > 1})
    if repeated:
        raise ValueError(f"the learning rates must be distinct, got {repeated} more than once (each candidate trains "
                         f"once)")
    check_seed(seed)
    settings = tuning_settings(problem, seed=seed, iterations=iterations, time_budget=time_budget,
                               validation_size=validation_size)
    validation = validation_set(problem, settings["validation_size"])
    report = as_progress(progress)
    earlier = {row["lr"]: row for row in reuse}
    rows: list[dict[str, Any]] = []
    header = {"problem": problem.name, "optimizer": optimizer, **settings, "validation_seed": VALIDATION_SEED,
              "fixed": fixed_settings({k: v for k, v in (hyperparameters or {}).items() if k != "lr"}),
              "lrs": list(lrs)}
    for lr in lrs:
        if lr in earlier:
            rows.append(earlier[lr])
            report.log(f"  {optimizer} lr {lr:g}: {earlier[lr]['score']:.4g}, reused from the earlier tuning")
        else:
            run = train_run(problem, optimizer, seed, iterations=iterations, time_budget=time_budget,
                            batch_size=batch_size, hyperparameters={**(hyperparameters or {}), "lr": lr},
                            evaluations=1, held_out=validation, progress=report)
            metric = "x_error" if run.final.get("x_error") is not None else "loss"
            value = run.final[metric]
            score = value if run.status == "ok" and value is not None and math.isfinite(value) else math.inf
            rows.append({"lr": lr, "metric": metric, "score": score, "final": run.final, "status": run.status,
                         "iterations": run.iterations, "wall_time_s": run.wall_time_s,
                         "hyperparameters": run.hyperparameters})
            report.log(f"  {optimizer} lr {lr:g}: {metric} {score:.4g} ({run.status}, {run.iterations} its)")
        best = min(rows, key=lambda r: r["score"])
        result = {**header, "batch_size": rows[0]["hyperparameters"].get("batch_size"), "rows": list(rows),
                  "complete": len(rows) == len(lrs), "best_lr": None if math.isinf(best["score"]) else best["lr"]}
        if save is not None:
            save(result)
    return result


def format_tuning(result: dict[str, Any]) -> str:
    lines = [f"{'lr':>10} {'validation ' + result['rows'][0]['metric']:>22} {'iterations':>10} {'time [s]':>9}  status",
             "-" * 66]
    for r in result["rows"]:
        mark = "  <- best" if r["lr"] == result["best_lr"] else ""
        lines.append(f"{r['lr']:>10g} {r['score']:>22.4g} {r['iterations']:>10} {r['wall_time_s']:>9.1f}  "
                     f"{r['status'].split(':')[0]}{mark}"
                     + (f"  (trained at commit {str(r['from_commit'])[:10]})" if r.get("from_commit") else ""))
    best, complete = result["best_lr"], result.get("complete", True)
    if best is not None and not complete:
        lines.append(f"\nbest lr so far for {result['optimizer']} on {result['problem']}: {best:g}")
    elif best is not None:
        lines.append(f"\nbest lr for {result['optimizer']} on {result['problem']}: {best:g} "
                 f"(use it with: physopt compare {result['problem']} --optimizers {result['optimizer']} "
                 f"--hparam {result['optimizer']}.lr={best:g}"
                 + "".join(f" --hparam {result['optimizer']}.{k}={cli_value(v)}"
                           for k, v in result.get("fixed", {}).items()) + ")")
    if best is None:
        lines.append("every candidate diverged: try smaller learning rates")
    if not complete:
        lines.append(f"{len(result['rows'])} of {len(result['lrs'])} candidates so far: run the command again to "
                     f"train the rest (finished ones are reused)")
    return "\n".join(lines)


def tuning_path(out: str | Path, problem: str, optimizer: str) -> Path:
    return Path(out) / f"{file_stem(problem)}_{file_stem(optimizer)}.json"


def recorded_setting(old: dict[str, Any], key: str, legacy_config: dict[str, Any] | None = None) -> Any:
    """A setting as a tuning file records it. ``lrs``: the rates it holds candidates for; ``hyperparameters``: its
    candidates' settings but the rate. Files written before ``config`` and ``device`` were recorded: the device
    from the machine, the config ``legacy_config`` (the problem's defaults) when their command gave no ``--param``."""
    if key == "lrs":
        return [r["lr"] for r in old["rows"]]
    if key == "hyperparameters":
        return {k: v for k, v in old["rows"][0]["hyperparameters"].items() if k != "lr"}
    if key == "device" and "device" not in old:
        return old["machine"]["device"]
    if key == "config" and "config" not in old:
        return legacy_config if "--param" not in old.get("command", "--param") else "not recorded"
    return old.get(key)


def check_tuning_target(out: str | Path, problem: str, optimizer: str, settings: dict[str, Any],
                        force: bool = False, legacy_config: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Before anything trains: ValueError when ``out`` already holds a tuning of this problem and optimizer made with
    other ``settings``: a shorter or other search must not replace it silently. An unreadable file counts as other
    settings; ``force`` replaces it (and reuses nothing).

    A learning-rate tuning (``settings`` has ``lrs``) whose other settings are the same continues the recorded one:
    returned are the rows to reuse, when ``lrs`` holds every rate the file has candidates for (a grid extended, an
    interrupted tuning run again); a list that leaves recorded rates out is refused."""
    path = tuning_path(out, problem, optimizer)
    if force or not path.exists():
        return []
    plain = json.loads(json.dumps(settings))
    try:
        old = json.loads(path.read_text())
        before = {k: recorded_setting(old, k, legacy_config) for k in plain}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        old, before = None, {"file": "unreadable"}
    changed = [k for k in plain if k != "lrs" and before.get(k) != plain[k]]
    if old is None or changed:
        detail = ", ".join(f"{k} {before.get(k)} (here {plain.get(k)})" for k in changed) or "it cannot be read"
        raise ValueError(f"{path} holds a tuning made with other settings ({detail}); not replaced: use another "
                         f"--out, or --force to replace it")
    if "lrs" not in plain:
        return []
    left_out = [lr for lr in before["lrs"] if lr not in plain["lrs"]]
    if left_out:
        raise ValueError(f"{path} holds candidates for lr {', '.join(f'{lr:g}' for lr in left_out)}, which --lrs "
                         f"leaves out; give them too to extend that tuning (they are reused, not trained again), "
                         f"another --out, or --force to replace it")
    commit = (old.get("provenance") or {}).get("git_commit")
    return [{**row, "from_commit": row.get("from_commit", commit)} for row in old["rows"]]


def write_tuning(out: str | Path, result: dict[str, Any], command: str | None) -> Path:
    """Record the result as ``out/PROBLEM_OPTIMIZER.json`` and ``.txt`` (with the command and the machine)."""
    return write_benchmark(out, tuning_path(out, result["problem"], result["optimizer"]).stem, command,
                           torch.device("cpu"), format_tuning(result), result)
