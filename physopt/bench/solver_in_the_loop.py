"""``physopt solver-in-the-loop``: Solver-in-the-Loop's Table 1 (Um et al. 2020), forced Burgers scenario, resumable.

One command: generate the reference simulations (cached in OUT/data/, one file per set, written atomically), train
the correction network for every mode and seed (NON = look-ahead 1, SOL_n for each n of the plan, PRE on
pre-computed corrections), evaluate the corrected rollouts on the test simulations against the projected reference
and write OUT/table1.json, OUT/table1.md, OUT/rollout.png and OUT/training.png (test MAE per epoch). A training
run saves its state every ``checkpoint_every_s`` seconds (OUT/seed<S>/<mode>.partial.pt) and its final weights to
OUT/seed<S>/<mode>.pt; running the same command again continues where it stopped, with the same result as an
uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from problems.solver_in_the_loop import (Correction, ForcedBurgers, Simulations, data_statistics, rollout,
                                         rollout_error, unrolled_loss, window_batches)
from problems.solver_in_the_loop.pre import precompute_corrections
from problems.solver_in_the_loop.wake import WakeFlow

from .plots import pyplot, save_figure
from .provenance import provenance
from .storage import atomic_write, machine_info, markdown_header
from .train import atomic_save, derived_seed

__all__ = ["SolPlan", "PLANS", "PAPER", "modes", "run_table", "table_markdown"]


#: the layout of the weight files; a file of another layout is refused instead of loaded
FORMAT = 3

#: the authors' PRE learning-rate steps: (epoch from which it applies, factor), epochs counted from 1
AUTHORS_PRE_SCHEDULE = ((81, 0.1), (121, 0.1), (161, 0.1), (181, 0.5))


@dataclasses.dataclass(frozen=True)
class SolPlan:
    """Training and evaluation settings; the defaults are the authors' (their Makefiles and ``mars_moon`` net):
    Burgers Adam lr 1e-4, batch 5, 100 epochs (an epoch is every (simulation, start frame) window once:
    2 (200 - n) iterations), NON n = 1, SOL n = 4; the wake flow batch 3 over 6 simulations of 500 frames, SOL n = 32;
    PRE Adam lr 1e-3, batch 32, 400 epochs with the learning-rate steps of ``AUTHORS_PRE_SCHEDULE``; the correction
    net 12 convolutions of 32 features, 5x5, Glorot-initialised. The CPU plans say what they cut."""
    scenario: Any = ForcedBurgers()             # ForcedBurgers or WakeFlow
    epochs: int = 100
    batch: int = 5
    lr: float = 1e-4
    look_aheads: tuple[int, ...] = (1, 4)
    sip_look_aheads: tuple[int, ...] = ()       # SIP_n: the look-ahead without gradients between steps (not the authors')
    pre: bool = True
    pre_epochs: int = 400
    pre_batch: int = 32
    pre_lr: float = 1e-3
    pre_schedule: tuple[tuple[int, float], ...] = AUTHORS_PRE_SCHEDULE
    pre_beta: float = 1.0
    checkpoint_from: int = 8            # recompute the corrected steps in the backward pass from this look-ahead on
    features: int = 32
    blocks: int = 5
    kernel: int = 5
    zero_output: bool = False           # True: the net's last convolution starts at zero (C = 0, the source solver)


#: the CPU cuts: the paper text's smaller net (10 convolutions of 16 features, 3x3: 13x cheaper than the authors'
#: 12 x 32 x 5x5) started at C = 0, and fewer epochs (the same number for every trained mode). No recomputation of
#: the look-ahead's steps: this net's activations over 16 steps take about 100 MB, and recomputing them costs time
_CPU_NET = {"features": 16, "blocks": 4, "kernel": 3, "zero_output": True, "checkpoint_from": 1_000}
_TINY = {"features": 4, "blocks": 1, "kernel": 3}

PLANS = {"cpu": SolPlan(epochs=10, look_aheads=(1, 4, 16), sip_look_aheads=(4,), pre_epochs=50, **_CPU_NET),
         "paper": SolPlan(),
         "quick": SolPlan(scenario=ForcedBurgers(reference_resolution=32, source_resolution=8, warmup=2, frames=12,
                                                 training_seeds=(0, 1), test_seeds=(100,)),
                          epochs=1, batch=2, look_aheads=(1, 3), sip_look_aheads=(3,), pre_epochs=1, pre_batch=4,
                          **_TINY),
         "wake-cpu": SolPlan(scenario=WakeFlow(), epochs=5, batch=3, look_aheads=(1, 4, 16), sip_look_aheads=(16,),
                             pre_epochs=20, **_CPU_NET),
         "wake-paper": SolPlan(scenario=WakeFlow(), batch=3, look_aheads=(1, 32)),
         "wake-quick": SolPlan(scenario=WakeFlow(reference_resolution=16, source_resolution=4, warmup=3, frames=8,
                                                 training_re=(1.6e5, 6.4e5), test_re=(3.2e5,)),
                               epochs=1, batch=2, look_aheads=(1, 3), pre_epochs=1, pre_batch=4, **_TINY)}

#: Table 1 of the paper per scenario: MAE mean, spread, improvement over SRC in percent; the look-ahead of its SOL row
#: (the authors' Makefiles: SOL_4 for Burgers, SOL_32 for the wake flow) and the scenario's name
PAPER = {"ForcedBurgers": {"name": "forced advection-diffusion (Burgers)", "sol": 4,
                           "rows": {"SRC": (0.248, 0.019, None), "PRE": (0.218, 0.017, 12), "NON": (0.159, 0.015, 36),
                                    "SOL_s": (0.152, 0.015, 39), "SOL": (0.158, 0.017, 36)}},
         "WakeFlow": {"name": "wake flow", "sol": 32,
                      "rows": {"SRC": (0.146, 0.004, None), "PRE": (0.031, 0.010, 79), "NON": (0.049, 0.012, 67),
                               "SOL_s": (0.041, 0.009, 72), "SOL": (0.013, 0.003, 91)}}}


def modes(plan: SolPlan) -> list[str]:
    """The trained modes of a plan: NON (look-ahead 1), SOL_n for every other look-ahead, SIP_n, PRE."""
    names = ["NON" if n == 1 else f"SOL_{n}" for n in plan.look_aheads]
    return names + [f"SIP_{n}" for n in plan.sip_look_aheads] + (["PRE"] if plan.pre else [])


def _look_ahead(mode: str) -> int:
    return 1 if mode == "NON" else int(mode.split("_")[1])


#: plan fields that do not change how one mode trains, so they are not part of its identity: the lists of modes, and
#: where recomputation starts (memory only: recomputed steps are bitwise the steps they replace on the CPU, tested)
_NOT_IDENTITY = ("look_aheads", "sip_look_aheads", "pre", "checkpoint_from")


def _training_settings(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k not in _NOT_IDENTITY}


def _identity(plan: SolPlan, mode: str, seed: int) -> dict[str, Any]:
    return {"format": FORMAT, "plan": _training_settings(dataclasses.asdict(plan)), "mode": mode, "seed": seed}


def _same_run(saved: dict[str, Any] | None, identity: dict[str, Any]) -> bool:
    """Whether a saved identity is ``identity``, ignoring the non-identity fields that older files recorded."""
    if not isinstance(saved, dict) or not isinstance(saved.get("plan"), dict):
        return False
    return {**saved, "plan": _training_settings(saved["plan"])} == identity


class Data:
    """The training and test simulations of a plan, generated once and cached in ``directory``."""

    def __init__(self, directory: Path, plan: SolPlan, log: Callable[[str], None]):
        self.scenario = plan.scenario
        self.train = self._load(directory / "train.pt", "train", log)
        self.test = self._load(directory / "test.pt", "test", log)
        self.velocity_std, self.condition_std = data_statistics(self.train)

    def _load(self, path: Path, which: str, log: Callable[[str], None]) -> Simulations:
        identity = {"scenario": type(self.scenario).__name__, "settings": dataclasses.asdict(self.scenario),
                    "set": which}
        if path.exists():
            saved = torch.load(path, weights_only=False)
            if saved.get("identity") == identity:
                return Simulations(saved["velocity"], saved["condition"])
            log(f"  {path} holds other simulations than this plan asks for: regenerating it")
        start = time.perf_counter()
        sims = self.scenario.simulate(which)
        atomic_save(path, {"identity": identity, "velocity": sims.velocity, "condition": sims.condition,
                           "provenance": provenance()})
        log(f"  simulated {len(sims)} reference runs in {time.perf_counter() - start:.0f} s -> {path}")
        return sims


def _network(plan: SolPlan, data: Data, seed: int) -> Correction:
    with torch.random.fork_rng(devices=[]):          # the same initial weights for every mode of a seed
        torch.manual_seed(seed)
        return Correction(data.velocity_std, data.condition_std, **data.scenario.correction_layout,
                          features=plan.features, blocks=plan.blocks, kernel=plan.kernel,
                          zero_output=plan.zero_output)


def _pre_loss(net: Correction, pairs, index: torch.Tensor, data: Data) -> torch.Tensor:
    """Mean squared error of the standardised correction (the authors' PRE networks regress standardised labels)."""
    sigma = data.velocity_std.reshape(2, 1, 1)
    predicted = net(pairs.inputs[index], pairs.conditions[index])
    return ((predicted - pairs.corrections[index]) / sigma).pow(2).mean()


def pre_learning_rate(plan: SolPlan, epoch: int) -> float:
    """PRE's learning rate in ``epoch`` (counted from 1): pre_lr times every factor of the schedule whose epoch has
    been reached."""
    return plan.pre_lr * math.prod(factor for start, factor in plan.pre_schedule if epoch >= start)


def train_mode(out: Path, plan: SolPlan, data: Data, mode: str, seed: int, log: Callable[[str], None],
               checkpoint_every_s: float = 600.0) -> tuple[Correction, dict[str, Any]]:
    """Train (or load) one correction network; returns it and its history: mean training loss and test MAE after
    each epoch (monitoring only: nothing is selected on it), iterations and wall seconds (the per-epoch test
    rollouts included)."""
    final, partial = out / f"{mode}.pt", out / f"{mode}.partial.pt"
    identity = _identity(plan, mode, seed)
    net = _network(plan, data, seed)
    if final.exists():
        saved = torch.load(final, weights_only=False)
        if not _same_run(saved.get("identity"), identity):
            raise ValueError(f"{final} was trained with another plan or by another version of this command; use "
                             f"another --out (or delete the file)")
        net.load_state_dict(saved["state"])
        return net, saved["history"]
    pre = mode == "PRE"
    lr, epochs = (plan.pre_lr, plan.pre_epochs) if pre else (plan.lr, plan.epochs)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    state = {"epoch": 0, "batch": 0, "losses": [], "test_mae": [], "epoch_loss": 0.0, "seconds": 0.0,
             "iterations": 0}
    if partial.exists():
        saved = torch.load(partial, weights_only=False)
        if _same_run(saved.get("identity"), identity):
            net.load_state_dict(saved["net"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
            log(f"  seed {seed}: {mode} continues at epoch {state['epoch'] + 1}, batch {state['batch']}")
    pairs = precompute_corrections(data.scenario, data.train, plan.pre_beta) if pre else None
    steps = 0 if pre else _look_ahead(mode)
    sip = mode.startswith("SIP_")                   # no gradient from one step into the next
    last_save = started = time.perf_counter()
    base_seconds = state["seconds"]

    def save_partial() -> None:
        state["seconds"] = base_seconds + time.perf_counter() - started
        atomic_save(partial, {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "state": state,
                              "identity": identity})

    while state["epoch"] < epochs:
        if pre:
            for group in optimizer.param_groups:
                group["lr"] = pre_learning_rate(plan, state["epoch"] + 1)
        generator = torch.Generator().manual_seed(derived_seed(seed, f"{mode}/{state['epoch']}"))
        if pre:
            order = torch.randperm(len(pairs.inputs), generator=generator)
            batches = [order[i:i + plan.pre_batch] for i in range(0, len(order) - plan.pre_batch + 1, plan.pre_batch)]
        else:
            batches = list(window_batches(data.train, steps, plan.batch, generator))
        for b in range(state["batch"], len(batches)):
            optimizer.zero_grad(set_to_none=True)
            if pre:
                loss = _pre_loss(net, pairs, batches[b], data)
            else:
                v, f = data.train.windows(*batches[b], steps)
                loss = unrolled_loss(data.scenario, net, v, f, data.velocity_std, steps,
                                     checkpoint_steps=steps >= plan.checkpoint_from,
                                     detach_states=sip)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"{mode} seed {seed}: the training loss became {value} in epoch "
                                         f"{state['epoch'] + 1}; lower the learning rate")
            loss.backward()
            optimizer.step()
            state["epoch_loss"] += value
            state["batch"], state["iterations"] = b + 1, state["iterations"] + 1
            if time.perf_counter() - last_save >= checkpoint_every_s:
                save_partial()
                last_save = time.perf_counter()
        state["losses"].append(state["epoch_loss"] / max(len(batches), 1))
        net.eval()
        state["test_mae"].append(float(rollout_error(data.scenario, data.test, net).mean()))
        net.train()
        log(f"  seed {seed}: {mode} epoch {state['epoch'] + 1}/{epochs}, mean loss {state['losses'][-1]:.4g}, "
            f"test MAE {state['test_mae'][-1]:.4f}")
        state.update(epoch=state["epoch"] + 1, batch=0, epoch_loss=0.0)
    state["seconds"] = base_seconds + time.perf_counter() - started
    history = {"losses": state["losses"], "test_mae": state["test_mae"], "iterations": state["iterations"],
               "seconds": state["seconds"]}
    atomic_save(final, {"state": net.state_dict(), "history": history, "identity": identity,
                        "provenance": provenance()})
    partial.unlink(missing_ok=True)
    log(f"  seed {seed}: {mode} trained, {state['iterations']} iterations in {state['seconds']:.0f} s")
    return net, history


def _cells(values: Sequence[float | None]) -> str:
    """Per-seed figures as 'a / b / c', '-' for a seed without one."""
    return " / ".join("-" if v is None else f"{v:.3f}" for v in values)


def _stats(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))


def run_table(out: str | Path, plan: str | SolPlan = "cpu", seeds: Sequence[int] = (0,), *,
              mode_names: Sequence[str] | None = None, command: str | None = None,
              log: Callable[[str], None] = print, checkpoint_every_s: float = 600.0,
              train: bool = True) -> dict[str, Any]:
    """Train (or load) every mode for each seed, evaluate and write OUT/table1.json, table1.md, rollout.png and
    training.png. ``train=False``: evaluate only the (seed, mode) pairs whose final weights exist (an interim table
    while other runs still train; the others are shown as '-')."""
    plan_obj = PLANS[plan] if isinstance(plan, str) else plan
    out = Path(out)
    chosen = list(mode_names) if mode_names is not None else modes(plan_obj)     # []: the uncorrected source only
    unknown = sorted(set(chosen) - set(modes(plan_obj)))
    if unknown:
        raise ValueError(f"unknown mode(s) {', '.join(unknown)} for this plan; choose from {', '.join(modes(plan_obj))}")
    data = Data(out / "data", plan_obj, log)
    sc = data.scenario
    source = rollout_error(sc, data.test).tolist()
    errors: dict[str, dict[str, list[float]]] = {}
    histories: dict[str, dict[str, Any]] = {}
    nets: dict[str, Correction] = {}
    for seed in seeds:
        for mode in chosen:
            if not train and not (out / f"seed{seed}" / f"{mode}.pt").exists():
                log(f"  seed {seed}: {mode} not trained yet, left out")
                continue
            net, history = train_mode(out / f"seed{seed}", plan_obj, data, mode, seed, log, checkpoint_every_s)
            net.eval()
            errors.setdefault(str(seed), {})[mode] = rollout_error(sc, data.test, net).tolist()
            histories.setdefault(str(seed), {})[mode] = history
            nets[mode] = net
    table = {"command": command, "plan": dataclasses.asdict(plan_obj), "seeds": list(seeds), "modes": chosen,
             "machine": machine_info(torch.device("cpu")), "provenance": provenance(),
             "source_mae": source, "mae": errors, "training": histories,
             "scenario": type(sc).__name__, "paper_sol": PAPER[type(sc).__name__]["sol"],
             "paper": {k: {"mae": v[0], "spread": v[1], "improvement": v[2]}
                       for k, v in PAPER[type(sc).__name__]["rows"].items()}}
    atomic_write(out / "table1.json", json.dumps(table, indent=1))
    atomic_write(out / "table1.md", table_markdown(table))
    plot_rollout(data, nets, out / "rollout.png")
    plot_training(table, out / "training.png")
    return table


#: the test MAE after each of this many final epochs is averaged into the table's check on the final-epoch figure
LAST_EPOCHS = 3


def last_epochs_mae(history: dict[str, Any] | None, last: int = LAST_EPOCHS) -> float | None:
    """Mean of the test MAE recorded after each of a run's ``last`` final epochs (fewer if it has fewer); None when
    the run has no per-epoch record. A check on how much the final-epoch MAE depends on where training stopped."""
    values = (history or {}).get("test_mae") or []
    return sum(values[-last:]) / len(values[-last:]) if values else None


def table_markdown(table: dict[str, Any]) -> str:
    """MAE and improvement over SRC per mode, beside the paper's row for the scenario, and the mean test MAE of the
    last epochs (:func:`last_epochs_mae`) as a check on the final-epoch figure."""
    seeds, src = table["seeds"], table["source_mae"]
    src_mean = sum(src) / len(src)
    p = table["plan"]
    sc = p["scenario"]
    spread = ("standard deviation over the test simulations" if len(seeds) == 1 else
              f"standard deviation of the {len(seeds)} seed means")
    scenario = table.get("scenario", "ForcedBurgers")
    paper_src = table["paper"]["SRC"]
    lines = [*markdown_header(f"Solver-in-the-Loop, {PAPER[scenario]['name']}: Table 1 re-measured", table),
             f"Mean absolute error of the velocity against the projected reference over {sc['frames'] - 1}-step "
             f"rollouts of the {len(src)} test simulations (seeds {', '.join(map(str, seeds))}; +- {spread}); "
             f"improvement = 1 - MAE / MAE(SRC).", "",
             f"| mode | MAE | per seed | improvement | last {LAST_EPOCHS} epochs: MAE, per seed | paper: MAE | "
             "paper: improvement |", "|---|---|---|---|---|---|---|",
             f"| SRC (no correction) | {src_mean:.3f} +- {_stats(src)[1]:.3f} | - | - | - | "
             f"{paper_src['mae']} +- {paper_src['spread']} | - |"]
    paper_key = {"NON": "NON", "PRE": "PRE", f"SOL_{table.get('paper_sol', 4)}": "SOL"}
    missing = False
    for mode in table["modes"]:
        per_seed = [table["mae"].get(str(s), {}).get(mode) for s in seeds]      # None: that seed not trained yet
        seed_means = [sum(e) / len(e) if e else None for e in per_seed]
        missing = missing or None in seed_means
        paper = table["paper"].get(paper_key.get(mode, ""))
        paper_cells = ("- | -" if paper is None else
                       f"{paper['mae']} +- {paper['spread']} | {paper['improvement']}%")
        means = [m for m in seed_means if m is not None]
        if not means:                                          # not trained for any seed yet
            lines.append(f"| {mode} | - | {_cells(seed_means)} | - | - | {paper_cells} |")
            continue
        mean, sd = _stats(next(e for e in per_seed if e)) if len(means) == 1 else _stats(means)
        late = [last_epochs_mae(table.get("training", {}).get(str(s), {}).get(mode)) for s in seeds]
        known = [v for v in late if v is not None]
        late_cell = f"{_stats(known)[0]:.3f}: {_cells(late)}" if known else "-"
        lines.append(f"| {mode} | {mean:.3f} +- {sd:.3f} | {_cells(seed_means)} | "
                     f"{100 * (1 - mean / src_mean):.0f}% | {late_cell} | {paper_cells} |")
    if missing:
        lines += ["", "Interim: '-' marks a seed whose run was not trained when this table was written; such a row's "
                  "mean and spread are over the seeds it has (over the test simulations where it has one)."]
    lines += ["", f"Last {LAST_EPOCHS} epochs: the mean of the test MAE measured after each of a run's last "
              f"{LAST_EPOCHS} epochs (training.png), mean over seeds, then per seed; nothing is selected on it. It "
              "shows how much the final-epoch MAE depends on where training stopped.",
              "", f"Training: Adam lr {p['lr']:g}, batch {p['batch']}, {p['epochs']} epochs (the authors: 100); PRE "
              f"lr {p['pre_lr']:g}, batch {p['pre_batch']}, {p['pre_epochs']} epochs (the authors: 400), corrections "
              f"pre-computed with temporal weight beta = {p['pre_beta']:g}. The paper's SOL row for this scenario is "
              f"SOL_{table.get('paper_sol', 4)} (the authors' Makefile), its SOL_s row has no stated look-ahead. "
              f"SIP_n (not in the paper): the look-ahead of SOL_n without gradients from one step into the next, "
              f"each correction trained towards the reference on the model's own rollout. "
              f"Correction net: {2 * p.get('blocks', 5) + 2} convolutions of {p.get('features', 32)} features, "
              f"{p.get('kernel', 5)}x{p.get('kernel', 5)}, "
              f"{'the last one started at zero' if p.get('zero_output') else 'Glorot-initialised'} (the authors: 12 "
              f"of 32, 5x5, Glorot-initialised).", ""]
    return "\n".join(lines)


def plot_training(table: dict[str, Any], path: Path) -> None:
    """Test MAE after each epoch per mode (monitoring: nothing is selected on it), one line per seed, beside the
    uncorrected source's; shows how much a mode's final figure moves from one epoch to the next."""
    plt = pyplot()

    modes_ = [m for m in table["modes"] if any(m in table["training"].get(str(s), {}) for s in table["seeds"])]
    fig, axes = plt.subplots(1, max(len(modes_), 1), figsize=(3.2 * max(len(modes_), 1), 2.8), squeeze=False,
                             sharey=True)
    src = sum(table["source_mae"]) / len(table["source_mae"])
    for ax, mode in zip(axes[0], modes_):
        for seed in table["seeds"]:
            history = table["training"].get(str(seed), {}).get(mode)
            if history and history.get("test_mae"):
                ax.plot(range(1, len(history["test_mae"]) + 1), history["test_mae"], marker="o", ms=3,
                        label=f"seed {seed}")
        ax.axhline(src, color="grey", ls="--", lw=1, label="SRC")
        ax.set_title(mode, fontsize=10)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("test MAE")
    if modes_:                                                 # SRC alone: an empty panel, nothing to label
        axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_rollout(data: Data, nets: dict[str, nn.Module], path: Path, sim: int = 0,
                 steps: Sequence[int] | None = None) -> None:
    """v_x of test simulation ``sim`` at a few steps (default: 1/20, 1/4 and all of the stored frames): the projected
    reference, the uncorrected source and each trained mode."""
    plt = pyplot()

    sc, test = data.scenario, data.test
    last = test.frames - 1
    steps = sorted({max(1, last // 20), max(1, last // 4), last}) if steps is None else [s for s in steps
                                                                                          if 1 <= s <= last]
    start, forces = test.velocity[sim:sim + 1, 0], test.condition[sim:sim + 1, :max(steps)]
    rows = [("reference T r", test.velocity[sim:sim + 1, 1:max(steps) + 1]), ("SRC", rollout(sc, start, forces))]
    rows += [(mode, rollout(sc, start, forces, net)) for mode, net in nets.items()]
    fig, axes = plt.subplots(len(rows), len(steps), figsize=(2.4 * len(steps), 2.2 * len(rows)), squeeze=False)
    scale = float(test.velocity[sim, :, 0].abs().max())
    for r, (label, states) in enumerate(rows):
        for c, step in enumerate(steps):
            ax = axes[r][c]
            ax.imshow(states[0, step - 1, 0].numpy(), origin="lower", cmap="RdBu_r", vmin=-scale, vmax=scale)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(f"step {step}", fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    fig.suptitle(f"v_x, test simulation {sim + 1}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
