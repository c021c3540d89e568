"""Issue 23: why the CPU plans start the correction net at C = 0. Trains NON on forced Burgers with the `cpu` plan's
net for 12 epochs twice, once Glorot-initialised (Keras' default, the authors' choice) and once with the last
convolution started at zero, and writes the mean training loss and the test-rollout MAE after every epoch to
results/solver-in-the-loop/init/init.md (the loss of no correction at all is in the first row). One core, about
10 minutes; reuses the cached reference data of `physopt solver-in-the-loop --plan cpu`.

    python results/run_solver_in_the_loop_init.py
"""
import dataclasses
from pathlib import Path

import torch

from physopt.bench.provenance import provenance
from physopt.bench.solver_in_the_loop import PLANS, Data, train_mode
from physopt.bench.storage import atomic_write
from problems.solver_in_the_loop import rollout_error, unrolled_loss, window_batches

EPOCHS = 12
root = Path(__file__).resolve().parent / "solver-in-the-loop"
torch.set_num_threads(1)
data = Data(root / "data", PLANS["cpu"], print)
histories = {}
for zero in (False, True):
    plan = dataclasses.replace(PLANS["cpu"], epochs=EPOCHS, zero_output=zero)
    _, histories[zero] = train_mode(root / "init" / ("zero" if zero else "glorot"), plan, data, "NON", 0, print)

with torch.no_grad():                       # the same epoch-mean loss with C = 0, on the first epoch's batches
    batches = window_batches(data.train, 1, PLANS["cpu"].batch, torch.Generator().manual_seed(0))
    losses = [float(unrolled_loss(data.scenario, lambda s, c: torch.zeros_like(s), *data.train.windows(*b, 1),
                                  data.velocity_std, 1)) for b in batches]
source = float(rollout_error(data.scenario, data.test).mean())
info = provenance()
lines = ["# Solver-in-the-Loop: the correction net's initialisation (forced Burgers, NON, seed 0)", "",
         f"Command: `python results/run_solver_in_the_loop_init.py`; physopt {info['physopt']} (commit "
         f"{str(info['git_commit'])[:7]}), torch {info['torch']}, 1 thread.", "",
         "Mean training loss per epoch and the MAE of the corrected 199-step test rollouts after it; the `cpu` plan's "
         "net (10 convolutions of 16 features, 3x3), Adam lr 1e-4, batch 5.", "",
         "| epoch | loss, Glorot | test MAE, Glorot | loss, started at C = 0 | test MAE, started at C = 0 |",
         "|---|---|---|---|---|",
         f"| no correction | {sum(losses) / len(losses):.4g} | {source:.4f} | {sum(losses) / len(losses):.4g} | "
         f"{source:.4f} |"]
for e in range(EPOCHS):
    g, z = histories[False], histories[True]
    lines.append(f"| {e + 1} | {g['losses'][e]:.4g} | {g['test_mae'][e]:.4f} | {z['losses'][e]:.4g} | "
                 f"{z['test_mae'][e]:.4f} |")
atomic_write(root / "init" / "init.md", "\n".join(lines) + "\n")
print("\n".join(lines))
