#!/usr/bin/env bash
# Issue 19 deliverable 3: the SIP paper's long runs on the CPU, through the executor: poisson to 5,000 iterations
# and heat to 10,000 (adam, sgd, sip; 3 seeds; the standard preset's batch 32 and evaluations) into
# results/paper-cpu/poisson and results/paper-cpu/heat. Two local workers, one torch thread each (a run's numbers
# depend on its thread count, so keep --executor local:2 when resuming on this machine). Each run takes about
# 20-40 minutes on one core (about 6 hours in all on 2 cores); the command resumes: run it again after an
# interruption and only unfinished runs train. Run nothing else meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
physopt compare poisson --preset standard --iterations 5000 --optimizers adam,sgd,sip --seeds 0,1,2 \
    --executor local:2 --device cpu --out results/paper-cpu/poisson "$@"
physopt compare heat --preset standard --iterations 10000 --optimizers adam,sgd,sip --seeds 0,1,2 \
    --executor local:2 --device cpu --out results/paper-cpu/heat "$@"
physopt report results
