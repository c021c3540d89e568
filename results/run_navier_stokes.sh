#!/usr/bin/env bash
# Regenerates the Navier-Stokes results in results/ (issue 4): Adam vs SIP at the paper's size (200 iterations),
# one simulation step against PhiFlow, and the trained network against the iterative inverse solver (Table 1).
# About 20 minutes on a 2-core CPU. Run nothing else meanwhile: timings are wall-clock.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt compare navier-stokes --optimizers adam,sip --iterations 200 --seeds 0 --device cpu --fresh \
    --out results/navier-stokes
physopt ns-step-bench --batch 64 --resolution 64 --repeats 5 --device cpu --out results/navier-stokes
physopt ns-inference --train-iterations 200 --batch 64 --device cpu --out results/navier-stokes
physopt report results
