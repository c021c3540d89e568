#!/usr/bin/env bash
# Issue 21: the PDE-control paper's Table 1 (Burgers) re-measured. Trains every stage of the `cpu` plan per seed
# (about an hour per seed on one core; each stage is saved in results/pde-control/seed<S>/ as it ends, so running
# this again after an interruption trains only what is missing), evaluates the 100 held-out tasks, times inference
# (run it alone: the timing is only comparable on an idle machine), writes table1.md/json and fig4.png, then the
# results overview. SEEDS=0 bash results/run_pde_control.sh for one seed; NO_TIMING=1 to train beside other work.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt pde-control --plan cpu --seeds "${SEEDS:-0,1,2}" --threads 1 --out results/pde-control \
    ${NO_TIMING:+--no-timing}
physopt report results
