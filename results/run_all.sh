#!/usr/bin/env bash
# Regenerates everything under results/ on this machine (about 25 minutes on 2 CPU cores), then results/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt compare poisson --optimizers adam,sgd,sip --iterations 300 --batch-size 32 --seeds 0,1,2 --out results/poisson
physopt compare heat --optimizers adam,sgd,sip --iterations 300 --batch-size 32 --seeds 0,1,2 --out results/heat
physopt compare rotated-sine --param xi=32 --param phi=45 --optimizers adam,sgd,sip --iterations 3000 --seeds 0,1,2 --out results/rotated-sine
physopt compare exp --optimizers adam,sgd,sip --iterations 3000 --seeds 0,1,2 --out results/exp
physopt report results
