#!/usr/bin/env bash
# Issue 23: Solver-in-the-Loop's Table 1, forced advection-diffusion (Burgers) row, re-measured. Simulates the
# reference data once (results/solver-in-the-loop/data/, not committed: `physopt solver-in-the-loop` regenerates it
# in about a minute), then trains NON, SOL_4, SOL_16 and PRE per seed and evaluates the 199-step test rollouts.
# Training runs save their state every 10 minutes (seed<S>/<mode>.partial.pt): run this again after an interruption
# and it continues. SEEDS=0 for one seed; MODES=NON,SOL_4 for some modes only; PLAN=wake-cpu for the wake flow
# (written to results/solver-in-the-loop-wake); TRAINED_ONLY=1 for an interim table of the runs trained so far.
set -euo pipefail
cd "$(dirname "$0")/.."
plan=${PLAN:-cpu}
out=results/solver-in-the-loop; [ "$plan" = wake-cpu ] && out=results/solver-in-the-loop-wake
physopt solver-in-the-loop --plan "$plan" --seeds "${SEEDS:-0,1,2}" --threads "${THREADS:-1}" \
    ${MODES:+--modes "$MODES"} ${TRAINED_ONLY:+--trained-only} --out "$out"
physopt report results
