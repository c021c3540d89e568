#!/usr/bin/env bash
# Issue 22 deliverable 4: HIG at a global batch of 2b on 2 processes (b each) against 1 process with all 2b, time
# per update and peak memory per process, gloo on the CPU, one torch thread per process (2 cores: one each). The HIG
# paper's batches as the global batch: oscillators 128, quantum-dipole 16. Run it alone (timing).
set -euo pipefail
cd "$(dirname "$0")/.."
physopt hig-spread-timing --setups oscillators --routes factored,gram --batch 64 --nproc 2 --repeats 5 --threads 1 \
    --device cpu --out results/hig-spread/oscillators
physopt hig-spread-timing --setups quantum-dipole --routes factored,gram --batch 8 --nproc 2 --repeats 5 --threads 1 \
    --device cpu --out results/hig-spread/quantum-dipole
physopt report results
