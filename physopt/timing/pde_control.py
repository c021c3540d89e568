"""Inference time per task of the PDE-control schemes and of single shooting (the paper's Table 1, right column),
on the shared timing kernel: all held-out tasks in one batch, milliseconds per task.

On a CUDA device, ``graphs=True`` times each call captured once in a CUDA graph and replayed
(:class:`torch.cuda.CUDAGraph`): a scheme is one graph; shooting captures one iteration (trajectory, backward and a
``capturable`` Adam step) and replays it per iteration, so both sides lose the per-kernel launch cost alike."""
from __future__ import annotations

import copy
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from physopt.bench.pde_control import TablePlan
from problems.pde_control.schemes import execute
from problems.pde_control.setup import ControlSetup
from problems.pde_control.training import shoot, shooting_loss, shooting_trajectory, zero_forces

from .kernel import count_ops, time_call

__all__ = ["inference_calls", "time_inference", "count_inference_ops", "cuda_graph", "graphed_shooting",
           "check_graph_device"]


def inference_calls(test: Any, setup: ControlSetup, models: dict[str, tuple[str, nn.Module]], plan: TablePlan,
                    device: str | torch.device = "cpu", *, graphs: bool = False
                    ) -> Iterator[tuple[str, Callable[[], Any], bool]]:
    """(row, call, needs autograd) for every model's scheme and for shooting with each iteration count, all
    held-out tasks in one batch on ``device`` (the models are copied there); ``graphs``: calls that replay CUDA graphs
    (CUDA only, see the module's docstring). The one list both :func:`time_inference` and
    :func:`count_inference_ops` go through."""
    device = torch.device(device)
    if graphs:
        check_graph_device(device)
    initial, target = test.initial.to(device), test.target.to(device)
    for key, (scheme, model) in models.items():
        on_device = copy.deepcopy(model).to(device)
        run = lambda scheme=scheme, model=on_device: execute(scheme, model, initial, target, setup)  # noqa: E731
        if graphs:
            with torch.no_grad():
                run = cuda_graph(run, device)
        yield key, run, False
    for its in plan.shooting_iterations:
        if graphs:
            yield f"shooting/{its}", graphed_shooting(initial, target, setup, its, plan.shooting_lr), True
        else:
            yield f"shooting/{its}", lambda its=its: shoot(initial, target, setup, its, plan.shooting_lr), True


def time_inference(test: Any, setup: ControlSetup, models: dict[str, tuple[str, nn.Module]],
                   plan: TablePlan, device: str | torch.device = "cpu", *, graphs: bool = False) -> dict[str, float]:
    """Median milliseconds per task of every call of :func:`inference_calls` (schemes without autograd, shooting
    with it)."""
    tasks = test.initial.shape[0]
    times = {}
    for key, call, grad in inference_calls(test, setup, models, plan, device, graphs=graphs):
        with torch.set_grad_enabled(grad):
            times[key] = 1e3 * time_call(call, device, min_runs=3).median_s / tasks
    return times


def count_inference_ops(test: Any, setup: ControlSetup, models: dict[str, tuple[str, nn.Module]],
                        plan: TablePlan) -> dict[str, int]:
    """The computing ATen operations (:func:`~physopt.timing.kernel.count_ops`) that one call of
    :func:`inference_calls` dispatches for the whole batch of held-out tasks, run on the CPU: about the kernel
    launches of the same call on a GPU, where such small calls are launch-bound. Each call is counted after one
    warm-up call (as it is timed), so one-off set-up such as cached index tables is left out."""
    counts = {}
    for key, call, grad in inference_calls(test, setup, models, plan, "cpu"):
        with torch.set_grad_enabled(grad):
            call()
            counts[key] = count_ops(call)[1]
    return counts


def check_graph_device(device: torch.device) -> None:
    """CUDA graphs exist on CUDA devices only: a clear error for any other."""
    if device.type != "cuda":
        raise ValueError(f"CUDA graphs need a CUDA timing device, got '{device}': give --timing-device cuda, or "
                         f"leave out --cuda-graphs")


def cuda_graph(fn: Callable[[], Any], device: torch.device | str, warmup: int = 3) -> Callable[[], Any]:
    """Capture ``fn()`` (whose inputs stay where they are) in a CUDA graph after ``warmup`` calls on a side stream;
    returns a call that replays the graph and returns the captured output (overwritten by each replay)."""
    device = torch.device(device)
    check_graph_device(device)
    graph, output = _capture(fn, device, warmup)

    def replay() -> Any:
        graph.replay()
        return output
    return replay


def graphed_shooting(initial: Tensor, target: Tensor, setup: ControlSetup, iterations: int,
                     lr: float = 0.01) -> Callable[[], Tensor]:
    """:func:`~problems.pde_control.training.shoot` with one iteration (forward, backward, Adam step) captured in a
    CUDA graph: each call zeroes the forces and Adam's state, replays the iteration ``iterations`` times and returns
    the trajectory of the final forces (the same numbers as ``shoot`` up to float rounding)."""
    check_graph_device(initial.device)
    forces = zero_forces(initial, setup)
    optimizer = torch.optim.Adam([forces], lr=lr, capturable=True)

    def iteration() -> None:
        optimizer.zero_grad(set_to_none=True)   # no kernel: under capture, the backward writes the graph's gradient
        shooting_loss(forces, initial, target, setup).backward()
        optimizer.step()

    with torch.enable_grad():
        graph, _ = _capture(iteration, initial.device, warmup=3)

    def run() -> Tensor:
        with torch.no_grad():
            forces.zero_()
            for state in optimizer.state.values():
                for value in state.values():
                    value.zero_()          # step, exp_avg, exp_avg_sq: Adam starts afresh
        for _ in range(iterations):
            graph.replay()
        with torch.no_grad():
            return shooting_trajectory(forces, initial, target, setup)
    return run


def _capture(fn: Callable[[], Any], device: torch.device, warmup: int) -> tuple[Any, Any]:
    """Warm ``fn`` up on a side stream (as CUDA graph capture requires), then capture it once; returns (graph, the
    captured call's output)."""
    current = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(current)
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn()
    current.wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fn()
    return graph, output
