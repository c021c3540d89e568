#!/usr/bin/env bash
# Regenerates the HIG update timing in results/hig-timing (issue 3): one update and its parts per half-inversion
# route on the HIG paper's setups, each update checked against the most exact route's (svd in float64) in the same
# run. About 15 minutes on a 2-core CPU; run nothing else meanwhile (wall-clock times).
# The HIG problems' optimizer comparisons are part of the canonical benchmark: results/run_bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt hig-timing --setups oscillators,quantum-dipole --routes factored,gram,svd --dtypes float32,float64 \
    --repeats 3 --out results/hig-timing/small
physopt hig-timing --setups poisson-hig --routes factored,gram,svd --dtypes float32,float64 --repeats 1 \
    --out results/hig-timing/poisson
# the two Jacobian engines (expand vs vmap) and the bare-eigh floor, float64 decomposition
physopt hig-timing --setups oscillators,quantum-dipole --routes factored,gram,svd --repeats 5 --device cpu \
    --out results/hig-timing/engines
physopt hig-timing --setups poisson-hig --routes factored --repeats 3 --device cpu --out results/hig-timing/poisson-engines
physopt report results
