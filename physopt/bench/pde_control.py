"""``physopt pde-control``: the PDE-control paper's Table 1 (Holl et al. 2020, Burgers) re-measured, resumable.

Training follows the paper's order (Sec. 6.1, App. D.1): each OP_n supervised on its own, executed staggered
("staggered, supervised"), then all OPs jointly end-to-end through the solver with the staggered scheme
("staggered, diff. physics"), those weights fine-tuned with prediction refinement ("refined, diff. physics"); the
CFE chain supervised, then fine-tuned through the solver; single shooting for 60 and 300 iterations on each
held-out task. Every stage is saved when it ends (``OUT/seed<S>/<stage>.pt``, written atomically): run the same
command again after an interruption and only unfinished stages train. The table (force integral over the 100 held-out
tasks, inference time per task) and the Fig. 4 trajectories are written to OUT.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from problems.pde_control import (ControlForceEstimator, ObservationPredictors, control_forces, force_integral,
                                  split_scenes)
from problems.pde_control.schemes import execute
from problems.pde_control.setup import ControlSetup
from problems.pde_control.training import cfe_supervised_loss, diff_physics_loss, fit, op_supervised_loss, shoot

from .plots import pyplot, save_figure
from .provenance import provenance
from .storage import atomic_write, machine_info, markdown_header
from .train import atomic_save, derived_seed

__all__ = ["TablePlan", "PLANS", "PAPER_TABLE1", "run_table", "ROWS"]


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """Iterations, batches and rates of every stage. Sources: paper App. C / D.1 and the authors' legacy code
    (Adam; OP_n supervised at batch 16; diff. physics at lr 1e-4; force weight 0.1 and, for the hierarchical
    schemes, jerk weight 0.01; shooting Adam lr 0.01). Iteration counts are cut to a 2-core CPU: the paper trains
    ~100k iterations."""
    training_scenes: int = 3600
    held_out: int = 100
    supervised_iterations: int = 3000        # per OP_n, and for the CFE
    supervised_batch: int = 16
    supervised_lr: float = 1e-3
    diff_iterations: int = 1000              # CFE chain and staggered, end to end
    refined_iterations: int = 200
    diff_batch: int = 16
    diff_lr: float = 1e-4
    force_weight: float = 0.1
    jerk_weight: float = 0.01
    shooting_iterations: tuple[int, ...] = (60, 300)
    shooting_lr: float = 0.01


PLANS = {"cpu": TablePlan(),
         "quick": TablePlan(training_scenes=64, held_out=8, supervised_iterations=3, diff_iterations=2,
                            refined_iterations=1, diff_batch=4, supervised_batch=4, shooting_iterations=(2, 4))}

#: Table 1 of the paper (force integral, inference time in ms; one GTX 1080 Ti, 100 examples in parallel)
PAPER_TABLE1 = {
    "cfe-chain/supervised": (83.4, 2.0, 0.024), "cfe-chain/diff-physics": (28.8, 0.8, 0.024),
    "staggered/supervised": (34.3, 1.1, 1.15), "staggered/diff-physics": (15.3, 0.7, 1.15),
    "refined/diff-physics": (14.2, 0.7, 3.05), "shooting/60": (15.3, 1.6, 52.7), "shooting/300": (10.2, 1.9, 264.0)}

#: how the table says its times are CUDA-graph replays (``physopt pde-control --cuda-graphs``)
GRAPHS_NOTE = (", each scheme captured once in a CUDA graph and replayed, shooting with one iteration captured and "
               "replayed per iteration")

#: what the ops column counts (:func:`physopt.timing.kernel.count_ops`)
OPS_NOTE = ("Ops: the ATen operations that compute something (views left out) in one call for the whole batch, "
            "counted on the CPU; on a GPU each is about one kernel launch, so where launches dominate, inference "
            "time follows this count on any device.")

#: the table's rows: (key, label)
ROWS = [("cfe-chain/supervised", "CFE chain, supervised"), ("cfe-chain/diff-physics", "CFE chain, diff. physics"),
        ("staggered/supervised", "staggered, supervised"), ("staggered/diff-physics", "staggered, diff. physics"),
        ("refined/diff-physics", "refined, diff. physics"), ("shooting/60", "iterative optim., 60 its"),
        ("shooting/300", "iterative optim., 300 its"),
        ("ground-truth", "ground truth: the force that reproduces the forced run, F_t = Solver[u_t + f] - Solver[u_t]"),
        ("ground-truth/applied", "ground truth: the constant force as applied, 32 sum_x |f| (the authors' count)")]


class Stages:
    """Trains or loads each stage of one seed; a stage file holds its weights, loss history and plan."""

    def __init__(self, out: Path, plan: TablePlan, seed: int, log: Callable[[str], None]):
        self.out, self.plan, self.seed, self.log = out, plan, seed, log
        self.setup = ControlSetup()
        self.train, self.test = split_scenes(plan.training_scenes, plan.held_out, self.setup)
        self.histories: dict[str, dict[str, Any]] = {}

    def stage(self, name: str, model: nn.Module, train: Callable[[], Any]) -> nn.Module:
        """``model`` after stage ``name``: loaded from its file, or trained by ``train()`` and saved. A stage file
        records the plan and a digest of the weights it started from, and is loaded only where both match (so a
        retrained earlier stage is never silently combined with a later stage trained from other weights)."""
        path = self.out / f"{name}.pt"
        plan = dataclasses.asdict(self.plan)
        start = _digest(model)
        if path.exists():
            saved = torch.load(path, weights_only=False)
            if saved.get("plan") != plan:
                raise ValueError(f"{path} was trained with another plan; use another --out (or delete the file)")
            if saved.get("start", start) != start:      # files of physopt 0.2.0 before this check: no digest
                raise ValueError(f"{path} was trained from other starting weights than the earlier stages in "
                                 f"{self.out} now give (an earlier stage was retrained?); delete it and the stages "
                                 f"after it, or use another --out")
            model.load_state_dict(saved["state"])
            self.histories[name] = saved["history"]
            self.log(f"  seed {self.seed}: {name} loaded from {path}")
            return model
        history = train()
        self.histories[name] = {"losses": history.losses, "seconds": history.seconds}
        atomic_save(path, {"state": model.state_dict(), "history": self.histories[name], "plan": plan,
                           "seed": self.seed, "start": start, "provenance": provenance()})
        self.log(f"  seed {self.seed}: {name} trained in {history.seconds:.0f} s, loss {history.losses[0]:.4g} -> "
                 f"{history.losses[-1]:.4g}")
        return model

    def generator(self, name: str) -> torch.Generator:
        return torch.Generator().manual_seed(derived_seed(self.seed, name))

    def predictors(self) -> tuple[ObservationPredictors, ObservationPredictors, ObservationPredictors]:
        """(supervised, staggered diff. physics, refined diff. physics) observation predictors."""
        p = self.plan
        with torch.random.fork_rng(devices=[]):                  # seeded weights; the caller's RNG left alone
            torch.manual_seed(self.seed)
            ops = ObservationPredictors(self.setup)
        for n in self.setup.spans:
            name = f"op{n}-supervised"
            self.stage(name, ops, lambda n=n, name=name: fit(
                ops.nets[str(n)].parameters(), lambda g: op_supervised_loss(ops, n, self.train, p.supervised_batch, g),
                p.supervised_iterations, p.supervised_lr, self.generator(name)))
        staggered = self._diff_physics("staggered", ops, p.diff_iterations)
        refined = self._diff_physics("refined", staggered, p.refined_iterations)
        return ops, staggered, refined

    def cfes(self) -> tuple[ControlForceEstimator, ControlForceEstimator]:
        """(supervised, diff. physics) control force estimators."""
        p = self.plan
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            cfe = ControlForceEstimator(self.setup)
        self.stage("cfe-supervised", cfe, lambda: fit(
            cfe.parameters(), lambda g: cfe_supervised_loss(cfe, self.train, p.supervised_batch, g),
            p.supervised_iterations, p.supervised_lr, self.generator("cfe-supervised")))
        return cfe, self._diff_physics("cfe-chain", cfe, p.diff_iterations)

    def _diff_physics(self, scheme: str, start: nn.Module, iterations: int) -> nn.Module:
        p = self.plan
        model = _copy(start)
        name = f"{scheme}-diff-physics"
        jerk = 0.0 if scheme == "cfe-chain" else p.jerk_weight      # the authors' CFE-chain code has no jerk term

        def loss(g: torch.Generator) -> torch.Tensor:
            index = torch.randint(len(self.train), (p.diff_batch,), generator=g)
            return diff_physics_loss(scheme, model, self.train.select(index), self.setup,
                                     force_weight=p.force_weight, jerk_weight=jerk)

        return self.stage(name, model, lambda: fit(model.parameters(), loss, iterations, p.diff_lr,
                                                   self.generator(name)))


def _digest(model: nn.Module) -> str:
    """SHA-256 of a model's weights (names, shapes and values)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _copy(module: nn.Module) -> nn.Module:
    clone = type(module)(module.setup)
    clone.load_state_dict(module.state_dict())
    return clone


def _evaluate(stages: Stages, models: dict[str, tuple[str, nn.Module]]) -> dict[str, list[float]]:
    """Force integral per held-out task for every row."""
    test, setup, plan = stages.test, stages.setup, stages.plan
    rows: dict[str, list[float]] = {}
    with torch.no_grad():
        for key, (scheme, model) in models.items():
            rows[key] = force_integral(control_forces(execute(scheme, model, test.initial, test.target, setup),
                                                      setup)).tolist()
    for its in plan.shooting_iterations:
        rows[f"shooting/{its}"] = force_integral(control_forces(
            shoot(test.initial, test.target, setup, its, plan.shooting_lr), setup)).tolist()
    rows["ground-truth"] = force_integral(control_forces(test.trajectory, setup)).tolist()
    rows["ground-truth/applied"] = (setup.steps * test.force.abs().sum(-1)).tolist()
    return rows


def _mean_sem(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / max(n - 1, 1)
    return mean, math.sqrt(var / n)


#: timer(held-out tasks, setup, {row: (scheme, model)}, plan) -> {row: milliseconds per task}
Timer = Callable[[Any, ControlSetup, dict[str, tuple[str, nn.Module]], TablePlan], dict[str, float]]
#: counter(the same arguments) -> {row: computing operations of one call for the whole batch}
OpCounter = Callable[[Any, ControlSetup, dict[str, tuple[str, nn.Module]], TablePlan], dict[str, int]]


def run_table(out: str | Path, plan: str | TablePlan = "cpu", seeds: Sequence[int] = (0,), *,
              command: str | None = None, log: Callable[[str], None] = print,
              timer: Timer | None = None, timing_device: str = "cpu", timing_graphs: bool = False,
              counter: OpCounter | None = None) -> dict[str, Any]:
    """Train (or load) every stage for each seed, evaluate on the held-out tasks, time inference with ``timer``
    (:func:`physopt.timing.pde_control.time_inference`; None: no times) and count its operations with ``counter``
    (:func:`physopt.timing.pde_control.count_inference_ops`; None: no counts) on the last seed's models and write
    OUT/table1.json, OUT/table1.md and OUT/fig4.png. Returns the table's data."""
    plan_obj = PLANS[plan] if isinstance(plan, str) else plan
    out = Path(out)
    per_seed: dict[int, dict[str, list[float]]] = {}
    histories: dict[int, dict[str, Any]] = {}
    last = None
    for seed in seeds:
        stages = Stages(out / f"seed{seed}", plan_obj, seed, log)
        supervised_ops, staggered, refined = stages.predictors()
        cfe_supervised, cfe_diff = stages.cfes()
        models = {"cfe-chain/supervised": ("cfe-chain", cfe_supervised),
                  "cfe-chain/diff-physics": ("cfe-chain", cfe_diff),
                  "staggered/supervised": ("staggered", supervised_ops),
                  "staggered/diff-physics": ("staggered", staggered), "refined/diff-physics": ("refined", refined)}
        per_seed[seed] = _evaluate(stages, models)
        histories[seed] = stages.histories
        last = (stages, models)
    timings = timer(last[0].test, last[0].setup, last[1], plan_obj) if timer and last else {}
    counts = counter(last[0].test, last[0].setup, last[1], plan_obj) if counter and last else {}
    data = {"command": command, "plan": dataclasses.asdict(plan_obj), "seeds": list(seeds),
            "machine": machine_info(torch.device("cpu")), "provenance": provenance(),
            "force_integral": {str(s): rows for s, rows in per_seed.items()}, "inference_ms": timings,
            "inference_device": (machine_info(torch.device(timing_device)).get("gpu") or "the CPU")
            if timings else None,
            "inference_graphs": bool(timings) and timing_graphs, "inference_ops": counts,
            "paper": {k: {"force": v[0], "spread": v[1], "ms": v[2]} for k, v in PAPER_TABLE1.items()},
            "training_seconds": {str(s): {k: h["seconds"] for k, h in hs.items()} for s, hs in histories.items()}}
    atomic_write(out / "table1.json", json.dumps(data, indent=1))
    atomic_write(out / "table1.md", table_markdown(data))
    if last:
        plot_trajectories(last[0], last[1], out / "fig4.png")
    return data


def _row_stats(data: dict[str, Any], key: str) -> tuple[float, float, list[float]] | None:
    """(mean over tasks and seeds, spread, per-seed means): the spread is the standard error over the held-out
    tasks for one seed, the standard deviation of the seed means for several."""
    per_seed = [rows[key] for rows in data["force_integral"].values() if key in rows]
    if not per_seed:
        return None
    means = [sum(r) / len(r) for r in per_seed]
    if len(means) == 1:
        mean, spread = _mean_sem(per_seed[0])
    else:
        mean = sum(means) / len(means)
        spread = math.sqrt(sum((m - mean) ** 2 for m in means) / (len(means) - 1))
    return mean, spread, means


def table_markdown(data: dict[str, Any]) -> str:
    """Table 1 beside the paper's numbers, with the command and machine."""
    seeds = data["seeds"]
    counts = data.get("inference_ops") or {}
    spread = ("standard error over the held-out tasks" if len(seeds) == 1 else
              f"standard deviation of the {len(seeds)} seed means")
    lines = [*markdown_header("PDE control, Burgers: Table 1 re-measured", data),
             f"Force integral sum_t sum_x |F_t(x)| per task, mean over {data['plan']['held_out']} held-out tasks "
             f"(seeds {', '.join(map(str, seeds))}; +- {spread}). Inference: milliseconds per task, "
             f"{data['plan']['held_out']} tasks in one batch on {data.get('inference_device') or 'the CPU'}"
             f"{GRAPHS_NOTE if data.get('inference_graphs') else ''} (paper: a GTX 1080 Ti).",
             *(["", OPS_NOTE] if counts else []), "",
             f"| scheme, loss | force integral | per seed | inference ms |{' ops |' if counts else ''} "
             f"paper: force | paper: ms |",
             "|---|---|---|---|" + ("---|" if counts else "") + "---|---|"]
    shooting = [(f"shooting/{its}", f"iterative optim., {its} its") for its in data["plan"]["shooting_iterations"]]
    networks = [row for row in ROWS if not row[0].startswith(("shooting", "ground-truth"))]
    for key, label in networks + shooting + [row for row in ROWS if row[0].startswith("ground-truth")]:
        stats = _row_stats(data, key)
        if stats is None:
            continue
        mean, sd, means = stats
        paper = data["paper"].get(key)
        ms = data["inference_ms"].get(key)
        paper_force = "-" if paper is None else f"{paper['force']} +- {paper['spread']}"
        cell = label.replace("|", r"\|")                    # a | inside a markdown cell would split it
        lines.append(f"| {cell} | {mean:.1f} +- {sd:.1f} | {' / '.join(f'{m:.1f}' for m in means)} | "
                     f"{'-' if ms is None else f'{ms:.3g}'} |{_ops_cell(counts, key)} {paper_force} | "
                     f"{'-' if paper is None else paper['ms']} |")
    p = data["plan"]
    lines += ["", f"Training (per seed): OP_n and CFE supervised {p['supervised_iterations']} iterations each (batch "
              f"{p['supervised_batch']}, Adam lr {p['supervised_lr']:g}); CFE chain and staggered end to end "
              f"{p['diff_iterations']} iterations, refined {p['refined_iterations']} more (batch {p['diff_batch']}, "
              f"lr {p['diff_lr']:g}, force weight {p['force_weight']:g}, jerk weight {p['jerk_weight']:g} for the "
              f"hierarchical schemes); shooting Adam lr {p['shooting_lr']:g}. The paper trains about 100k "
              f"iterations.", ""]
    return "\n".join(lines)


def _ops_cell(counts: dict[str, int], key: str) -> str:
    """The ops column's cell (nothing where the table has no ops column)."""
    if not counts:
        return ""
    return f" {counts[key]:,} |" if key in counts else " - |"


def plot_trajectories(stages: Stages, models: dict[str, tuple[str, nn.Module]], path: Path, task: int = 0) -> None:
    """The paper's Fig. 4 for held-out task ``task``: (a) natural evolution, (b) CFE chain, (c) staggered, (d)
    refined (diff. physics), (e) the ground-truth constant force; start red, target blue, states dark to light."""
    from problems.solvers.burgers import rollout
    plt = pyplot()

    test, setup = stages.test, stages.setup
    u0, target = test.initial[task:task + 1], test.target[task:task + 1]
    with torch.no_grad():
        panels = [("(a) natural evolution", rollout(u0, setup.steps, dt=setup.dt, dx=setup.dx,
                                                     viscosity=setup.viscosity))]
        for key, title in (("cfe-chain/diff-physics", "(b) CFE chain"), ("staggered/diff-physics", "(c) staggered"),
                           ("refined/diff-physics", "(d) refined")):
            scheme, model = models[key]
            panels.append((title + ", diff. physics", execute(scheme, model, u0, target, setup)))
        panels.append(("(e) ground truth, constant force", test.trajectory[task:task + 1]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.8), sharey=True)
    x = range(setup.resolution)
    for ax, (title, trajectory) in zip(axes, panels):
        states = trajectory[0]
        for t in range(1, states.shape[0] - 1):
            ax.plot(x, states[t], color=plt.cm.viridis(t / states.shape[0]), lw=0.8)
        ax.plot(x, u0[0], "r--", lw=2)
        ax.plot(x, target[0], "b--", lw=2)
        forces = control_forces(trajectory, setup) if "natural" not in title else None
        ax.set_title(title + ("" if forces is None else f"\nforce {force_integral(forces).item():.1f}"), fontsize=9)
        ax.set_xlabel("cell")
    axes[0].set_ylabel("u")
    fig.tight_layout()
    save_figure(fig, path)
