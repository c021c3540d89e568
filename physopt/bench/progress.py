"""Progress of long commands: which run is training, its iteration, loss and elapsed time.

The bench reports to a :class:`Progress`; :class:`LineProgress` writes plain log lines (logs, pipes, CI) and
:class:`BarProgress` draws a ``tqdm`` bar per run with an ETA when attached to a terminal. :func:`as_progress` turns
None or a plain ``callable(str)`` into one of them, so library callers may pass ``print``.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, Protocol, Union


class Progress(Protocol):
    def log(self, message: str) -> None:
        """A line of its own (a run skipped, a problem started)."""

    def start(self, label: str, iterations: int | None, time_budget: float | None) -> None:
        """A run begins: ``label`` names it; its length in iterations and/or training seconds."""

    def update(self, iteration: int, elapsed_s: float, message: str) -> None:
        """The run reached ``iteration`` after ``elapsed_s`` training seconds; ``message`` has its metrics."""

    def finish(self) -> None:
        """The run ended."""


class NoProgress:
    def log(self, message: str) -> None: ...
    def start(self, label: str, iterations: int | None, time_budget: float | None) -> None: ...
    def update(self, iteration: int, elapsed_s: float, message: str) -> None: ...
    def finish(self) -> None: ...


class LineProgress(NoProgress):
    """Every event as one plain line through ``write`` (default: stderr)."""

    def __init__(self, write: Callable[[str], None] | None = None):
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.label = ""
        self.total = ""

    def log(self, message: str) -> None:
        self.write(message)

    def start(self, label: str, iterations: int | None, time_budget: float | None) -> None:
        self.label, self.total = label, f"/{iterations}" if iterations else ""

    def update(self, iteration: int, elapsed_s: float, message: str) -> None:
        self.write(f"  {self.label}  it {iteration:>6}{self.total}  {elapsed_s:7.1f}s  {message}")


class WorkerProgress(NoProgress):
    """What a worker process of ``--executor local:N`` prints: a line when a run starts and at most one progress line
    every ``every_s`` seconds, each naming the problem (several workers share one stderr). Picklable."""

    def __init__(self, prefix: str, every_s: float = 30.0):
        self.prefix, self.every_s = prefix, every_s
        self.label, self.total, self.last = "", "", 0.0

    def _write(self, line: str) -> None:
        # one write of the whole line: print() writes the text and its newline separately, and two workers' lines
        # on one stderr then interleave ("adam seed 0 started  exp: sgd seed 0 started\n\n")
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def log(self, message: str) -> None:
        self._write(f"  {self.prefix}: {message.strip()}")

    def start(self, label: str, iterations: int | None, time_budget: float | None) -> None:
        self.label, self.total, self.last = label, f"/{iterations}" if iterations else "", time.monotonic()
        self._write(f"  {self.prefix}: {' '.join(label.split())} started")

    def update(self, iteration: int, elapsed_s: float, message: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._write(f"  {self.prefix}: {' '.join(self.label.split())}  it {iteration}{self.total}  "
                        f"{elapsed_s:.1f}s  {message}")


class BarProgress(NoProgress):
    """A ``tqdm`` bar per run, counting iterations (or training seconds for a time budget), with an ETA."""

    def __init__(self):
        from tqdm import tqdm
        self._tqdm = tqdm
        self.bar = None
        self.by_time = False

    def log(self, message: str) -> None:
        self._tqdm.write(message, file=sys.stderr)

    def start(self, label: str, iterations: int | None, time_budget: float | None) -> None:
        self.finish()
        self.by_time = iterations is None
        total = time_budget if self.by_time else iterations
        self.bar = self._tqdm(total=total, desc=label, unit="s" if self.by_time else "it", file=sys.stderr,
                              leave=True, dynamic_ncols=True,
                              bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} "
                                         "[{elapsed}<{remaining}] {postfix}")

    def update(self, iteration: int, elapsed_s: float, message: str) -> None:
        if self.bar is None:
            return
        self.bar.update((elapsed_s if self.by_time else iteration) - self.bar.n)
        self.bar.set_postfix_str(f"it {iteration} {message}", refresh=True)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


ProgressLike = Union[Progress, Callable[[str], None], None]


def as_progress(progress: ProgressLike) -> Progress:
    """None -> silent; a callable -> its plain lines; a :class:`Progress` as it is."""
    if progress is None:
        return NoProgress()
    if hasattr(progress, "update") and hasattr(progress, "start"):
        return progress  # type: ignore[return-value]
    if callable(progress):
        return LineProgress(progress)
    raise TypeError(f"progress must be None, a callable(str) or a Progress, got {type(progress).__name__}")


def terminal_progress(quiet: bool = False) -> Progress:
    """What the CLI shows: nothing with ``quiet``; a bar on a terminal (when tqdm is installed); else plain lines."""
    if quiet:
        return NoProgress()
    if sys.stderr.isatty():
        try:
            return BarProgress()
        except ImportError:
            pass
    return LineProgress()
