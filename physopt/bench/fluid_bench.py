"""Navier-Stokes measurements: the solver's step against PhiFlow's (``physopt ns-step-bench``) and the trained
network's inference against the iterative inverse solver (``physopt ns-inference``, SIP paper Table 1).

Both report ratios measured in the same run, as the median of repeats after a warm-up.
"""
from __future__ import annotations

import argparse
import shlex
import statistics
import time
import warnings
from typing import Any, Callable

import torch

from .methods import get_method, optimizer_arguments, resolve_hyperparameters
from .results import write_benchmark


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    fn()                                                                   # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# ----------------------------------------------------------------------------------------------------------------
# One simulation step: physopt vs PhiFlow
# ----------------------------------------------------------------------------------------------------------------

def _phiflow_step(n: int, dx: float, dt: float, device: torch.device, velocity: torch.Tensor,
                  marker: torch.Tensor):
    """The authors' step written with PhiFlow (MacCormack self-advection, CG pressure solve with abs. tolerance 1e-4,
    energy rescale, MacCormack marker advection) on the same fields. Returns a zero-argument step.

    The CG is PhiFlow's 'scipy-CG' from a zero initial guess: with PhiFlow 3.4 / phiml 1.16 the torch CG and
    biCG-stab report "diverged" within ~10 iterations on this singular periodic system (float32 and float64), and
    scipy's CG reaches its 1000-iteration limit on a few examples of a batch of 64 (accepted here, as PhiFlow's
    ``suppress`` does, so the PhiFlow time includes those iterations)."""
    from phi.torch import TORCH
    from phi.torch.flow import (Box, CenteredGrid, NotConverged, Solve, StaggeredGrid, advect, batch as bdim, dual, extrapolation,
                                field, fluid, math, spatial)
    TORCH.set_default_device("GPU" if device.type == "cuda" else "CPU")
    bounds = Box(x=n * dx, y=n * dx)
    comps = [math.tensor(velocity[:, k].transpose(-1, -2), bdim("b"), spatial("x,y")) for k in range(2)]
    v = StaggeredGrid(math.stack(comps, dual(vector="x,y")), extrapolation.PERIODIC, bounds=bounds, x=n, y=n)
    m = CenteredGrid(math.tensor(marker.transpose(-1, -2), bdim("b"), spatial("x,y")), extrapolation.PERIODIC,
                     bounds=bounds, x=n, y=n)

    def step():
        energy = field.mean(v ** 2)
        w = advect.mac_cormack(v, v, dt)
        w, _ = fluid.make_incompressible(w, solve=Solve("scipy-CG", 0, 1e-4, max_iterations=1000,
                                                        suppress=[NotConverged]))
        w = w * math.sqrt(energy / field.mean(w ** 2))
        return w, advect.mac_cormack(m, w, dt)

    return step


def step_timing(batch: int = 64, resolution: int = 64, repeats: int = 5, device: str = "cpu",
                backward: bool = True) -> list[dict[str, Any]]:
    """Time one step of the navier-stokes problem's physics (float32) with physopt and, if installed, PhiFlow."""
    from problems import get_problem
    from problems.staggered import fluid_step, project
    dev = torch.device(device)
    problem = get_problem("navier-stokes", device=dev, resolution=resolution, dx=128.0 / resolution)
    c = problem.config
    data = problem.sample(batch, torch.Generator().manual_seed(0))
    v0, m0 = project(data.x_true, c.dx), data.inputs[:, 0]
    rows = [{"implementation": "physopt", "pass": "forward",
             "seconds": _median_time(lambda: fluid_step(v0, m0, c.dt, c.dx), dev, repeats)}]
    if backward:
        def forward_backward():
            v = v0.detach().requires_grad_()
            _, m = fluid_step(v, m0, c.dt, c.dx)
            m.sum().backward()
        rows.append({"implementation": "physopt", "pass": "forward+backward",
                     "seconds": _median_time(forward_backward, dev, repeats)})
    try:
        import phi
    except ImportError:
        rows.append({"implementation": "phiflow", "pass": "forward", "seconds": None,
                     "note": "PhiFlow not installed: pip install phiflow"})
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step = _phiflow_step(c.resolution, c.dx, c.dt, dev, v0, m0)
            rows.append({"implementation": "phiflow", "pass": "forward", "seconds": _median_time(step, dev, repeats),
                         "version": phi.__version__})
    for r in rows:
        r.update(batch=batch, resolution=c.resolution, repeats=repeats)
    return rows


def format_step_rows(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'implementation':<15} {'pass':<17} {'batch':>5} {'grid':>7} {'ms per step':>12}", "-" * 60]
    for r in rows:
        ms = "-" if r["seconds"] is None else f"{1e3 * r['seconds']:.1f}"
        grid = f"{r.get('resolution', '')}^2"
        lines.append(f"{r['implementation']:<15} {r['pass']:<17} {r.get('batch', ''):>5} {grid:>7} {ms:>12}"
                     + (f"   ({r['note']})" if r.get("note") else ""))
    ours = next((r["seconds"] for r in rows if r["implementation"] == "physopt" and r["pass"] == "forward"), None)
    theirs = next((r["seconds"] for r in rows if r["implementation"] == "phiflow"), None)
    if ours and theirs:
        lines.append(f"\nPhiFlow / physopt (forward step, same run): {theirs / ours:.3g}x")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Inference: trained network vs the iterative inverse solver (SIP paper Table 1)
# ----------------------------------------------------------------------------------------------------------------

def inference_speed(train_iterations: int = 200, batch: int = 64, solver_iterations: int = 8,
                    repeats: int = 5, device: str = "cpu", seed: int = 0,
                    progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train the default U-net with SIP (Adam, the problem's settings) for ``train_iterations``, then on one held-out
    batch compare (a) the network's time per problem in batch mode and (b) ``solver_iterations`` iterations of the
    iterative inverse solver x <- x + U(x) from x = 0 (the paper's P_NS^-1 needed 7): its error and time per
    problem after each iteration, and the first iteration at which it matches the network's v0 error."""
    from problems import get_problem
    dev = torch.device(device)
    problem = get_problem("navier-stokes", device=dev)
    hp = resolve_hyperparameters(get_method("sip"), problem, {"batch_size": batch})
    torch.manual_seed(seed)
    net = problem.default_network()
    step = get_method("sip").build(net, problem, optimizer_arguments(hp))
    data = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for it in range(train_iterations):
        step(problem.sample(batch, data))
        if progress and (it + 1) % 50 == 0:
            progress(f"  trained {it + 1}/{train_iterations} SIP iterations ({time.perf_counter() - start:.0f} s)")
    train_s = time.perf_counter() - start
    test = problem.sample(batch, torch.Generator().manual_seed(10 ** 6 + seed))
    net.eval()
    with torch.no_grad():
        net_error = problem.x_error(net(test.inputs), test).mean().item()
        net_s = _median_time(lambda: net(test.inputs), dev, repeats)
    x = torch.zeros(batch, *problem.x_shape, device=dev, dtype=problem.dtype)
    trace = []
    elapsed = 0.0
    for it in range(1, solver_iterations + 1):
        _sync(dev)
        t0 = time.perf_counter()
        x = x + problem.inverse_update(x, test)
        _sync(dev)
        elapsed += time.perf_counter() - t0
        trace.append({"iteration": it, "seconds_per_problem": elapsed / batch,
                      "x_error": problem.x_error(x, test).mean().item()})
    match = next((t for t in trace if t["x_error"] <= net_error), None)
    return {"train_iterations": train_iterations, "train_seconds": train_s, "batch": batch,
            "network": {"x_error": net_error, "seconds_per_batch": net_s, "seconds_per_problem": net_s / batch,
                        "problems_per_second": batch / net_s},
            "solver": {"iterations_to_network_error": None if match is None else match["iteration"],
                       "seconds_per_problem_to_network_error": None if match is None else match["seconds_per_problem"],
                       "seconds_per_problem_per_iteration": elapsed / batch / solver_iterations, "trace": trace}}


def format_inference(r: dict[str, Any]) -> str:
    net, sol = r["network"], r["solver"]
    lines = [f"network (U-net after {r['train_iterations']} SIP iterations, {r['train_seconds']:.0f} s of training): "
             f"v0 L1 error {net['x_error']:.4g}, {1e3 * net['seconds_per_problem']:.3g} ms per problem in batches of "
             f"{r['batch']} ({net['problems_per_second']:.0f} problems/s)",
             f"iterative inverse solver x <- x + U(x) from 0, batches of {r['batch']}: "
             f"{1e3 * sol['seconds_per_problem_per_iteration']:.3g} ms per problem and iteration "
             f"({sol['seconds_per_problem_per_iteration'] / net['seconds_per_problem']:.3g}x the network's time "
             f"per problem, same run)"]
    if sol["iterations_to_network_error"] is None:
        lines.append("  it does not reach the network's v0 error within the iterations run")
    else:
        lines.append(f"  it matches the network's v0 error after {sol['iterations_to_network_error']} iteration(s): "
                     f"{1e3 * sol['seconds_per_problem_to_network_error']:.3g} ms per problem, "
                     f"{sol['seconds_per_problem_to_network_error'] / net['seconds_per_problem']:.3g}x the network's")
    lines += ["", "solver trace (iteration, ms per problem so far, v0 L1 error):"]
    lines += [f"  {t['iteration']:>3} {1e3 * t['seconds_per_problem']:8.3g} {t['x_error']:.4g}" for t in sol["trace"]]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------

def _command(args: argparse.Namespace) -> str:
    return "physopt " + " ".join(shlex.quote(a) for a in args.argv)


def cmd_step(args: argparse.Namespace) -> int:
    from .compare import resolve_device
    dev = resolve_device(args.device)
    rows = step_timing(args.batch, args.resolution, args.repeats, str(dev))
    text = format_step_rows(rows)
    print(text)
    if args.out:
        write_benchmark(args.out, "step_timing", _command(args), dev, text, {"rows": rows})
    return 0


def cmd_inference(args: argparse.Namespace) -> int:
    from .compare import default_progress, resolve_device
    dev = resolve_device(args.device)
    if args.train_iterations < 0 or args.batch < 1 or args.solver_iterations < 1:
        raise ValueError("--train-iterations must be >= 0, --batch and --solver-iterations >= 1")
    result = inference_speed(args.train_iterations, args.batch, args.solver_iterations, args.repeats, str(dev),
                             progress=default_progress)
    text = format_inference(result)
    print(text)
    if args.out:
        write_benchmark(args.out, "inference", _command(args), dev, text, result)
    return 0


def register_cli(sub) -> None:
    s = sub.add_parser("ns-step-bench", help="time one Navier-Stokes step: physopt's solver vs PhiFlow's")
    s.add_argument("--batch", type=int, default=64)
    s.add_argument("--resolution", type=int, default=64)
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    s.add_argument("--out", default=None, help="directory for step_timing.json and step_timing.txt")
    s.set_defaults(func=cmd_step)
    i = sub.add_parser("ns-inference", help="trained network vs iterative inverse solver per problem (SIP Table 1)")
    i.add_argument("--train-iterations", type=int, default=200, help="SIP training iterations before measuring")
    i.add_argument("--batch", type=int, default=64)
    i.add_argument("--solver-iterations", type=int, default=8, help="iterations of x <- x + U(x) (paper: 7)")
    i.add_argument("--repeats", type=int, default=5)
    i.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    i.add_argument("--out", default=None, help="directory for inference.json and inference.txt")
    i.set_defaults(func=cmd_inference)
