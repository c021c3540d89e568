#!/usr/bin/env bash
# Regenerates the Navier-Stokes measurements in results/navier-stokes (issue 4): one simulation step against PhiFlow,
# and the trained network against the iterative inverse solver (SIP paper Table 1). About 5 minutes on a 2-core CPU;
# run nothing else meanwhile (wall-clock times). Adam vs SIP (3 seeds, 200 iterations each) is part of the canonical
# benchmark: results/run_bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt ns-step-bench --batch 64 --resolution 64 --repeats 5 --device cpu --out results/navier-stokes
physopt ns-inference --train-iterations 200 --batch 64 --device cpu --out results/navier-stokes
physopt report results
