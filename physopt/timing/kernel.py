"""The one timing kernel of every micro-benchmark: wall time with ``torch.utils.benchmark``, peak memory, a device
sync, and one protocol for measuring in a fresh Python process.

Time: :func:`time_call` runs ``fn`` once as a warm-up (under :func:`measure_peak`), then lets
``torch.utils.benchmark.Timer.blocked_autorange`` choose how many calls make a reading (it synchronises CUDA around
each block) until there are ``min_runs`` readings; a call slower than ``min_time_s`` is read one call at a time,
exactly ``min_runs`` times. Every table reports the median and the
interquartile range (IQR) of those calls.

Operation count: :func:`count_ops` counts the ATen operations a call dispatches that compute something (views and
metadata-only reshapes left out). On a GPU each is about one kernel launch, so where launches dominate (small
tensors, many steps) a call's time scales with this count, whatever the device.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the level before the call; on the CPU the growth of
the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs`` before the call). A CPU
process that has already allocated and freed memory reuses that heap and under-reports, so benchmarks that compare
CPU peaks measure each case in a fresh process (:func:`run_isolated`).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.benchmark.utils.common import TaskSpec


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a wall-clock reading covers it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure_peak(fn: Callable[[], Any], device: torch.device) -> tuple[Any, int | None]:
    """Run ``fn`` once: (its result, the peak extra memory in bytes it needed, or None where unmeasurable)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        return out, torch.cuda.max_memory_allocated(device) - base
    try:
        Path("/proc/self/clear_refs").write_text("5")       # reset VmHWM to the current RSS
    except OSError:
        return fn(), None
    base = _proc_status("VmRSS")
    out = fn()
    peak = _proc_status("VmHWM")
    return out, None if (base is None or peak is None) else max(0, peak - base)


#: ATen operations that only relabel memory (no kernel) although their schema does not mark them as views
_METADATA_OPS = frozenset({"aten::_unsafe_view"})


class _OpCounter(TorchDispatchMode):
    """Counts the computing ATen operations dispatched below autograd (forward, backward and optimizer alike)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func.namespace == "aten" and func.name() not in _METADATA_OPS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn()`` once: (its result, the number of ATen operations it dispatched that compute something).

    Views (``view``, ``slice``, ``transpose``, ...) and metadata-only reshapes (``_unsafe_view``) are left out; every
    other operation of the ``aten`` namespace counts once, including those of a backward pass and an optimizer step
    inside ``fn`` (ops in threads that ``fn`` starts are not seen). On a GPU the count is about the number of kernel
    launches: a few counted operations launch none (wrapping a Python number in a tensor, reading one back), and
    some code paths differ by device (Adam's multi-tensor step on CUDA), so it is nearly, not exactly, the same on
    every machine."""
    counter = _OpCounter()
    with counter:
        out = fn()
    return out, counter.count


@dataclasses.dataclass
class Timing:
    """One measurement: the warm-up call's result and time, median and IQR of the timed calls (seconds per call),
    all timed calls, and the peak extra memory of the warm-up call (bytes, None where unmeasurable)."""
    first: Any
    warmup_s: float
    median_s: float
    iqr_s: float
    times_s: list[float]
    peak_bytes: int | None


def time_call(fn: Callable[[], Any], device: torch.device | str, *, min_runs: int = 3,
              min_time_s: float = 0.2) -> Timing:
    """Time ``fn()``: one warm-up call (its result and peak memory kept), then at least ``min_runs`` timed calls and
    at least ``min_time_s`` seconds of them (``torch.utils.benchmark``, at this process's torch thread count).
    A call slower than ``min_time_s`` is timed exactly ``min_runs`` times. ``times_s`` are seconds per call of
    each reading (a reading of a fast call averages a block of calls)."""
    if min_runs < 1:
        raise ValueError(f"min_runs must be >= 1, got {min_runs}")
    device = torch.device(device)
    start = time.perf_counter()
    first, peak = measure_peak(fn, device)
    sync(device)
    warmup = time.perf_counter() - start
    threads = torch.get_num_threads()
    if warmup >= min_time_s:
        # slow calls: exactly min_runs of them, one per reading (Timer.timeit would add two warm-up calls each)
        times = []
        for _ in range(min_runs):
            start = time.perf_counter()
            fn()
            sync(device)
            times.append(time.perf_counter() - start)
        parts = [benchmark.Measurement(1, times, TaskSpec("fn()", "pass", num_threads=threads))]
    else:
        timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
        parts = [timer.blocked_autorange(min_run_time=min_time_s)]
        while sum(len(m.raw_times) for m in parts) < min_runs:
            parts.append(timer.blocked_autorange(min_run_time=min_time_s))
    (m,) = benchmark.Measurement.merge(parts)
    return Timing(first, warmup, m.median, m.iqr, list(m.times), peak)


def timing_row(t: Timing) -> dict[str, Any]:
    """The columns every micro-benchmark row has: number of readings, warm-up, median, IQR, readings, peak."""
    return {"repeats": len(t.times_s), "warmup_s": t.warmup_s, "step_s": t.median_s, "iqr_s": t.iqr_s,
            "times_s": t.times_s, "peak_bytes": t.peak_bytes}


def skipped_row(note: str, **keys: Any) -> dict[str, Any]:
    """A row for a case that was not measured, with the reason in ``note``."""
    return {**keys, "repeats": 0, "warmup_s": None, "step_s": None, "iqr_s": None, "times_s": [], "peak_bytes": None,
            "note": note}


class SkipLarger:
    """Skips the cases that are at least as large, in every size, as one whose warm-up took longer than
    ``max_step_s`` (or failed) for the same method: baselines whose cost explodes are not run to their end."""

    def __init__(self, max_step_s: float):
        self.max_step_s = max_step_s
        self.slow: dict[str, list[tuple[int, ...]]] = {}

    def why(self, method: str, size: tuple[int, ...]) -> str | None:
        """Why ``method`` at ``size`` is skipped, or None to measure it."""
        for s in self.slow.get(method, []):
            if all(a <= b for a, b in zip(s, size)):
                return f"skipped: {s} took > {self.max_step_s} s or failed"
        return None

    def record(self, method: str, size: tuple[int, ...], warmup_s: float | None) -> None:
        if warmup_s is None or warmup_s > self.max_step_s:
            self.slow.setdefault(method, []).append(size)

    def measure(self, method: str, size: tuple[int, ...], timer: Callable[[], dict[str, Any]],
                skipped: dict[str, Any], log: Callable[[str], None] | None = None,
                label: str = "") -> dict[str, Any]:
        """``timer()`` (a row with ``warmup_s``) unless a smaller size was too slow for ``method``; then a
        :func:`skipped_row` with the ``skipped`` fields. Logs ``method: label ...`` before timing."""
        why = self.why(method, size)
        if why:
            return skipped_row(why, **skipped)
        if log:
            log(f"{method}: {label} ...")
        row = timer()
        self.record(method, size, row["warmup_s"])
        return row


#: The largest relative difference of a benchmarked quantity (a loss, an update) from the reference method's, on
#: the same input in the same run, at which two methods count as computing the same thing.
AGREEMENT_RTOL = {"float32": 1e-3, "float64": 1e-6}


def relative_difference(value: Any, reference: Any) -> float | None:
    """|value - reference| / |reference| for numbers or tensors (norms), None where either is missing; 0 when both
    are zero, inf when only the reference is."""
    if value is None or reference is None:
        return None
    a, b = torch.as_tensor(value, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    diff, scale = float(torch.linalg.vector_norm(a - b)), float(torch.linalg.vector_norm(b))
    if scale == 0:
        return 0.0 if diff == 0 else float("inf")
    return diff / scale


def mark_agreement(rows: list[dict[str, Any]], group: tuple[str, ...], method_key: str, reference: str,
                   value_key: str) -> None:
    """Set ``row["rel_diff"]``: the :func:`relative_difference` of ``row[value_key]`` from that of the row of method
    ``reference`` with the same ``group`` values (same input, same run); None where either was not measured.
    A baseline is only timed against the method it should agree with if their outputs agree (:func:`agrees`)."""
    refs = {tuple(r[k] for k in group): r.get(value_key) for r in rows if r[method_key] == reference}
    for r in rows:
        r["rel_diff"] = relative_difference(r.get(value_key), refs.get(tuple(r[k] for k in group)))


def agrees(row: dict[str, Any], dtype: str = "float32") -> bool:
    """Whether a row marked by :func:`mark_agreement` agrees with its reference within :data:`AGREEMENT_RTOL`."""
    return row.get("rel_diff") is not None and row["rel_diff"] <= AGREEMENT_RTOL[dtype]


def run_isolated(target: str, kwargs: dict[str, Any]) -> tuple[Any, str | None]:
    """Call ``module:function(**kwargs)`` in a fresh Python process with this process's torch thread count.

    ``kwargs`` and the return value travel as JSON. Returns (the value, None), or (None, why) when the process
    failed (e.g. killed for memory), so a benchmark records the case instead of stopping.
    """
    spec = json.dumps({"target": target, "kwargs": kwargs, "threads": torch.get_num_threads()})
    proc = subprocess.run([sys.executable, "-m", "physopt.timing.kernel"], input=spec, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return None, f"failed in its process ({proc.returncode}): {last[-200:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1]), None


def _child() -> None:
    """The fresh process of :func:`run_isolated`: a JSON spec on stdin, the JSON result as the last stdout line."""
    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec["threads"])
    module, _, name = spec["target"].partition(":")
    fn = getattr(importlib.import_module(module), name)
    print(json.dumps(fn(**spec["kwargs"])))


if __name__ == "__main__":  # pragma: no cover - the process of run_isolated
    _child()
