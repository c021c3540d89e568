"""One training run: a method trains the problem's default network from seeded weights on a seeded data stream.

Fairness: for a given seed every method starts from the same initial weights (``torch.manual_seed(seed)`` before
``problem.default_network()``) and sees the same batches (a CPU generator seeded with ``seed``); every method is
evaluated on the same held-out set (a generator seeded with :data:`HELD_OUT_SEED`). Evaluation time is not counted
in ``wall_time_s``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import Any

import torch
from torch import nn

from physopt.validation import check_integer, check_number
from problems import SimulationError

from .progress import ProgressLike, as_progress
from .methods import Diverged, get_method, optimizer_arguments, resolve_hyperparameters

HELD_OUT_SEED = 2_147_483_647


@dataclasses.dataclass
class CurvePoint:
    iteration: int
    time_s: float
    loss: float | None
    x_error: float | None
    train_loss: float | None
    extra: dict[str, float] = dataclasses.field(default_factory=dict)   # the problem's component losses


@dataclasses.dataclass
class RunResult:
    optimizer: str
    seed: int
    iterations: int
    wall_time_s: float
    final: dict[str, float | None]
    hyperparameters: dict[str, Any]
    status: str
    init_checksum: str
    curve: list[CurvePoint]
    machine: str | None = None   # where it ran (CPU or GPU model, threads); None in files older than the field

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["curve"] = [dataclasses.asdict(c) for c in self.curve]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "RunResult":
        d = dict(d)
        d["curve"] = [CurvePoint(**c) for c in d["curve"]]
        return cls(**d)


def weights_checksum(net: nn.Module) -> str:
    """A short hash of all parameters and buffers: equal checksums mean equal initial weights."""
    h = hashlib.sha256()
    for t in net.state_dict().values():
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def held_out_set(problem: Any, size: int | None = None):
    """The fixed held-out batch every run is evaluated on."""
    n = size if size is not None else problem.benchmark.held_out_size
    return problem.sample(n, torch.Generator().manual_seed(HELD_OUT_SEED))


@torch.no_grad()
def evaluate(problem: Any, net: nn.Module, batch, chunk: int = 64) -> dict[str, float | None]:
    """Mean held-out loss, x-space error and component losses (:meth:`Problem.component_losses`) of ``net`` (eval
    mode), in chunks of ``chunk`` examples."""
    was_training = net.training
    net.eval()
    total_loss, total_err, n = 0.0, 0.0, batch.batch_size
    components: dict[str, float] = {}
    has_err = True
    for i in range(0, n, chunk):
        part = type(batch)(*(None if t is None else t[i:i + chunk] for t in batch))
        x = problem.predict(net, part)
        try:
            y = problem.forward(x, part)
        except SimulationError:   # the network's prediction cannot be simulated: the loss is infinite
            net.train(was_training)
            err = problem.x_error(x, part)
            return {"loss": math.inf, "x_error": None if err is None else math.inf}
        total_loss += problem.loss(y, part).sum().item()
        for name, value in problem.component_losses(y, part).items():
            components[name] = components.get(name, 0.0) + value.sum().item()
        err = problem.x_error(x, part)
        if err is None:
            has_err = False
        else:
            total_err += err.sum().item()
    net.train(was_training)
    return {"loss": total_loss / n, "x_error": total_err / n if has_err else None,
            **{k: v / n for k, v in components.items()}}


def train_run(problem: Any, optimizer: str, seed: int, *, iterations: int | None = None,
              time_budget: float | None = None, batch_size: int | None = None,
              hyperparameters: dict[str, Any] | None = None, evaluations: int = 30, held_out=None,
              progress: ProgressLike = None) -> RunResult:
    """Train ``problem.default_network()`` with ``optimizer`` and return its curve and final held-out metrics.

    Stops after ``iterations`` steps or ``time_budget`` training seconds, whichever comes first. A run whose loss,
    gradient or physics update turns NaN/inf stops with ``status = "diverged: ..."``; its weights stay finite.
    """
    if iterations is None and time_budget is None:
        raise ValueError("give iterations or time_budget (or both)")
    check_integer("iterations", iterations, low=0, optional=True)
    check_number("time_budget", time_budget, low=0, low_inclusive=False, optional=True)   # finite: inf never ends
    method = get_method(optimizer)
    if method.needs_inverse and not problem.has_inverse:
        raise ValueError(f"optimizer '{optimizer}' needs an inverse update, which problem '{problem.name}' "
                         f"does not define")
    hp = resolve_hyperparameters(method, problem, hyperparameters)
    batch_size = check_integer("batch_size", hp["batch_size"] if batch_size is None else batch_size, low=1)
    hp["batch_size"] = batch_size
    held_out = held_out if held_out is not None else held_out_set(problem)

    torch.manual_seed(seed)
    net = problem.default_network()
    checksum = weights_checksum(net)
    step = method.build(net, problem, optimizer_arguments(hp))
    data = torch.Generator().manual_seed(seed)

    curve: list[CurvePoint] = []
    status = "ok"
    it, elapsed, train_loss = 0, 0.0, None
    every_it = max(1, iterations // evaluations) if iterations else None
    every_s = time_budget / evaluations if time_budget else None
    next_time = 0.0

    def record() -> None:
        m = evaluate(problem, net, held_out)
        extra = {k: v for k, v in m.items() if k not in ("loss", "x_error")}
        curve.append(CurvePoint(it, elapsed, m["loss"], m["x_error"], train_loss, extra))
        err = "" if m["x_error"] is None else f"  {problem.x_error_name} {m['x_error']:.4g}"
        report.update(it, elapsed, f"loss {m['loss']:.4g}{err}")

    report = as_progress(progress)
    report.start(f"{optimizer:<9} seed {seed}", iterations, time_budget)
    record()
    while (iterations is None or it < iterations) and (time_budget is None or elapsed < time_budget):
        batch = problem.sample(batch_size, data)
        start = time.perf_counter()
        try:
            train_loss = step(batch)
        except (Diverged, SimulationError) as err:   # NaN/inf, or a state the physics cannot step from
            status = f"diverged: {err}"
            break
        if problem.device.type == "cuda":
            torch.cuda.synchronize(problem.device)
        elapsed += time.perf_counter() - start
        it += 1
        due = (every_it and it % every_it == 0) or (every_s and elapsed >= next_time + every_s)
        if due:
            next_time = elapsed
            record()
    if not curve or curve[-1].iteration != it:
        record()
    report.finish()
    final = {"loss": curve[-1].loss, "x_error": curve[-1].x_error, **curve[-1].extra}
    return RunResult(optimizer, seed, it, elapsed, final, hp, status, checksum, curve)
