#!/usr/bin/env bash
# Regenerates the HIG results in results/ (issue 3): the time-budget comparisons and the HIG update timing.
# About 50 minutes on a 2-core CPU. Run nothing else meanwhile: the comparisons are by wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt compare oscillators --optimizers adam,hig --time-budget 600 --seeds 0 --device cpu --out results/oscillators
physopt compare quantum-dipole --optimizers adam,hig --time-budget 600 --seeds 0 --device cpu --out results/quantum-dipole
physopt hig-timing --setups oscillators,quantum-dipole --routes factored,gram,svd --dtypes float32,float64 \
    --repeats 3 --out results/hig-timing/small
physopt hig-timing --setups poisson-hig --routes factored,gram,svd --dtypes float32 --repeats 1 \
    --out results/hig-timing/poisson-float32
physopt hig-timing --setups poisson-hig --routes factored,gram --dtypes float64 --repeats 1 \
    --out results/hig-timing/poisson-float64
physopt report results
