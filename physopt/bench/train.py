"""One training run: a method trains the problem's default network from seeded weights on a seeded data stream.

Fairness: for a given seed every method starts from the same initial weights (``torch.manual_seed(seed)`` before
``problem.default_network()``) and sees the same batches (a CPU generator seeded with ``seed``); every method is
evaluated on the same held-out set (a generator seeded with :data:`HELD_OUT_SEED`). Evaluation time is not counted
in ``wall_time_s``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from physopt.validation import check_integer, check_number
from problems import SimulationError

from .lr_schedule import LearningRateSchedule
from .progress import ProgressLike, as_progress
from .methods import Diverged, get_method, optimizer_arguments, resolve_hyperparameters
from .schedule import ScheduledStep
from .stop import STOP, Stopped

HELD_OUT_SEED = 2_147_483_647
#: the largest seed: torch.manual_seed takes a 64-bit integer (larger ones overflow or wrap around onto smaller ones)
MAX_SEED = 2 ** 63 - 1


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
    #: what made it (physopt version, git commit, numpy/torch/CUDA versions: bench.provenance); None in older files
    provenance: dict[str, Any] | None = None
    #: the process it trained in (host, pid, device, torch threads, executor: bench.tasks.worker_record); None in
    #: files older than the field
    worker: dict[str, Any] | None = None
    #: where a schedule run (``adam>hig@30s``) switched optimizer: [{optimizer, iteration, time_s}]; None otherwise
    switches: list[dict[str, Any]] | None = None

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


def check_seed(seed: Any) -> int:
    """``seed`` if it is an integer in [0, :data:`MAX_SEED`], else ValueError."""
    return check_integer("seed", seed, low=0, high=MAX_SEED)


def available_memory(device: torch.device) -> int | None:
    """Bytes free on ``device``: free GPU memory, or the CPU's MemAvailable (/proc/meminfo); None where unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def bytes_per_example(problem: Any) -> int:
    """About the memory each example adds to a training step: its data and the activations the default network and the
    physics save for the backward pass, measured as the difference between batches of 2 and 1 examples (so the
    weights, saved once per batch, are not counted; the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        two = problem.sample(2, torch.Generator().manual_seed(0))
        net = problem.default_network().eval()
    one = type(two)(*(None if t is None else t[:1] for t in two))
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    sizes = []
    for batch in (one, two):
        total[0] = sum(t.numel() * t.element_size() for t in batch if t is not None)
        try:
            with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                problem.loss(problem.forward(problem.predict(net, batch), batch), batch)
        except SimulationError:     # the untrained network's output cannot be simulated: the data alone
            pass
        sizes.append(total[0])
    return max(sizes[1] - sizes[0], 1)


def check_batch_memory(problem: Any, batch_size: int) -> None:
    """ValueError, before anything trains, when a batch of ``batch_size`` examples cannot fit into the free memory of
    the problem's device by the estimate :func:`bytes_per_example` (nothing is checked where that memory is unknown)."""
    free = available_memory(problem.device)
    if free is None:
        return
    per_example = bytes_per_example(problem)
    if batch_size * per_example > free:
        raise ValueError(f"batch size {batch_size} cannot fit: one batch of {problem.name} takes about "
                         f"{batch_size * per_example / 2 ** 30:.3g} GiB ({per_example} bytes per example for the data "
                         f"and the activations saved for the backward pass), and {problem.device} has "
                         f"{free / 2 ** 30:.3g} GiB free; lower the batch size (--batch-size)")


def _out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is torch's failure to allocate memory (CUDA's OutOfMemoryError, or the CPU allocator's)."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or "can't allocate memory" in str(err) or \
        "out of memory" in str(err)


def _load_checkpoint(path: Path, identity: str) -> dict[str, Any] | None:
    """A run's saved state, if ``path`` holds one of this very run (else None: it starts over)."""
    try:
        saved = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError, ValueError):
        return None
    return saved if isinstance(saved, dict) and saved.get("identity") == identity else None


def derived_seed(seed: int, name: str) -> int:
    """A seed for the stream called ``name`` of run seed ``seed`` (a training stage, an epoch's shuffle): the same
    for the same pair on every machine, different across names."""
    return (seed * 1_000_003 + sum(ord(c) * 31 ** i for i, c in enumerate(name))) % 2 ** 31


def atomic_save(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _distribution(group: Any, method: Any, time_budget: float | None) -> tuple[int, int]:
    """(rank, world size) of a data-parallel run, (0, 1) without a group; what cannot be spread is refused."""
    if group is None:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        raise ValueError("process_group was given but torch.distributed is not initialised (torchrun, or "
                         "torch.distributed.init_process_group, first)")
    if time_budget is not None:
        raise ValueError("a data-parallel run trains for --iterations, not a --time-budget: the processes could stop "
                         "at different iterations")
    if method.resolve is not None:
        raise ValueError(f"a schedule ({method.name}) is not spread over processes; train its phases separately")
    return dist.get_rank(group), dist.get_world_size(group)


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


def _learning_rate_schedule(optimizer: str, step: Any, hp: dict[str, Any],
                            scheduled: bool) -> LearningRateSchedule | None:
    """The run's ``lr_schedule`` (:mod:`physopt.bench.lr_schedule`) on the step's torch optimizer; None: constant."""
    if hp.get("lr_schedule", "constant") == "constant":
        return None
    target = getattr(step, "optimizer", None)
    if scheduled or not hasattr(target, "param_groups"):
        raise ValueError(f"lr_schedule: '{optimizer}' has no torch optimizer whose learning rate a schedule could "
                         f"set (an optimizer schedule, or a method without a step.optimizer); drop lr_schedule")
    return LearningRateSchedule(target, hp["lr_schedule"], hp.get("lr_min"))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``threads`` torch threads (intra-op, on the CPU), then restore the count; None: as is."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_run(problem: Any, optimizer: str, seed: int, *, iterations: int | None = None,
              time_budget: float | None = None, batch_size: int | None = None,
              hyperparameters: dict[str, Any] | None = None, evaluations: int = 30, held_out=None,
              progress: ProgressLike = None,
              on_evaluation: Callable[[int, dict[str, float | None]], None] | None = None,
              process_group: Any = None, checkpoint: Path | None = None,
              checkpoint_every_s: float = 600.0) -> RunResult:
    """Train ``problem.default_network()`` with ``optimizer`` and return its curve and final held-out metrics.

    ``process_group`` (a ``torch.distributed`` group of P processes, each calling this with the same arguments):
    data-parallel training. ``batch_size`` is per process; every process draws the same global batch of P x
    ``batch_size`` examples from the seed's stream and trains on its own share, so the run follows single-process
    training on the global batch: gradient methods and SIP through ``DistributedDataParallel``, HIG and
    Gauss-Newton through their ``process_group`` (:mod:`physopt.hig.distributed`). Iterations only (a time budget
    could stop the processes at different steps); ``hyperparameters.world_size`` records P.

    ``checkpoint``: a file the run's state (weights, optimizer state, the data stream's and torch's RNG states, the
    curve, iteration and training time) is saved to every ``checkpoint_every_s`` seconds of wall time, atomically;
    a run started again with a checkpoint of the same run (same problem, settings and initial weights) continues
    from it and ends as the uninterrupted run would (bitwise on the CPU). Runs whose method has no optimizer state
    to save (schedules, methods from elsewhere), and data-parallel runs, train without checkpoints.

    Stops after ``iterations`` steps or ``time_budget`` training seconds, whichever comes first. A run whose loss,
    gradient or physics update turns NaN/inf stops with ``status = "diverged: ..."``; its weights stay finite.
    ``on_evaluation(iteration, metrics)`` is called after every held-out evaluation (an exception it raises stops the
    run there and propagates: how ``physopt tune`` prunes a trial).

    ``hyperparameters["threads"]`` (a setting of the run, :data:`~physopt.bench.methods.RUN_SETTINGS`): the run
    trains with that many torch threads (restored afterwards); on a CPU an equal-wall-clock comparison can so give
    each optimizer the thread count its step is fastest with (``physopt speed --threads 1,2``).
    """
    threads = check_integer("threads", (hyperparameters or {}).get("threads"), low=1, optional=True)
    with torch_threads(threads):
        return _train_run(problem, optimizer, seed, iterations=iterations, time_budget=time_budget,
                          batch_size=batch_size, hyperparameters=hyperparameters, evaluations=evaluations,
                          held_out=held_out, progress=progress, on_evaluation=on_evaluation,
                          process_group=process_group, checkpoint=checkpoint,
                          checkpoint_every_s=checkpoint_every_s)


def _train_run(problem: Any, optimizer: str, seed: int, *, iterations: int | None, time_budget: float | None,
               batch_size: int | None, hyperparameters: dict[str, Any] | None, evaluations: int, held_out: Any,
               progress: ProgressLike, on_evaluation: Callable[[int, dict[str, float | None]], None] | None,
               process_group: Any, checkpoint: Path | None, checkpoint_every_s: float) -> RunResult:
    """:func:`train_run` with the run's torch threads set."""
    if iterations is None and time_budget is None:
        raise ValueError("give iterations or time_budget (or both)")
    check_integer("iterations", iterations, low=0, optional=True)
    check_number("time_budget", time_budget, low=0, low_inclusive=False, optional=True)   # finite: inf never ends
    check_seed(seed)
    method = get_method(optimizer)
    if method.needs_inverse and not problem.has_inverse:
        raise ValueError(f"optimizer '{optimizer}' needs an inverse update, which problem '{problem.name}' "
                         f"does not define")
    check_integer("batch_size", batch_size, low=1, optional=True)
    hp = resolve_hyperparameters(method, problem, hyperparameters, batch_size)
    batch_size = check_integer("batch_size", hp["batch_size"], low=1)
    check_batch_memory(problem, batch_size)
    held_out = held_out if held_out is not None else held_out_set(problem)
    rank, world = _distribution(process_group, method, time_budget)
    if world > 1:
        hp = {**hp, "world_size": world}

    torch.manual_seed(seed)
    net = problem.default_network()
    checksum = weights_checksum(net)
    arguments = optimizer_arguments({k: v for k, v in hp.items() if k != "world_size"})
    if world == 1:
        step = method.build(net, problem, arguments)
    elif method.takes_process_group:
        step = method.build(net, problem, {**arguments, "process_group": process_group})
    else:
        step = method.build(torch.nn.parallel.DistributedDataParallel(net, process_group=process_group), problem,
                            arguments)
    scheduled = isinstance(step, ScheduledStep)      # a schedule samples each phase's batch size
    lr_schedule = _learning_rate_schedule(optimizer, step, hp, scheduled)
    data = torch.Generator().manual_seed(seed)

    curve: list[CurvePoint] = []
    status = "ok"
    it, elapsed, train_loss = 0, 0.0, None
    every_it = max(1, iterations // evaluations) if iterations else None
    every_s = time_budget / evaluations if time_budget else None
    next_time = 0.0
    state_of = getattr(step, "optimizer", None)
    if checkpoint is None or state_of is None or scheduled or world > 1:
        checkpoint = None
    identity = json.dumps({"problem": problem.name, "config": repr(problem.config), "optimizer": optimizer,
                           "seed": seed, "iterations": iterations, "time_budget": time_budget, "hyperparameters": hp,
                           "evaluations": evaluations, "init_checksum": checksum, "dtype": str(problem.dtype)},
                          sort_keys=True, default=str)
    saved = _load_checkpoint(checkpoint, identity) if checkpoint is not None else None
    if saved is not None:
        net.load_state_dict(saved["net"])
        state_of.load_state_dict(saved["optimizer"])
        data.set_state(saved["data"])
        torch.set_rng_state(saved["rng"])
        curve = [CurvePoint(**c) for c in saved["curve"]]
        it, elapsed, train_loss, next_time = saved["iteration"], saved["elapsed"], saved["train_loss"], saved["next"]
    last_save = time.perf_counter()

    def save_checkpoint() -> None:
        atomic_save(checkpoint, {"identity": identity, "net": net.state_dict(), "optimizer": state_of.state_dict(),
                                  "data": data.get_state(), "rng": torch.get_rng_state(),
                                  "curve": [dataclasses.asdict(c) for c in curve], "iteration": it,
                                  "elapsed": elapsed, "train_loss": train_loss, "next": next_time})

    def record() -> None:
        m = evaluate(problem, net, held_out)
        extra = {k: v for k, v in m.items() if k not in ("loss", "x_error")}
        curve.append(CurvePoint(it, elapsed, m["loss"], m["x_error"], train_loss, extra))
        err = "" if m["x_error"] is None else f"  {problem.x_error_name} {m['x_error']:.4g}"
        report.update(it, elapsed, f"loss {m['loss']:.4g}{err}")
        if on_evaluation is not None:
            on_evaluation(it, m)

    report = as_progress(progress)
    report.start(f"{optimizer:<9} seed {seed}", iterations, time_budget)
    if saved is None:
        record()
    else:
        report.log(f"  {optimizer} seed {seed}: continued from its checkpoint at iteration {it} ({elapsed:.0f} s)")

    def stop_if_asked() -> None:
        """Between two steps: when this process is asked to stop (physopt.bench.stop), save and raise Stopped."""
        if not STOP.asked:
            return
        if checkpoint is not None:
            save_checkpoint()
        report.log(f"  {optimizer} seed {seed}: stopped at iteration {it} ({elapsed:.0f} s)"
                   + (", checkpoint saved: the same command continues it" if checkpoint is not None else ""))
        STOP.handled.set()
        raise Stopped(f"{optimizer} seed {seed} stopped at iteration {it}")

    STOP.training += 1
    try:
        while (iterations is None or it < iterations) and (time_budget is None or elapsed < time_budget):
            stop_if_asked()
            try:
                batch = problem.sample(step.batch_size if scheduled else batch_size * world, data)
                if world > 1:                            # this process's share of the global batch
                    batch = type(batch)(*(None if t is None else t[rank * batch_size:(rank + 1) * batch_size]
                                          for t in batch))
                if lr_schedule is not None:           # progress: the further along of iterations and seconds
                    lr_schedule.apply(max(it / iterations if iterations else 0.0,
                                          elapsed / time_budget if time_budget else 0.0))
                start = time.perf_counter()
                train_loss = step(batch)
            except (Diverged, SimulationError) as err:   # NaN/inf, or a state the physics cannot step from
                status = f"diverged: {err}"
                break
            except RuntimeError as err:
                if not _out_of_memory(err):
                    raise
                raise ValueError(f"{optimizer} on {problem.name} ran out of memory at batch size {batch_size} on "
                                 f"{problem.device} (step {it + 1}); lower the batch size (--batch-size)") from None
            if problem.device.type == "cuda":
                torch.cuda.synchronize(problem.device)
            elapsed += time.perf_counter() - start
            it += 1
            if scheduled and step.switched:              # evaluate where the schedule switched: the curve marks it
                step.switched = False
                report.log(f"  {optimizer} seed {seed}: {step.switches[-1]['optimizer']} from iteration {it} "
                           f"({elapsed:.1f} s)")
                next_time = elapsed
                record()
                continue
            due = (every_it and it % every_it == 0) or (every_s and elapsed >= next_time + every_s)
            if due:
                next_time = elapsed
                record()
            if checkpoint is not None and time.perf_counter() - last_save >= checkpoint_every_s:
                save_checkpoint()
                last_save = time.perf_counter()
        if status == "ok":
            stop_if_asked()                          # a run that ended meanwhile is saved by the next command
    finally:
        STOP.training -= 1
    if not curve or curve[-1].iteration != it:
        record()
    report.finish()
    final = {"loss": curve[-1].loss, "x_error": curve[-1].x_error, **curve[-1].extra}
    return RunResult(optimizer, seed, it, elapsed, final, hp, status, checksum, curve,
                     switches=list(step.switches) if scheduled else None)
