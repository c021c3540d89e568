#!/usr/bin/env bash
# Issue 20 deliverable 3: the heat problem with its physics written in PhiFlow (problems.phiflow_heat, a plugin named
# by import path) beside the same problem in plain torch (heat, with the same U-net without batch norm), same
# weights and data per seed, at the quick preset's size (16 x 16 cells): adam and sip on both, 200 iterations,
# 3 seeds (about 20 minutes on 2 cores), and the torch runs again at 1 thread as a control
# (results/phiflow/divergence.md); HIG on the PhiFlow one separately, shorter (its dense Jacobian of the U-net,
# b * 256 rows x 37k weights, costs seconds per step on the CPU); then the adapter's cost as ratios
# (results/run_phiflow_timing.py, which must run alone).
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--preset quick --iterations 200 --seeds 0,1,2 --evaluations 20 --device cpu --quiet)
physopt compare problems.phiflow_heat:PhiFlowHeatProblem --optimizers adam,sip "${common[@]}" \
    --out results/phiflow/phiflow-heat
physopt compare heat --param unet_batch_norm=false --optimizers adam,sip "${common[@]}" --out results/phiflow/heat-torch
# control: the same torch runs at 1 thread (other reduction order), to tell rounding from a difference in the physics
physopt compare heat --param unet_batch_norm=false --optimizers adam,sip "${common[@]}" --threads 1 \
    --out results/phiflow/heat-torch-1thread
python results/run_phiflow_divergence.py
physopt compare problems.phiflow_heat:PhiFlowHeatProblem --optimizers adam,hig --preset quick --iterations 30 \
    --seeds 0 --evaluations 10 --device cpu --quiet --out results/phiflow/phiflow-heat-hig
python results/run_phiflow_timing.py --resolution 32 --batch-size 32 --hig-batch 1 --threads 2
