"""Navier-Stokes measurements: the solver's step against PhiFlow's (``physopt ns-step-bench``) and the trained
network's inference against the iterative inverse solver (``physopt ns-inference``, SIP paper Table 1).

Both report ratios measured in the same run: median and IQR of timed calls after a warm-up
(:mod:`physopt.timing.kernel`).
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import torch

from physopt.bench.methods import get_method, optimizer_arguments, resolve_hyperparameters
from physopt.bench.table import Column, format_table, text_column

from .kernel import sync, time_call


def _timed(implementation: str, pass_: str, fn: Callable[[], Any], device: torch.device, repeats: int,
           **extra: Any) -> dict[str, Any]:
    t = time_call(fn, device, min_runs=repeats)
    return {"implementation": implementation, "pass": pass_, "seconds": t.median_s, "iqr_s": t.iqr_s, **extra}


# ----------------------------------------------------------------------------------------------------------------
# One simulation step: physopt vs PhiFlow
# ----------------------------------------------------------------------------------------------------------------

#: PhiFlow's pressure solve as the SIP authors configure it, made to converge: conjugate gradients on the torch
#: backend, absolute tolerance 1e-4 (the authors' value), rank_deficiency=0 (with PhiFlow 3.4 / phiml 1.16 the
#: default, or 1, leaves some examples of a batch un-projected on this periodic system: max |div v| ~ 1, checked in
#: every run), the whole step traced once with math.jit_compile. Non-convergence raises, it is not suppressed.
PHIFLOW_SOLVE = dict(method="CG", rel_tol=0.0, abs_tol=1e-4, max_iterations=1000, rank_deficiency=0)
#: the largest max |div v| of a projected velocity that counts as divergence-free in the check
DIVERGENCE_FREE = 1e-3


def _phiflow_step(n: int, dx: float, dt: float, device: torch.device, velocity: torch.Tensor,
                  marker: torch.Tensor) -> tuple[Callable[[], Any], Callable[[Any], tuple[torch.Tensor, torch.Tensor]]]:
    """The authors' step written with PhiFlow (MacCormack self-advection, CG pressure solve, energy rescale,
    MacCormack marker advection) on the same fields, with :data:`PHIFLOW_SOLVE`. Returns the zero-argument step and
    a function that turns its output into physopt's layout (velocity (B, 2, n, n), marker (B, n, n))."""
    from phi.torch import TORCH
    from phi.torch.flow import (Box, CenteredGrid, Solve, StaggeredGrid, advect, batch as bdim, dual, extrapolation,
                                field, fluid, math, spatial)
    TORCH.set_default_device("GPU" if device.type == "cuda" else "CPU")
    bounds = Box(x=n * dx, y=n * dx)
    comps = [math.tensor(velocity[:, k].transpose(-1, -2), bdim("b"), spatial("x,y")) for k in range(2)]
    v = StaggeredGrid(math.stack(comps, dual(vector="x,y")), extrapolation.PERIODIC, bounds=bounds, x=n, y=n)
    m = CenteredGrid(math.tensor(marker.transpose(-1, -2), bdim("b"), spatial("x,y")), extrapolation.PERIODIC,
                     bounds=bounds, x=n, y=n)

    @math.jit_compile
    def step(v, m):
        energy = field.mean(v ** 2)
        w = advect.mac_cormack(v, v, dt)
        w, _ = fluid.make_incompressible(w, solve=Solve(**PHIFLOW_SOLVE))
        w = w * math.sqrt(energy / field.mean(w ** 2))
        return w, advect.mac_cormack(m, w, dt)

    def to_torch(out: Any) -> tuple[torch.Tensor, torch.Tensor]:
        w, m1 = out
        values = w.values
        comps = [values[{"~vector": k}].native("b,x,y")[:, :n, :n].transpose(-1, -2) for k in ("x", "y")]
        return torch.stack(comps, 1), m1.values.native("b,x,y").transpose(-1, -2)

    return lambda: step(v, m), to_torch


def _agreement(ours: tuple[torch.Tensor, torch.Tensor], theirs: tuple[torch.Tensor, torch.Tensor],
               dx: float) -> dict[str, float]:
    """How far PhiFlow's step is from physopt's on the same input (relative max differences) and how divergence-free
    each projected velocity is (max |div v|): the baseline's output is checked in the run that times it."""
    from problems.solvers.staggered import divergence
    (v_ours, m_ours), (v_theirs, m_theirs) = ours, theirs
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    return {"velocity_rel_diff": rel(v_theirs.to(v_ours), v_ours), "marker_rel_diff": rel(m_theirs.to(m_ours), m_ours),
            "max_divergence_physopt": float(divergence(v_ours, dx).abs().max()),
            "max_divergence_phiflow": float(divergence(v_theirs.to(v_ours), dx).abs().max())}


def step_timing(batch: int = 64, resolution: int = 64, repeats: int = 5, device: str = "cpu",
                backward: bool = True) -> list[dict[str, Any]]:
    """Time one step of the navier-stokes problem's physics (float32) with physopt and, if installed, PhiFlow
    (configured as :data:`PHIFLOW_SOLVE`); PhiFlow's output is compared with physopt's in the same run."""
    from problems import get_problem
    from problems.solvers.staggered import fluid_step, project
    dev = torch.device(device)
    problem = get_problem("navier-stokes", device=dev, resolution=resolution, dx=128.0 / resolution)
    c = problem.config
    data = problem.sample(batch, torch.Generator().manual_seed(0))
    v0, m0 = project(data.x_true, c.dx), data.inputs[:, 0]
    rows = [_timed("physopt", "forward", lambda: fluid_step(v0, m0, c.dt, c.dx), dev, repeats)]
    if backward:
        def forward_backward():
            v = v0.detach().requires_grad_()
            _, m = fluid_step(v, m0, c.dt, c.dx)
            m.sum().backward()
        rows.append(_timed("physopt", "forward+backward", forward_backward, dev, repeats))
    try:
        import phi
    except ImportError:
        rows.append({"implementation": "phiflow", "pass": "forward", "seconds": None, "iqr_s": None,
                     "note": "PhiFlow not installed: pip install phiflow"})
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step, to_torch = _phiflow_step(c.resolution, c.dx, c.dt, dev, v0, m0)
            with torch.no_grad():
                checks = _agreement(fluid_step(v0, m0, c.dt, c.dx), to_torch(step()), c.dx)
            note = "" if checks["max_divergence_phiflow"] <= DIVERGENCE_FREE else \
                "NOT divergence-free after projection: not a fair baseline"
            rows.append(_timed("phiflow", "forward", step, dev, repeats, version=phi.__version__,
                               solve=dict(PHIFLOW_SOLVE), note=note, **checks))
    for r in rows:
        r.update(batch=batch, resolution=c.resolution, repeats=repeats)
    return rows


STEP_COLUMNS = [text_column("implementation", "implementation"), text_column("pass", "pass"),
                Column("batch", "batch", "{}"), Column("grid", cell=lambda r: f"{r['resolution']}^2"),
                Column("ms per step", "seconds", "{:.1f}", 1e3), Column("IQR ms", "iqr_s", "{:.2g}", 1e3),
                text_column("note", "note")]


def format_step_rows(rows: list[dict[str, Any]]) -> str:
    lines = [format_table(rows, STEP_COLUMNS)]
    ours = next((r["seconds"] for r in rows if r["implementation"] == "physopt" and r["pass"] == "forward"), None)
    theirs = next((r["seconds"] for r in rows if r["implementation"] == "phiflow"), None)
    if ours and theirs:
        lines.append(f"\nPhiFlow / physopt (forward step, same run): {theirs / ours:.3g}x")
    checked = next((r for r in rows if "velocity_rel_diff" in r), None)
    if checked:
        lines.append(f"PhiFlow's output checked in this run: velocity {checked['velocity_rel_diff']:.2g} and marker "
                     f"{checked['marker_rel_diff']:.2g} from physopt's (relative max difference); max |div v| after "
                     f"projection {checked['max_divergence_phiflow']:.2g} "
                     f"(physopt {checked['max_divergence_physopt']:.2g})"
                     f"; solve {checked['solve']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Inference: trained network vs the iterative inverse solver (SIP paper Table 1)
# ----------------------------------------------------------------------------------------------------------------

def inference_speed(train_iterations: int = 200, batch: int = 64, solver_iterations: int = 8,
                    repeats: int = 5, device: str = "cpu", seed: int = 0,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
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
        if log and (it + 1) % 50 == 0:
            log(f"  trained {it + 1}/{train_iterations} SIP iterations ({time.perf_counter() - start:.0f} s)")
    train_s = time.perf_counter() - start
    test = problem.sample(batch, torch.Generator().manual_seed(10 ** 6 + seed))
    net.eval()
    with torch.no_grad():
        net_error = problem.x_error(net(test.inputs), test).mean().item()
        net_s = time_call(lambda: net(test.inputs), dev, min_runs=repeats).median_s
    x = torch.zeros(batch, *problem.x_shape, device=dev, dtype=problem.dtype)
    trace = []
    elapsed = 0.0
    for it in range(1, solver_iterations + 1):
        sync(dev)
        t0 = time.perf_counter()
        x = x + problem.inverse_update(x, test)
        sync(dev)
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
