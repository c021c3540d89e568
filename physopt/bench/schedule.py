"""Optimizer schedules: one run that trains with one optimizer and switches to the next after N iterations or S
seconds of training, e.g. the HIG paper's Poisson result, "HIG after Adam pre-training", as ``adam>hig@30s``.

Syntax: ``first>second@WHEN[>third@WHEN ...]`` with WHEN an iteration count (``500`` or ``500it``: the phase starts
after that many iterations of the run) or training seconds (``30s``: after that much training time, counted as the
run counts it, without evaluations). Every phase continues from the weights the previous one left, with a fresh
optimizer, and with its own settings and batch size for the problem (what a run of that optimizer alone would use;
``--batch-size`` sets one for all). The run records where it switched (``RunResult.switches``) and the curves mark
it.
"""
from __future__ import annotations

import dataclasses
import re
import time
from typing import Any, Callable

import torch
from torch import nn

from physopt.validation import check_integer

__all__ = ["Phase", "is_schedule", "parse_schedule", "ScheduledStep", "schedule_method"]

_WHEN = re.compile(r"(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>s|it)?")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One optimizer of a schedule and when it starts (0 iterations for the first)."""
    optimizer: str
    start: float = 0
    unit: str = "it"          # "it" (iterations) or "s" (training seconds)

    def due(self, iterations: int, seconds: float) -> bool:
        return (iterations if self.unit == "it" else seconds) >= self.start

    @property
    def when(self) -> str:
        return f"{self.start:g}s" if self.unit == "s" else f"{int(self.start)}"


def is_schedule(name: str) -> bool:
    """Whether an optimizer name is a schedule (contains '>')."""
    return isinstance(name, str) and ">" in name


def parse_schedule(name: str) -> list[Phase]:
    """The phases of ``first>second@WHEN[>...]``; ValueError, naming the part, for anything else."""
    parts = [p.strip() for p in name.split(">")]
    if len(parts) < 2 or not all(parts):
        raise ValueError(f"schedule '{name}': write it as FIRST>SECOND@WHEN, e.g. adam>hig@30s (after 30 s of "
                         f"training) or adam>hig@500 (after 500 iterations)")
    phases = [Phase(parts[0])]
    for part in parts[1:]:
        optimizer, sep, when = part.rpartition("@")
        match = _WHEN.fullmatch(when.strip()) if sep else None
        if not optimizer.strip() or match is None:
            raise ValueError(f"schedule '{name}': '{part}' needs a switch point, NAME@500 (iterations) or NAME@30s "
                             f"(training seconds)")
        unit = match["unit"] or "it"
        start = float(match["value"])
        if unit == "it" and start != int(start):
            raise ValueError(f"schedule '{name}': '{when}' is not a whole number of iterations (write {when}s for "
                             f"seconds)")
        if start <= 0:
            raise ValueError(f"schedule '{name}': the switch to {optimizer.strip()} must come after the start, got "
                             f"{when}")
        previous = phases[-1]
        if previous.unit == unit and start <= previous.start:
            raise ValueError(f"schedule '{name}': the switch points must come one after the other, but "
                             f"{optimizer.strip()}@{when} is not after {previous.optimizer}@{previous.when}")
        phases.append(Phase(optimizer.strip(), start, unit))
    return phases


class ScheduledStep:
    """The step function of a schedule run: ``step(batch) -> loss`` through the current phase's step, switching to
    the next phase's (built on the same network) once its start is reached. ``batch_size`` is the current phase's
    (the run samples its next batch with it); ``switches`` lists each switch (optimizer, iteration, time_s);
    ``settings`` each phase's resolved hyperparameters."""

    def __init__(self, phases: list[Phase], builders: list[Callable[[], Callable[[Any], float]]],
                 settings: list[dict[str, Any]], device: torch.device):
        self.phases, self._builders, self.settings, self._device = phases, builders, settings, device
        self.index, self.iterations, self.seconds = 0, 0, 0.0
        self.switches: list[dict[str, Any]] = []
        self.switched = False          # set by the call that switched; the run reads and clears it (to evaluate)
        self._step = builders[0]()

    @property
    def batch_size(self) -> int:
        return int(self.settings[self.index]["batch_size"])

    def __call__(self, batch: Any) -> float:
        start = time.perf_counter()
        loss = self._step(batch)
        self.iterations += 1
        nxt = self.index + 1
        if nxt < len(self.phases):
            if self._device.type == "cuda":
                torch.cuda.synchronize(self._device)
            self.seconds += time.perf_counter() - start
            if self.phases[nxt].due(self.iterations, self.seconds):
                self.index = nxt
                self._step = self._builders[nxt]()
                self.switches.append({"optimizer": self.phases[nxt].optimizer, "iteration": self.iterations,
                                      "time_s": self.seconds})
                self.switched = True
        return loss


def schedule_method(name: str, get_method: Callable[[str], Any], method_type: type) -> Any:
    """The :class:`~physopt.bench.methods.Method` of the schedule ``name``: its settings for a problem are its
    phases' (``{"batch_size": the largest phase batch, "phases": [{"optimizer", "from", **settings}, ...]}``), and
    its build returns a :class:`ScheduledStep`."""
    from .methods import optimizer_arguments, resolve_hyperparameters
    phases = parse_schedule(name)
    methods = [get_method(p.optimizer) for p in phases]
    if any(getattr(m, "resolve", None) is not None for m in methods):
        raise ValueError(f"schedule '{name}': a phase cannot be a schedule itself")
    phases = [dataclasses.replace(p, optimizer=m.name) for p, m in zip(phases, methods)]
    canonical = phases[0].optimizer + "".join(f">{p.optimizer}@{p.when}" for p in phases[1:])

    def resolve(problem: Any, overrides: dict[str, Any] | None, batch_size: int | None) -> dict[str, Any]:
        given = dict(overrides or {})
        settings = given.pop("phases", None)
        forced = batch_size or (given.pop("batch_size", None) if settings is None else None)
        given.pop("batch_size", None)
        threads = given.pop("threads", None)            # the run's thread count (train_run sets it), every phase
        if given:
            raise ValueError(f"the schedule '{canonical}' takes each optimizer's own settings for the problem, not "
                             f"settings of its own (got {', '.join(sorted(given))}); --batch-size sets one batch "
                             f"size for every phase, --hparam '{canonical}.threads=N' the run's torch threads")
        if settings is None:
            settings = [{"optimizer": m.name, "from": None if i == 0 else p.when,
                         **resolve_hyperparameters(m, problem, None, forced)}
                        for i, (m, p) in enumerate(zip(methods, phases))]
        elif forced:
            settings = [{**s, "batch_size": forced} for s in settings]
        check_integer("threads", threads, low=1, optional=True)
        return {"batch_size": max(int(s["batch_size"]) for s in settings), "phases": settings,
                **({} if threads is None else {"threads": threads})}

    def build(net: nn.Module, problem: Any, hparams: dict[str, Any]) -> ScheduledStep:
        settings = hparams.get("phases") or resolve(problem, None, None)["phases"]
        plain = [{k: v for k, v in s.items() if k not in ("optimizer", "from")} for s in settings]
        if any(s.get("lr_schedule", "constant") != "constant" for s in plain):
            raise ValueError(f"the schedule '{canonical}': a phase cannot have a learning-rate schedule "
                             f"(lr_schedule); train with one optimizer for that")
        builders = [lambda m=m, s=s: m.build(net, problem, optimizer_arguments(s)) for m, s in zip(methods, plain)]
        return ScheduledStep(phases, builders, plain, next(net.parameters()).device)

    description = ", then ".join([phases[0].optimizer] + [
        f"{p.optimizer} from {'iteration ' if p.unit == 'it' else ''}{p.when}" for p in phases[1:]])
    return method_type(canonical, f"schedule: {description}", build, {},
                       needs_inverse=any(m.needs_inverse for m in methods), settings=("phases",), resolve=resolve)
