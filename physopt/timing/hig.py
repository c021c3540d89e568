"""Time one HIG update and its parts (Jacobian, decomposition, apply) and its peak memory, per half-inversion route
and Jacobian engine (``expand``: one batched backward; ``vmap``: vmap(jacrev), the earlier engine; either with
``+compile``: the physics under torch.compile, compiled in the untimed warm-up; ``supplied``: the problem's
closed-form physics Jacobian, where it has one), on the HIG paper's setups (``physopt hig-timing``), with one Adam
step at Adam's batch size for scale. The problem and its network run in float32 (as in training) or float64 (where
the engines' updates can be compared to round-off).

Every route steps one optimizer, as training does, from the same weights each time (restored before every update);
ratios compare routes
measured in the same run, and each row records how far its update is from the reference route's (the most exact one
in the run: float64 before float32, then svd, factored, gram), so routes are only compared where they compute the
same update. Time and memory: :mod:`physopt.timing.kernel`.
"""
from __future__ import annotations

import copy
import statistics
from typing import Any, Callable, Sequence

import torch

from physopt import HIG
from physopt.bench.methods import get_method, optimizer_arguments, resolve_hyperparameters
from physopt.bench.table import Column, format_table, text_column

from .kernel import AGREEMENT_RTOL, relative_difference, time_call

SETUPS = ("oscillators", "quantum-dipole", "poisson-hig")
ROUTES = ("factored", "gram", "svd")
ENGINES = ("vmap", "expand", "supplied")
#: every engine, also the autograd ones with the physics under torch.compile (HIG's compile_physics; its compiling is
#: in the warm-up); ``supplied`` runs only on problems that define ``physics_jacobian``
ALL_ENGINES = (*ENGINES, *(f"{e}+compile" for e in ("vmap", "expand")))
PARTS = ("jacobian", "decomposition", "apply")

COLUMNS = [text_column("setup", "setup"), text_column("route", "route"), text_column("jacobian", "engine"),
           text_column("dtype", "dtype"), text_column("net", "network_dtype"),
           Column("batch", "batch", "{}"), Column("rows", "rows", "{}"), Column("weights", "weights", "{}"),
           Column("kept", "kept", "{}"), Column("total s", "total_s"), Column("IQR s", "total_iqr_s"),
           Column("jacobian", "jacobian_s"), Column("decomp", "decomposition_s"), Column("apply", "apply_s"),
           Column("peak MiB", "peak_bytes", "{:.1f}", 2 ** -20), Column("vs ref", "rel_diff", "{:.1e}")]

#: the reference of the agreement check: the first of these (decomposition dtype, route, engine) in a run
REFERENCE_ORDER = [(d, r, e) for d in ("float64", "float32") for r in ("svd", "factored", "gram")
                   for e in ALL_ENGINES]


def time_setup(name: str, routes: Sequence[str], repeats: int, device: torch.device,
               dtypes: Sequence[torch.dtype], engines: Sequence[str] = ENGINES,
               network_dtype: torch.dtype = torch.float32) -> list[dict[str, Any]]:
    """One HIG update per (route, Jacobian engine, decomposition dtype) on the problem's paper setup (its HIG batch
    size), problem and network in ``network_dtype``; ``supplied`` only where the problem has a physics Jacobian."""
    from problems import get_problem
    problem = get_problem(name, device=device, dtype=network_dtype)
    if not type(problem).defines_physics_jacobian():
        engines = [e for e in engines if e != "supplied"]
    hp = resolve_hyperparameters(get_method("hig"), problem)
    b = hp["batch_size"]
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    net = problem.default_network()
    rows = []
    before = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
    updates: dict[tuple[str, str, str], torch.Tensor] = {}
    for dtype, route, engine in [(d, r, e) for d in dtypes for r in routes for e in engines]:
        stats: list[Any] = []
        key = (str(dtype).replace("torch.", ""), route, engine)

        model = copy.deepcopy(net)
        base, _, compiled = engine.partition("+")
        opt = HIG(model, problem.forward, problem.loss, lr=hp["lr"], truncation=hp["truncation"],
                  route=route, decomposition_dtype=dtype, profile=True, jacobian=base,
                  compile_physics=compiled == "compile",
                  physics_jacobian=problem.physics_jacobian if base == "supplied" else None)

        def update() -> None:            # one optimizer, as in training; every update from the same weights
            model.load_state_dict(net.state_dict())
            opt.step(batch.inputs, batch)
            stats.append(opt.last_stats)
            updates[key] = torch.nn.utils.parameters_to_vector(model.parameters()).detach() - before

        if compiled:                          # compiling happens here, outside the timed calls and their peak
            update()
            stats.clear()
        t = time_call(update, device, min_runs=repeats)
        timed = stats[1:]                     # the warm-up's parts are not counted
        s = timed[-1]
        fallback = getattr(opt.physics, "fallback", None) is not None
        rows.append({"setup": name, "route": route, "engine": engine, "dtype": key[0],
                     "network_dtype": str(network_dtype).replace("torch.", ""), "batch": b,
                     "eager_fallback": fallback,
                     "rows": s.rows, "weights": s.cols, "kept": s.kept, "repeats": len(t.times_s),
                     "total_s": t.median_s, "total_iqr_s": t.iqr_s,
                     **{f"{k}_s": statistics.median(getattr(x, f"{k}_s") for x in timed) for k in PARTS},
                     "peak_bytes": t.peak_bytes})
    reference = next((k for k in REFERENCE_ORDER if k in updates), None)
    tolerance = AGREEMENT_RTOL[str(problem.dtype).replace("torch.", "")]
    for r in rows:
        r["reference"], r["tolerance"] = "/".join(reference[::-1]), tolerance
        r["rel_diff"] = relative_difference(updates[(r["dtype"], r["route"], r["engine"])], updates[reference])
    rows.append(_adam_row(problem, net, device, repeats))
    rows.append(_eigh_row(problem.name, rows[0]["rows"], device, repeats))
    return rows


def _eigh_row(setup: str, size: int, device: torch.device, repeats: int) -> dict[str, Any]:
    """A bare float64 ``torch.linalg.eigh`` of a random symmetric matrix of the Gram matrix's size (b|y| x b|y|):
    the floor of every Gram-based route's decomposition, for scale."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g, dtype=torch.float64).to(device)
    a = a + a.T
    t = time_call(lambda: torch.linalg.eigh(a), device, min_runs=repeats)
    return {"setup": setup, "route": "eigh", "engine": "-", "dtype": "float64", "batch": None, "rows": size,
            "weights": None, "kept": None, "repeats": len(t.times_s), "total_s": t.median_s, "total_iqr_s": t.iqr_s,
            "jacobian_s": None, "decomposition_s": None, "apply_s": None, "peak_bytes": t.peak_bytes}


def _adam_row(problem, net, device: torch.device, repeats: int) -> dict[str, Any]:
    """One Adam step (forward, backward through the physics, update) at the paper's Adam batch size, for scale."""
    hp = resolve_hyperparameters(get_method("adam"), problem)
    b = hp["batch_size"]
    batch = problem.sample(b, torch.Generator().manual_seed(0))
    model = copy.deepcopy(net)
    opt = torch.optim.Adam(model.parameters(), **optimizer_arguments(hp))

    def step():
        opt.zero_grad()
        problem.loss(problem.forward(model(batch.inputs), batch), batch).mean().backward()
        opt.step()

    t = time_call(step, device, min_runs=repeats)
    return {"setup": problem.name, "route": "adam", "engine": "-", "dtype": str(problem.dtype).replace("torch.", ""),
            "network_dtype": str(problem.dtype).replace("torch.", ""), "batch": b,
            "rows": None, "weights": sum(p.numel() for p in net.parameters()), "kept": None,
            "repeats": len(t.times_s), "total_s": t.median_s, "total_iqr_s": t.iqr_s, "jacobian_s": None,
            "decomposition_s": None, "apply_s": None, "peak_bytes": t.peak_bytes}


#: the pairs compared: (what is fixed, slower variant, faster variant) with variant = (route, engine)
ROUTE_PAIRS = (("svd", "gram"), ("svd", "factored"), ("gram", "factored"))


def _ratio(setup: str, dtype: str, slow: dict[str, Any], fast: dict[str, Any], label: str) -> dict[str, Any]:
    ok = all(r.get("rel_diff") is not None and r["rel_diff"] <= r["tolerance"] for r in (slow, fast))
    return {"setup": setup, "dtype": dtype, "slow": f"{slow['route']}/{slow['engine']}",
            "fast": f"{fast['route']}/{fast['engine']}", "label": label, "agrees": ok,
            "rel_diff": [slow.get("rel_diff"), fast.get("rel_diff")], "reference": slow.get("reference"),
            "total": slow["total_s"] / fast["total_s"] if ok else None,
            "jacobian": slow["jacobian_s"] / fast["jacobian_s"] if ok else None,
            "decomposition": slow["decomposition_s"] / fast["decomposition_s"] if ok else None}


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setup and decomposition dtype: total, Jacobian and decomposition time of the slower variant over the
    faster: routes against each other with the same engine, and the ``vmap`` engine (before) against each other
    engine (``expand``, ``+compile``) on the same route; only where both updates agree with the reference's within
    the tolerance of the network's dtype (:data:`~physopt.timing.kernel.AGREEMENT_RTOL`: its Jacobian is only that
    exact); else no ratio (``agrees`` False): the two do not compute the same update."""
    groups: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
    for r in rows:
        if r["route"] not in ("adam", "eigh"):
            groups.setdefault((r["setup"], r["dtype"]), {})[(r["route"], r.get("engine", "vmap"))] = r
    out = []
    for (setup, dtype), by in groups.items():
        for route in ROUTES:
            for fast in ALL_ENGINES[1:]:          # the earlier engine (before) against each of the others
                if (route, "vmap") in by and (route, fast) in by:
                    out.append(_ratio(setup, dtype, by[(route, "vmap")], by[(route, fast)], "engine"))
        for engine in ALL_ENGINES:
            for slow, fast in ROUTE_PAIRS:
                if (slow, engine) in by and (fast, engine) in by:
                    out.append(_ratio(setup, dtype, by[(slow, engine)], by[(fast, engine)], "route"))
    return out


def eigh_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per setup: each float64 Gram-based update's total time over the bare eigh of a matrix of its Gram size."""
    out = []
    for bare in (r for r in rows if r["route"] == "eigh"):
        for r in rows:
            if r["setup"] == bare["setup"] and r["route"] in ("factored", "gram") and r["dtype"] == "float64":
                out.append({"setup": r["setup"], "update": f"{r['route']}/{r['engine']}",
                            "ratio": r["total_s"] / bare["total_s"], "size": bare["rows"]})
    return out


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The table (median and IQR over the timed updates; 'vs ref': each update's relative difference from the
    reference route's), then each route's time relative to the faster ones where their updates agree."""
    tolerances = sorted({r["tolerance"] for r in rows if "tolerance" in r})
    fell_back = [f"{r['setup']} {r['route']}/{r['engine']}" for r in rows if r.get("eager_fallback")]
    notes = ([f"NOTE: torch.compile failed, these ran eagerly: {', '.join(fell_back)}", ""] if fell_back else [])
    lines = [format_table(rows, COLUMNS), "", *notes, "ratios (same setup and decomposition dtype, same run; "
             "route/jacobian engine; only where both updates agree with the reference's to " +
             " or ".join(f"{t:g}" for t in tolerances) + " relative, the precision of the network's Jacobian):"]
    for q in ratios(rows):
        where = f"  {q['setup']} ({q['dtype']}): {q['slow']} over {q['fast']}: "
        if q["agrees"]:
            lines.append(where + f"total {q['total']:.3g}x, jacobian {q['jacobian']:.3g}x, decomposition "
                                 f"{q['decomposition']:.3g}x")
        else:
            diffs = ", ".join("-" if d is None else f"{d:.2g}" for d in q["rel_diff"])
            lines.append(where + f"no ratio: updates differ from {q['reference']}'s by {diffs} relative")
    bare = eigh_ratios(rows)
    if bare:
        lines += ["", "whole update over a bare float64 eigh of a symmetric matrix of its Gram size (same run):"]
        lines += [f"  {q['setup']}: {q['update']} {q['ratio']:.3g}x (eigh of {q['size']} x {q['size']})"
                  for q in bare]
    return "\n".join(lines)


def run(setups: Sequence[str] = SETUPS, routes: Sequence[str] = ROUTES, repeats: int = 3,
        device: torch.device | str = "cpu", dtypes: Sequence[str] = ("float64",),
        log: Callable[[str], None] | None = None, engines: Sequence[str] = ENGINES,
        checkpoint: Callable[[list[dict[str, Any]]], None] | None = None,
        network_dtype: str = "float32") -> list[dict[str, Any]]:
    """Rows per (setup, route, engine, dtype) plus an Adam row per setup, problem and network in ``network_dtype``;
    ``checkpoint(rows)`` after each setup."""
    dev = torch.device(device)
    dts = [getattr(torch, d) for d in dtypes]
    rows: list[dict[str, Any]] = []
    for name in setups:
        if log:
            log(f"timing {name} ...")
        rows += time_setup(name, routes, repeats, dev, dts, engines, getattr(torch, network_dtype))
        if checkpoint:
            checkpoint(rows)
    return rows
