"""Results on disk: one JSON file per finished run (so interrupted comparisons resume), summary.json, curves.csv,
benchmark outputs, and the record of the machine they were measured on.

Every file is written to a temporary name and renamed into place, so an interrupted write never leaves a
truncated file behind.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Iterable

import torch
from filelock import FileLock

from .provenance import provenance, provenance_label
from .train import RunResult


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename; a file that already holds exactly ``text`` is
    left untouched (so regenerating an unchanged result changes nothing on disk, not even its time stamp)."""
    try:
        if path.read_text() == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)     # only still there if the write or the rename failed


def machine_info(device: torch.device) -> dict[str, Any]:
    """Where a result was measured: device name, CPU, threads, versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"device": str(device), "cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_label(machine: dict[str, Any]) -> str:
    """A short name for a ``machine_info`` record, e.g. ``"AMD EPYC, 2 torch threads"``: what tells runs made on
    different machines apart (their wall-clock times are not comparable)."""
    return f"{machine.get('gpu') or machine.get('cpu', '?')}, {machine.get('torch_threads', '?')} torch threads"


def markdown_header(title: str, data: dict[str, Any]) -> list[str]:
    """The head of a Markdown results table: its title, the command and the machine and physopt that made it (from
    ``data``'s 'command', 'machine' (``machine_info``) and 'provenance' records)."""
    machine = data.get("machine", {})
    return [f"# {title}", "", f"Command: `{data.get('command')}`", "",
            f"Machine: {machine_label(machine)}, torch {machine.get('torch', '?')}; "
            f"{provenance_label(data.get('provenance'))}", ""]


def write_benchmark(out: str | Path, name: str, command: str | None, device: torch.device, text: str,
                    payload: dict[str, Any]) -> Path:
    """A benchmark's output: ``out/name.json`` (command, machine, provenance and ``payload``) and ``out/name.txt``
    (command, machine, physopt version and the formatted ``text``), both written atomically. Returns the .json
    path."""
    out = Path(out)
    machine, made_by = machine_info(device), provenance()
    atomic_write(out / f"{name}.json", json.dumps({"command": command, "machine": machine, "provenance": made_by,
                                                   **payload}, indent=2))
    atomic_write(out / f"{name}.txt", f"command: {command}\nmachine: {machine}\n{provenance_label(made_by)}\n\n"
                                      f"{text}\n")
    return out / f"{name}.json"


def file_stem(name: str) -> str:
    """``name`` (an optimizer or problem, possibly an import path such as ``mypkg.opt:MyOpt``) as a portable file name
    part: characters other than letters, digits, '.', '_' and '-' become '-'; built-in names stay as they are."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)


def run_path(out: Path, optimizer: str, seed: int) -> Path:
    return out / "runs" / f"{file_stem(optimizer)}_seed{seed}.json"


def checkpoint_path(out: Path, optimizer: str, seed: int) -> Path:
    """Where an unfinished run keeps its state (:func:`physopt.bench.train.train_run`), so that the same command
    continues it after an interruption; removed once the run file is written."""
    return out / "runs" / f"{file_stem(optimizer)}_seed{seed}.partial.pt"


def run_lock(out: Path, optimizer: str, seed: int) -> FileLock:
    """The lock a command holds while it trains one run into ``out``: two commands writing one directory at once
    never train the same run twice (an OS file lock, released when its process dies, even by kill -9)."""
    path = out / "runs" / f".{file_stem(optimizer)}_seed{seed}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def summary_lock(out: Path) -> FileLock:
    """The lock held while the summary of ``out`` is assembled and written."""
    out.mkdir(parents=True, exist_ok=True)
    return FileLock(out / ".summary.lock")


def save_run(out: Path, spec: dict[str, Any], result: RunResult) -> None:
    atomic_write(run_path(out, result.optimizer, result.seed),
                 json.dumps({"spec": spec, "result": result.to_json()}, indent=1))


#: config fields added after run files were written, with the value that does what runs without the field did:
#: a spec holding that value describes the same run as one without the field
ADDED_CONFIG_FIELDS = {"unet_batch_norm": True}


def _comparable(spec: Any) -> Any:
    """A run spec in today's layout, so finished runs written in earlier layouts are still recognised: without the
    copy of ``batch_size`` inside ``hyperparameters`` (older specs carry it only as the ``batch_size`` field), with
    the held-out size as ``held_out_size`` (older specs carry it as the config field ``test_size``), and without
    config fields added later at the value older runs implied (:data:`ADDED_CONFIG_FIELDS`)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("hyperparameters"), dict):
        return spec
    spec = {**spec, "hyperparameters": {k: v for k, v in spec["hyperparameters"].items() if k != "batch_size"}}
    config = spec.get("config")
    if isinstance(config, dict):
        if "test_size" in config:
            spec.setdefault("held_out_size", config["test_size"])
        spec["config"] = {k: v for k, v in config.items()
                          if k != "test_size" and not (k in ADDED_CONFIG_FIELDS and v == ADDED_CONFIG_FIELDS[k])}
    return spec


#: the fields of a run spec that name the run; the rest (the setting) is shared by every run of one comparison
RUN_NAME_FIELDS = ("optimizer", "seed")
#: per-optimizer fields: runs of different optimizers in one comparison differ in these
PER_OPTIMIZER_FIELDS = ("hyperparameters", "batch_size")


class RunFileError(ValueError):
    """A file under ``runs/`` that cannot be read as a finished run (truncated, edited, from another program)."""

    def __init__(self, path: Path, message: str):
        super().__init__(message)
        self.path = path


@dataclasses.dataclass
class StoredRun:
    path: Path
    spec: dict[str, Any]
    result: RunResult


def read_run(path: Path) -> StoredRun:
    """One run file; RunFileError naming the file (and what to do) if it is not a complete run."""
    try:
        data = json.loads(path.read_text())
        spec, result = data["spec"], RunResult.from_json(data["result"])
        if not isinstance(spec, dict) or (spec.get("optimizer"), spec.get("seed")) != (result.optimizer, result.seed):
            raise ValueError("its spec and its result name different runs")
        _check_result(result)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise RunFileError(path, f"{path} is not a complete run file ({type(err).__name__}: {err}); delete it to "
                                 f"retrain that run, or pass --force to retrain every run whose file is "
                                 f"unusable") from None
    return StoredRun(path, spec, result)


def _check_result(r: RunResult) -> None:
    """ValueError naming the first field of a loaded run that has the wrong type (a file edited by hand)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    checks = [("optimizer", isinstance(r.optimizer, str)), ("seed", isinstance(r.seed, int)),
              ("iterations", isinstance(r.iterations, int) and r.iterations >= 0),
              ("wall_time_s", number(r.wall_time_s) and r.wall_time_s >= 0),
              ("final", isinstance(r.final, dict) and all(v is None or number(v) for v in r.final.values())),
              ("hyperparameters", isinstance(r.hyperparameters, dict)), ("status", isinstance(r.status, str)),
              ("init_checksum", isinstance(r.init_checksum, str)), ("curve", isinstance(r.curve, list) and r.curve),
              ("machine", r.machine is None or isinstance(r.machine, str)),
              ("provenance", r.provenance is None or isinstance(r.provenance, dict)),
              ("worker", r.worker is None or isinstance(r.worker, dict))]
    bad = next((name for name, ok in checks if not ok), None)
    if bad is not None:
        raise ValueError(f"its field result.{bad} has the wrong type or value: {getattr(r, bad)!r}")


def stored_runs(out: Path) -> tuple[dict[tuple[str, int], StoredRun], list[RunFileError]]:
    """Every run file in ``out/runs/`` by (optimizer, seed), and the errors of the files that cannot be read."""
    runs, broken = {}, []
    for path in sorted((out / "runs").glob("*.json")):
        try:
            run = read_run(path)
        except RunFileError as err:
            broken.append(err)
            continue
        runs[(run.result.optimizer, run.result.seed)] = run
    return runs, broken


def setting(spec: dict[str, Any]) -> dict[str, Any]:
    """What runs of one comparison share: the spec without the run's name and its optimizer's own settings."""
    spec = _comparable(json.loads(json.dumps(spec)))
    return {k: v for k, v in spec.items() if k not in RUN_NAME_FIELDS + PER_OPTIMIZER_FIELDS}


def same_run(stored: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether a stored spec describes exactly the run ``spec`` asks for."""
    return _comparable(stored) == _comparable(json.loads(json.dumps(spec)))


def difference(stored: dict[str, Any], spec: dict[str, Any]) -> str:
    """The fields in which two specs differ, e.g. ``iterations 300 (here 5)``."""
    a, b = _comparable(stored), _comparable(json.loads(json.dumps(spec)))
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k} {_short(a.get(k))} (here {_short(b.get(k))})" for k in keys) or "nothing"


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_run(out: Path, optimizer: str, seed: int, spec: dict[str, Any]) -> RunResult | None:
    """A finished run with exactly this spec, or None (missing, unreadable or made with other settings)."""
    try:
        run = read_run(run_path(out, optimizer, seed))
    except RunFileError:
        return None
    return run.result if same_run(run.spec, spec) else None


def write_summary(out: Path, header: dict[str, Any], runs: Iterable[RunResult]) -> dict[str, Any]:
    runs = list(runs)
    summary = dict(header)
    summary["runs"] = [{k: v for k, v in r.to_json().items() if k != "curve"} for r in runs]
    atomic_write(out / "summary.json", json.dumps(summary, indent=2))
    buf = io.StringIO()
    w = csv.writer(buf)
    extra = sorted({k for r in runs for c in r.curve for k in c.extra})
    w.writerow(["optimizer", "seed", "iteration", "time_s", "loss", "x_error", "train_loss", *extra])
    for r in runs:
        for c in r.curve:
            w.writerow([r.optimizer, r.seed, c.iteration, f"{c.time_s:.6g}", _fmt(c.loss), _fmt(c.x_error),
                        _fmt(c.train_loss), *(_fmt(c.extra.get(k)) for k in extra)])
    atomic_write(out / "curves.csv", buf.getvalue())
    return summary


def _fmt(v: float | None) -> str:
    return "" if v is None else f"{v:.8g}"


def read_curves(path: Path) -> list[dict[str, Any]]:
    """Rows of a curves.csv with numbers parsed (None for empty cells)."""
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed: dict[str, Any] = {"optimizer": row["optimizer"], "seed": int(row["seed"]),
                                      "iteration": int(row["iteration"])}
            for k, v in row.items():
                if k not in parsed and k != "optimizer":
                    parsed[k] = float(v) if v not in ("", None) else None
            rows.append(parsed)
    return rows
