#!/usr/bin/env bash
# Issue 20 deliverable 3: the heat problem with its physics written in PhiFlow (problems.phiflow_heat, a plugin named
# by import path) beside the same problem in plain torch (heat, with the same U-net without batch norm), same
# weights and data per seed, at the quick preset's size (16 x 16 cells: HIG's dense Jacobian is b * 256 rows):
# adam and sip on both, hig on the PhiFlow one; then the adapter's cost as ratios (results/run_phiflow_timing.py,
# which must run alone). About 30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--preset quick --iterations 200 --seeds 0,1,2 --evaluations 20 --device cpu --quiet)
physopt compare problems.phiflow_heat:PhiFlowHeatProblem --optimizers adam,sip,hig "${common[@]}" \
    --out results/phiflow/phiflow-heat
physopt compare heat --param unet_batch_norm=false --optimizers adam,sip "${common[@]}" --out results/phiflow/heat-torch
python results/run_phiflow_timing.py --resolution 32 --batch-size 32 --hig-batch 1 --threads 2
